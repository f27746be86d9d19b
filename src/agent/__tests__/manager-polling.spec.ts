/**
 * Polling etiquette of the session manager, counted (not timed): a fake cluster link that
 * answers like Slurm 22.05 (rows in the real adapter's format) and counts every scheduler
 * command, with jest's fake timers driving the manager's own clock. The real adapter
 * (SlurmAdapter) builds and parses every command.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import type { SessionManager } from '../sessions/manager';
import { CountingLink } from './helpers/counting-link';
import { slurmManager } from './helpers/slurm-manager';

const MIN = 60_000;
let dir: string;
let link: CountingLink;
let manager: SessionManager;

beforeEach(async () => {
  jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate'] });
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'rc-polling-'));
  await fs.writeFile(path.join(dir, 'helper.py'), '# helper\n');
  link = new CountingLink();
  manager = slurmManager(dir, link);
});

afterEach(async () => {
  await manager.shutdown();
  jest.useRealTimers();
  await fs.rm(dir, { recursive: true, force: true });
});

/** Submit `n` sessions; the fake link files each session's state under `/job-<id>/`. */
async function submit(n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const s = await manager.submit('hpc');
    ids.push(s.jobId!);
    // the manager reads <remoteDir>/state.json; map it to the job for the fake
    (manager as unknown as { sessions: Map<string, { remoteDir: string }> }).sessions.get(s.id)!.remoteDir =
      `/x/job-${s.jobId}/`;
  }
  return ids;
}

function run(ids: string[]): void {
  for (const id of ids) {
    link.jobs.set(id, { state: 'RUNNING', reason: 'None' });
    link.helpers.set(id, { status: 'ready', heartbeatAge: 0 });
  }
}

const states = () => manager.list().map(s => s.state);

