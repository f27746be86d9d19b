/**
 * Walltime warnings, driven by a clock of our own: once per threshold, the smallest of
 * those crossed at once, the batch system's own warning once, none for a session whose
 * successor is on its way; time left from `endsAt`, whatever moved `updatedAt`.
 */
import type { ISession } from '../../common/api';
import { WalltimeWarnings, type IWalltimeWarning } from '../walltime-warnings';
import { testSession } from './fixtures';

const T0 = Date.parse('2026-12-06T10:00:00Z');
const MIN = 60_000;

function session(over: Partial<ISession> = {}): ISession {
  return testSession(
    'a',
    {
      // a kernel event just now: not the scheduler's answer
      updatedAt: new Date(T0 + 50 * MIN).toISOString(),
      endsAt: new Date(T0 + 60 * MIN).toISOString(),
      ...over
    },
    T0
  );
}

function warnings(minutes = [30, 10, 2]) {
  const said: IWalltimeWarning[] = [];
  return {
    said,
    w: new WalltimeWarnings(
      x => said.push(x),
      () => minutes
    )
  };
}

describe('walltime warnings', () => {
  it('leave out a threshold as long as the whole job (a 30-minute job is not warned at its start)', () => {
    const { said, w } = warnings();
    const short = session({ resources: { walltime: '00:30:00' }, endsAt: new Date(T0 + 30 * MIN).toISOString() });
    w.check([short], T0 + 1000);
    expect(said).toEqual([]);
    expect(w.endsSoon(short, T0 + 1000)).toBe(false);
    w.check([short], T0 + 21 * MIN);
    expect(said.map(x => Math.round(x.left / 60))).toEqual([9]);
    // a longer job gets the 30-minute warning
    const { said: said2, w: w2 } = warnings();
    w2.check([session({ resources: { walltime: '01:00:00' } })], T0 + 31 * MIN);
    expect(said2.map(x => Math.round(x.left / 60))).toEqual([29]);
  });

  it('warn once at each threshold, at the time the scheduler gave', () => {
    const { said, w } = warnings();
    const s = session();
    const at = (minute: number) => w.check([s], T0 + minute * MIN);
    at(29);
    expect(said).toHaveLength(0);
    at(30.01);
    expect(said.map(x => Math.round(x.left / 60))).toEqual([30]);
    at(35);
    at(49);
    expect(said).toHaveLength(1);
    at(50.2);
    at(58.1);
    at(59);
    expect(said.map(x => Math.round(x.left / 60))).toEqual([30, 10, 2]);
    expect(said.every(x => !x.bySchedulerSignal)).toBe(true);
    at(61); // ended by the clock: nothing more
    expect(said).toHaveLength(3);
  });

  it('a page opened 5 minutes before the end warns once, not for every threshold it missed', () => {
    const { said, w } = warnings();
    w.check([session()], T0 + 55 * MIN);
    w.check([session()], T0 + 56 * MIN);
    expect(said.map(x => Math.round(x.left / 60))).toEqual([5]);
  });

  it("the batch system's own warning, once, unless one of ours was said in the minute before", () => {
    const { said, w } = warnings([30, 2]);
    const s = session({ endWarnedAt: T0 + 55 * MIN });
    w.check([session()], T0 + 31 * MIN); // the 30-minute warning, long before
    w.check([s], T0 + 55 * MIN);
    w.check([s], T0 + 56 * MIN);
    expect(said.map(x => [Math.round(x.left / 60), x.bySchedulerSignal])).toEqual([
      [29, false],
      [5, true]
    ]);
    // the thresholds still come at their times
    w.check([s], T0 + 58.5 * MIN);
    expect(said.map(x => x.bySchedulerSignal)).toEqual([false, true, false]);
    // Slurm's signal 2 s after our 1-minute warning (it may come up to a minute early or late): not said again
    const late = warnings([1]);
    late.w.check([session()], T0 + 59 * MIN);
    late.w.check([session({ endWarnedAt: T0 + 59.03 * MIN })], T0 + 59.03 * MIN);
    expect(late.said.map(x => x.bySchedulerSignal)).toEqual([false]);
  });

  it('none for a session being continued, an ended one, or with no warnings configured', () => {
    const { said, w } = warnings();
    w.check([session({ continuedBy: 'b' }), session({ id: 'c', state: 'ended' })], T0 + 59 * MIN);
    expect(said).toHaveLength(0);
    const none = warnings([]);
    none.w.check([session()], T0 + 59 * MIN);
    expect(none.said).toHaveLength(0);
    expect(none.w.endsSoon(session({ endWarnedAt: T0 }), T0 + 59 * MIN)).toBe(true);
  });

  it('ends soon: within the largest warning period', () => {
    const { w } = warnings([45, 5]);
    expect(w.endsSoon(session(), T0 + 14 * MIN)).toBe(false);
    expect(w.endsSoon(session(), T0 + 16 * MIN)).toBe(true);
    expect(w.endsSoon(session({ state: 'queued' }), T0 + 59 * MIN)).toBe(false);
  });
});
