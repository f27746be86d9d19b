/**
 * A kernel's status when its helper cannot be reached: never "dead" on a guess, and a
 * helper that cannot be asked while the link is up (the job may have been cancelled from
 * outside) makes the manager ask the scheduler now. Fakes for the helper and the link.
 */
import type { IClusterLink } from '../cluster/link';
import { HelperClient } from '../sessions/helper-client';
import { KernelTable } from '../sessions/kernels';
import type { ISessionRecord } from '../sessions/records';

function tableWithHelperFailing(code: string | undefined): { table: KernelTable; refused: ISessionRecord[] } {
  const session = { id: 's1', state: 'running', clusterKey: 'c' } as unknown as ISessionRecord;
  const refused: ISessionRecord[] = [];
  const helper = {
    request: () => Promise.reject(Object.assign(new Error("Cannot reach the session's helper on node2"), { code }))
  } as unknown as HelperClient;
  const table = new KernelTable({
    helper,
    log: () => undefined,
    session: id => (id === 's1' ? session : undefined),
    sessionProfile: async () => ({}) as never,
    linkNow: async () => ({}) as never,
    changed: () => undefined,
    helperUnreachable: s => refused.push(s)
  });
  (table as unknown as { kernels: Map<string, unknown> }).kernels.set('k1', {
    kernelId: 'k1',
    sessionId: 's1',
    remotePid: 1,
    forwards: [],
    connection: {},
    stopped: false
  });
  return { table, refused };
}

describe('kernel status with an unreachable helper', () => {
  it('a refusing node (link up, helper gone): unknown, and the scheduler is to be asked', async () => {
    const { table, refused } = tableWithHelperFailing('forward-failed');
    await expect(table.status('k1')).resolves.toMatchObject({ alive: null });
    expect(refused.map(s => s.id)).toEqual(['s1']);
  });

  it('a helper that says it stops, or does not answer (no SSH error): the scheduler is to be asked too', async () => {
    const { table, refused } = tableWithHelperFailing(undefined);
    await expect(table.status('k1')).resolves.toMatchObject({ alive: null });
    expect(refused.map(s => s.id)).toEqual(['s1']);
  });

  it('a link that is down: unknown, nothing asked', async () => {
    for (const code of ['not-connected', 'closed', 'timeout']) {
      const { table, refused } = tableWithHelperFailing(code);
      await expect(table.status('k1')).resolves.toMatchObject({ alive: null });
      expect(refused).toEqual([]);
    }
  });
});

describe('a kernel that is gone', () => {
  it('with its session: dead for good (final), so Jupyter does not try to restart it', async () => {
    const { table } = tableWithHelperFailing(undefined);
    table.endSession('s1', 'the session ended: cancelled by you');
    await expect(table.status('k1')).resolves.toEqual({
      alive: false,
      reason: 'the session ended: cancelled by you',
      final: true
    });
  });

  it('shut down or stopped for a restart: not final (a restart may follow)', async () => {
    const { table } = tableWithHelperFailing(undefined);
    (table as unknown as { drop: (k: unknown, why: string) => void }).drop(
      (table as unknown as { kernels: Map<string, unknown> }).kernels.get('k1'),
      'shut down'
    );
    await expect(table.status('k1')).resolves.toEqual({ alive: false, reason: 'shut down' });
  });
});

describe("a helper's state.json that does not come", () => {
  afterEach(() => jest.useRealTimers());

  it('is no state after 30 s: a hung read holds neither the status cycle nor an ending', async () => {
    jest.useFakeTimers();
    const client = new HelperClient({ stateDir: '/nonexistent', log: () => undefined } as never);
    const hung = { readFile: () => new Promise<Buffer>(() => undefined) } as unknown as IClusterLink;
    const s = { id: 's1', remoteDir: '/home/u/.jupyter-remote-cluster/sessions/s1' } as unknown as ISessionRecord;
    let done = false;
    const read = client.readState(s, hung).then(st => {
      done = true;
      return st;
    });
    await jest.advanceTimersByTimeAsync(29_000);
    expect(done).toBe(false);
    await jest.advanceTimersByTimeAsync(1_000);
    await expect(read).resolves.toBeUndefined();
    expect(jest.getTimerCount()).toBe(0);
  });
});