describe('polling etiquette (counted with fake timers)', () => {
  it("says what a running session's helper serves between scheduler queries, without asking the scheduler", async () => {
    const [id] = await submit(1);
    run([id]);
    await jest.advanceTimersByTimeAsync(3 * MIN); // steady: the scheduler is asked every 5 min
    const events: unknown[] = [];
    manager.events.on('event', (e: unknown) => events.push(e));
    const from = Date.now();
    const port = { port: 1, name: 'dask-notebook', path: '/p/1/status', stripPrefix: true, workers: 2, threads: 2 };
    link.helpers.set(id, { status: 'ready', heartbeatAge: 0, httpPorts: [port] });
    const queries = () => link.queries.filter(q => q.at >= from).length;
    const before = manager.list()[0];
    await jest.advanceTimersByTimeAsync(31_000);
    const after = manager.list()[0];
    expect(after.httpPorts).toEqual([port]);
    // the change moved updatedAt, not the job's end: what is left counts down from endsAt
    expect(queries()).toBe(0);
    expect(after.updatedAt).not.toBe(before.updatedAt);
    expect(after.endsAt).toBe(before.endsAt);
    expect(Date.parse(after.endsAt!) - Date.parse(after.createdAt)).toBeGreaterThan(3500_000);
    // said once, not at every read (a scheduler query, every 5 min, says the time left)
    expect(events).toHaveLength(1 + queries());
    await jest.advanceTimersByTimeAsync(2 * MIN);
    expect(events).toHaveLength(1 + queries());
    expect(queries()).toBeLessThanOrEqual(1);
  });

  it('counts the worker jobs a helper reports in the one batched query, at the steady pace while they wait', async () => {
    const [id] = await submit(1);
    run([id]);
    await jest.advanceTimersByTimeAsync(6 * MIN); // steady: the scheduler is asked every 5 min
    const workerJobs = () => manager.list()[0].workerJobs;
    link.jobs.set('500', { state: 'PENDING', reason: 'Resources' });
    link.jobs.set('501', { state: 'RUNNING', reason: 'None' });
    link.helpers.set(id, { status: 'ready', heartbeatAge: 0, workerJobs: ['500', '501'] });
    const from = Date.now();
    await jest.advanceTimersByTimeAsync(31_000);
    // reported, then asked about at once, in the session's own query
    const asked = link.queries.filter(q => q.at >= from);
    expect(asked).toHaveLength(1);
    expect(asked[0].ids.sort()).toEqual([id, '500', '501'].sort());
    expect(workerJobs()).toEqual([
      { id: '500', state: 'queued', reason: expect.stringMatching(/resources/i) },
      { id: '501', state: 'running' }
    ]);
    // one waits in the queue: asked about every 30 s (not every 5 min, not every 5 s)
    const waiting = Date.now();
    await jest.advanceTimersByTimeAsync(5 * MIN);
    expect(link.squeueCount(waiting, Date.now())).toBe(10);
    link.jobs.set('500', { state: 'RUNNING', reason: 'None' });
    await jest.advanceTimersByTimeAsync(31_000);
    expect(workerJobs()?.map(j => j.state)).toEqual(['running', 'running']);
    // none waits: back to the 5-minute recheck; jobs that left the queue are ended, and
    // never asked about again
    const steady = Date.now();
    await jest.advanceTimersByTimeAsync(4 * MIN);
    expect(link.squeueCount(steady, Date.now())).toBeLessThanOrEqual(1);
    link.jobs.delete('500');
    link.jobs.delete('501');
    await jest.advanceTimersByTimeAsync(6 * MIN);
    expect(workerJobs()?.map(j => j.state)).toEqual(['ended', 'ended']);
    const last = link.queries[link.queries.length - 1];
    await jest.advanceTimersByTimeAsync(6 * MIN);
    expect(link.queries[link.queries.length - 1]).not.toBe(last);
    expect(link.queries[link.queries.length - 1].ids).toEqual([id]);
  });

  it('one batched query per cycle, and the same steady rate (<= 2/min) for 1 and for 20 sessions', async () => {
    const perMinute: Record<number, number> = {};
    for (const n of [1, 20]) {
      const ids = await submit(n);
      run(ids);
      await jest.advanceTimersByTimeAsync(3 * MIN); // reach steady state
      expect(states().filter(s => s === 'running')).toHaveLength(n);
      const from = Date.now();
      await jest.advanceTimersByTimeAsync(10 * MIN);
      const window = link.queries.filter(q => q.at >= from);
      expect(window.every(q => q.ids.length === n)).toBe(true); // every session in every query
      perMinute[n] = window.length / 10;
      // end this round: cancel the sessions so that the next round counts only its own
      for (const s of manager.list()) {
        await manager.cancel(s.id);
      }
      expect(manager.list().every(s => s.state === 'ended')).toBe(true);
      link.jobs.clear();
      link.queries.splice(0);
    }
    expect(perMinute[20]).toBe(perMinute[1]);
    expect(perMinute[1]).toBeLessThanOrEqual(2);
    expect(perMinute[1]).toBeGreaterThan(0); // the scheduler is still asked now and then
  });

  it('a status cycle still running when the agent stops starts no other, and no connection', async () => {
    link.squeueMs = 5_000;
    await submit(1);
    await jest.advanceTimersByTimeAsync(1_000); // the first cycle now waits for squeue
    expect(link.queries).toHaveLength(1);
    await manager.shutdown();
    await jest.advanceTimersByTimeAsync(10_000); // squeue answers after the stop
    // nothing left to run: the agent's process can exit
    expect(jest.getTimerCount()).toBe(0);
    expect(link.queries).toHaveLength(1);
  });

  it('every 3 s while young in the queue, every 30 s once it has waited 2 minutes', async () => {
    await submit(1);
    const t0 = Date.now();
    await jest.advanceTimersByTimeAsync(2 * MIN);
    expect(link.squeueCount(t0, t0 + 2 * MIN)).toBeGreaterThanOrEqual(35);
    await jest.advanceTimersByTimeAsync(MIN); // the switch happens within this minute
    const from = Date.now();
    await jest.advanceTimersByTimeAsync(5 * MIN);
    expect(link.squeueCount(from, from + 5 * MIN)).toBe(10);
    expect(states()).toEqual(['queued']);
  });

  it('every 3 s while the helper starts, then steady; the helper heartbeat replaces most queries', async () => {
    const [id] = await submit(1);
    await jest.advanceTimersByTimeAsync(5 * MIN); // long in the queue: slow
    link.jobs.set(id, { state: 'RUNNING', reason: 'None' });
    link.helpers.set(id, { status: 'starting', heartbeatAge: 0 });
    await jest.advanceTimersByTimeAsync(31_000);
    expect(states()).toEqual(['starting']);
    const t = Date.now();
    await jest.advanceTimersByTimeAsync(30_000);
    expect(link.squeueCount(t, t + 30_000)).toBeGreaterThanOrEqual(9); // 3 s
    link.helpers.set(id, { status: 'ready', heartbeatAge: 0 });
    await jest.advanceTimersByTimeAsync(4_000);
    expect(states()).toEqual(['running']);
    const from = Date.now();
    await jest.advanceTimersByTimeAsync(15 * MIN);
    // one scheduler query every 5 minutes; the fresh heartbeat is read every 30 s
    expect(link.squeueCount(from, from + 15 * MIN)).toBe(3);
  });

  it('a stale heartbeat or a stopping helper makes it ask the scheduler at once', async () => {
    const [id] = await submit(1);
    run([id]);
    await jest.advanceTimersByTimeAsync(3 * MIN);
    const before = link.queries.length;
    link.helpers.set(id, { status: 'stopping', heartbeatAge: 0 });
    link.jobs.set(id, { state: 'CANCELLED', reason: 'None' });
    await jest.advanceTimersByTimeAsync(31_000);
    expect(link.queries.length).toBe(before + 1);
    expect(manager.list()[0]).toMatchObject({ state: 'ended', reason: expect.stringContaining('cancelled') });
  });

  it("a kernel connecting brings the next cycle to the kernels' pace: a job cancelled from outside ends in seconds", async () => {
    const [id] = await submit(1);
    run([id]);
    await jest.advanceTimersByTimeAsync(3 * MIN + 10_000); // steady: the next cycle is ~20 s away
    const internals = manager as unknown as {
      sessions: Map<string, unknown>;
      kernels: { ofSession: () => string[]; opts: { changed: (s: unknown) => void } };
    };
    jest.spyOn(internals.kernels, 'ofSession').mockReturnValue(['k1']);
    internals.kernels.opts.changed([...internals.sessions.values()][0]); // what registering a kernel does
    link.helpers.set(id, { status: 'stopping', heartbeatAge: 0 });
    link.jobs.set(id, { state: 'CANCELLED', reason: 'None' });
    await jest.advanceTimersByTimeAsync(6_000);
    expect(manager.list()[0]).toMatchObject({ state: 'ended' });
  });

  it("a helper that ended its idle job and refuses connections: the end says idle, from the helper's last state", async () => {
    const [id] = await submit(1);
    run([id]);
    await jest.advanceTimersByTimeAsync(3 * MIN + 10_000); // the helper's state was read as ready
    const internals = manager as unknown as {
      sessions: Map<string, unknown>;
      kernels: { opts: { helperUnreachable: (s: unknown) => void } };
    };
    const idleEnded = { idleSeconds: 61, coreHoursReleased: 0.9, at: Date.now() / 1000 };
    link.helpers.set(id, { status: 'stopping', heartbeatAge: 0, idleEnded });
    link.jobs.set(id, { state: 'COMPLETED', reason: 'None' });
    internals.kernels.opts.helperUnreachable([...internals.sessions.values()][0]); // a kernel's status asked
    await jest.advanceTimersByTimeAsync(1_000);
    expect(manager.list()[0]).toMatchObject({
      state: 'ended',
      reason: expect.stringMatching(/idle for 1 min, released 0\.9 core-hours/)
    });
  });

  it("a helper that fails and ends its job before it is seen starting: the end is the helper's sentence", async () => {
    const [id] = await submit(1);
    link.helpers.set(id, { status: 'failed', heartbeatAge: 0, error: 'working directory /x does not exist' });
    link.jobs.set(id, { state: 'FAILED', reason: 'NonZeroExitCode' });
    await jest.advanceTimersByTimeAsync(3_000);
    expect(manager.list()[0]).toMatchObject({
      state: 'ended',
      reason: 'The session failed to start on node1: working directory /x does not exist'
    });
  });

  it('controller down: sessions stay as they were (never ended), and queries back off', async () => {
    const [a, b] = await submit(2);
    run([a]);
    await jest.advanceTimersByTimeAsync(MIN);
    expect(states().sort()).toEqual(['queued', 'running']);
    link.controller = 'down';
    link.helpers.set(a, { status: 'ready', heartbeatAge: 1000 }); // and a silent helper
    const from = link.queries.length;
    await jest.advanceTimersByTimeAsync(30 * MIN);
    const at = link.queries.slice(from).map(q => q.at);
    const gaps = at.slice(1).map((t, i) => t - at[i]);
    expect(gaps.length).toBeGreaterThan(3);
    expect(gaps.every((g, i) => i === 0 || g >= gaps[i - 1])).toBe(true); // never faster
    expect(Math.max(...gaps)).toBe(300_000); // capped at 5 minutes
    expect(at.length).toBeLessThan(20); // 30 minutes of outage: not 600 queries
    expect(states().sort()).toEqual(['queued', 'running']);
    // back up: the next query finds them, and the pace recovers
    link.controller = 'up';
    link.helpers.set(a, { status: 'ready', heartbeatAge: 0 });
    await jest.advanceTimersByTimeAsync(5 * MIN);
    expect(states().sort()).toEqual(['queued', 'running']);
    expect(link.jobs.get(b)!.state).toBe('PENDING');
  });

  it('a hung controller (command timeout) is unknown, never ended, and backs off', async () => {
    await submit(1);
    await jest.advanceTimersByTimeAsync(10_000);
    link.controller = 'hung';
    const from = link.queries.length;
    await jest.advanceTimersByTimeAsync(20 * MIN);
    expect(states()).toEqual(['queued']);
    expect(link.queries.length - from).toBeLessThan(12);
  });

  it('a slow controller is asked at most once per 10x its answer time', async () => {
    await submit(1);
    link.squeueMs = 8_000; // a busy slurmctld
    await jest.advanceTimersByTimeAsync(10 * MIN);
    const at = link.queries.map(q => q.at);
    const gaps = at.slice(2).map((t, i) => t - at[i + 1]);
    expect(gaps.length).toBeGreaterThan(3);
    expect(Math.min(...gaps)).toBeGreaterThanOrEqual(80_000 + 8_000);
  });

  it('a job that can never start (walltime over the limit) is cancelled, with the reason', async () => {
    const [id] = await submit(1);
    link.jobs.set(id, { state: 'PENDING', reason: 'PartitionTimeLimit' });
    await jest.advanceTimersByTimeAsync(4_000);
    expect(link.cancels).toEqual([id]);
    expect(manager.list()[0]).toMatchObject({
      state: 'ended',
      reason:
        "The job was cancelled: the walltime exceeds the partition's limit: the job will not start (Slurm: PartitionTimeLimit)."
    });
  });
});
