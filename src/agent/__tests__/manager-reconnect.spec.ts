/**
 * What the session manager does when a cluster's SSH link drops: one reconnect loop per
 * cluster with backoff, the UI told "reconnecting" then "connected", sessions untouched,
 * and no retrying of failures only the user can fix. The link is a scripted stand-in for
 * the SSH connection (the real link cut runs on the testbed: tests/testbed/test_link_cut.py).
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import type { AgentEvent, IClusterProfile } from '../../common/api';
import type { ICommandResult, IJobStatus, ISchedulerAdapter } from '../schedulers/types';
import type { IClusterLink } from '../cluster/link';
import { SessionManager } from '../sessions/manager';
import { HPC_PROFILE } from './helpers/profile';

const profile = HPC_PROFILE;

/** Every job is running on node1. */
const adapter: ISchedulerAdapter = {
  name: 'fake',
  title: 'Fake',
  validate: () => undefined,
  renderScript: () => '',
  submitCommand: () => 'submit',
  parseSubmit: () => '1',
  statusCommand: ids => `status ${ids.join(',')}`,
  parseStatus: (ids: string[], _r: ICommandResult) =>
    new Map<string, IJobStatus>(ids.map(id => [id, { jobId: id, phase: 'running', nativeState: 'R', node: 'node1' }])),
  cancelCommand: id => `cancel ${id}`
};

class ScriptedLink implements IClusterLink {
  closeListeners: ((m: string) => void)[] = [];
  commands: string[] = [];
  closed = false;
  async exec(command: string): Promise<ICommandResult> {
    this.commands.push(command);
    return { code: 0, stdout: '', stderr: '' };
  }
  async writeFile(): Promise<void> {}
  async readFile(): Promise<Buffer> {
    return Buffer.from(
      JSON.stringify({ status: 'ready', host: 'node1', controlPort: 1, heartbeat: Date.now() / 1000 })
    );
  }
  async forwardOut(): Promise<never> {
    throw new Error('not used here');
  }
  onClose(l: (m: string) => void): void {
    this.closeListeners.push(l);
  }
  close(): void {
    this.closed = true;
  }
  drop(message: string): void {
    this.closeListeners.splice(0).forEach(l => l(message));
  }
}

async function until(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) {
      throw new Error(`timed out waiting for ${what}`);
    }
    await new Promise(r => setTimeout(r, 20));
  }
}

async function managerWithRunningSession(
  connect: (p: IClusterProfile) => Promise<IClusterLink>,
  state: 'running' | 'ended' = 'running'
): Promise<{ manager: SessionManager; events: AgentEvent[]; dir: string }> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'rc-reconnect-'));
  const record = {
    id: 'abc123',
    profile: 'hpc',
    cluster: 'hpc',
    resources: {},
    state,
    jobId: '42',
    node: 'node1',
    createdAt: new Date().toISOString(),
    updatedAt: new Date().toISOString(),
    clusterKey: '|login|||',
    remoteDir: '/home/u/.jupyter-remote-cluster/sessions/abc123',
    owner: 'user',
    kernels: []
  };
  await fs.writeFile(path.join(dir, 'sessions.json'), JSON.stringify([record]));
  const manager = new SessionManager({
    stateDir: dir,
    helperPath: '/nonexistent',
    baseUrl: '/',
    profiles: async () => [profile],
    adapters: { slurm: adapter },
    connect,
    log: () => undefined
  });
  const events: AgentEvent[] = [];
  manager.events.on('event', (e: AgentEvent) => events.push(e));
  await manager.load();
  return { manager, events, dir };
}

const connectionStates = (events: AgentEvent[]) => events.flatMap(e => (e.type === 'connection' ? [e.state] : []));

describe('SessionManager after a dropped link', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0)) {
      await c();
    }
  });

  it('reconnects once for the cluster, says so, and keeps the session running', async () => {
    const links: ScriptedLink[] = [];
    const { manager, events, dir } = await managerWithRunningSession(async () => {
      const l = new ScriptedLink();
      links.push(l);
      return l;
    });
    cleanup.push(
      () => manager.shutdown(),
      () => fs.rm(dir, { recursive: true, force: true })
    );
    await until('the first poll', () => links.length === 1 && links[0].commands.length > 0);
    expect(connectionStates(events)).toEqual(['connecting', 'connected']);

    links[0].drop('Connection to login was lost: Keepalive timeout.');
    await until('a second link', () => links.length === 2 && links[1].commands.length > 0);
    expect(connectionStates(events)).toEqual(['connecting', 'connected', 'reconnecting', 'connected']);
    const reconnecting = events.find(e => e.type === 'connection' && e.state === 'reconnecting');
    expect(reconnecting).toMatchObject({ cluster: 'hpc', message: expect.stringMatching(/Keepalive timeout/) });
    // The job was polled again at once through the new link, and never declared ended.
    expect(links[1].commands[0]).toBe('status 42');
    expect(manager.get('abc123')?.state).toBe('running');
    // Replayed to UIs that connect later.
    expect(manager.connectionEvents()).toEqual([expect.objectContaining({ cluster: 'hpc', state: 'connected' })]);
  });

  /**
   * A running session whose link drops once; reconnect attempt n (counting the first
   * connect as 1) fails with `failure(n)` until that is undefined. Resolves once attempt
   * `succeedsAt` connected, with the time of each attempt.
   */
  async function dropAndReconnect(failure: (call: number) => Error | undefined, succeedsAt: number) {
    let calls = 0;
    const times: number[] = [];
    const { manager, events, dir } = await managerWithRunningSession(async () => {
      calls++;
      times.push(Date.now());
      const err = failure(calls);
      if (err) {
        throw err;
      }
      return new ScriptedLink();
    });
    cleanup.push(
      () => manager.shutdown(),
      () => fs.rm(dir, { recursive: true, force: true })
    );
    await until('the first link', () => calls === 1 && connectionStates(events).includes('connected'));
    const first = (await (manager as any).clusters.links.get('|login|||')) as ScriptedLink;
    first.drop('Connection to bastion was lost.');
    await until(
      `attempt ${succeedsAt} succeeding`,
      () => calls === succeedsAt && connectionStates(events).at(-1) === 'connected',
      15_000
    );
    const failures = events
      .filter(e => e.type === 'connection' && /attempt \d failed/.test(e.message ?? ''))
      .map(e => (e as { message: string }).message);
    return { manager, times, failures };
  }

  it('backs off between failed attempts (1 s, then 2 s) and reports each failure', async () => {
    const timedOut = () => Object.assign(new Error('connect ETIMEDOUT 198.18.0.2:22.'), { code: 'error' });
    const { manager, times, failures } = await dropAndReconnect(n => (n === 2 || n === 3 ? timedOut() : undefined), 4);
    expect(times[2] - times[1]).toBeGreaterThanOrEqual(950);
    expect(times[3] - times[2]).toBeGreaterThanOrEqual(1950);
    expect(failures).toEqual([
      expect.stringMatching(/^Reconnect attempt 1 failed: connect ETIMEDOUT .* Next attempt in 1 s\.$/),
      expect.stringMatching(/^Reconnect attempt 2 failed: .* Next attempt in 2 s\.$/)
    ]);
    expect(manager.get('abc123')?.state).toBe('running');
  });

  it('retries every second, without backing off, while the host cannot even be reached', async () => {
    const unreachable = () =>
      Object.assign(new Error('Could not connect to bastion: 198.18.0.2:22 is unreachable from here.'), {
        code: 'unreachable'
      });
    const { times, failures } = await dropAndReconnect(n => (n >= 2 && n <= 5 ? unreachable() : undefined), 6);
    // 1 s apart each time (backing off would have waited 1, 2, 4 and 8 s: 15 s in all)
    const gaps = times.slice(2).map((t, i) => t - times[i + 1]);
    expect(gaps.every(g => g >= 950 && g < 1900)).toBe(true);
    expect(failures).toHaveLength(4);
    expect(failures.every(m => m.endsWith('Next attempt in 1 s.'))).toBe(true);
  });

  it('stops at a failure only the user can fix (changed host key) and says why', async () => {
    let calls = 0;
    const { manager, events, dir } = await managerWithRunningSession(async () => {
      calls++;
      if (calls > 1) {
        throw Object.assign(new Error('The host key of login has changed.'), { code: 'host-key-changed' });
      }
      return new ScriptedLink();
    });
    cleanup.push(
      () => manager.shutdown(),
      () => fs.rm(dir, { recursive: true, force: true })
    );
    await until('the first link', () => connectionStates(events).includes('connected'));
    ((await (manager as any).clusters.links.get('|login|||')) as ScriptedLink).drop('Connection to login was lost.');
    await until('closed', () => connectionStates(events).at(-1) === 'closed');
    await new Promise(r => setTimeout(r, 1500));
    expect(calls).toBe(2);
    expect(events.at(-1)).toMatchObject({ state: 'closed', message: 'The host key of login has changed.' });
    expect(manager.get('abc123')?.state).toBe('running');
  });

  it('waits for the user when a login needs a person: no poll, kernel or reconnect starts one', async () => {
    let calls = 0;
    let personThere = false;
    const { manager, events, dir } = await managerWithRunningSession(async () => {
      calls++;
      if (calls > 1 && !personThere) {
        throw Object.assign(
          new Error('bob@bastion asks for a one-time code or password, and no JupyterLab is open to ask you.'),
          {
            code: 'sign-in-needed'
          }
        );
      }
      return new ScriptedLink();
    });
    cleanup.push(
      () => manager.shutdown(),
      () => fs.rm(dir, { recursive: true, force: true })
    );
    await until('the first link', () => connectionStates(events).includes('connected'));
    ((await (manager as any).clusters.links.get('|login|||')) as ScriptedLink).drop('Connection to login was lost.');
    await until('sign-in-needed', () => connectionStates(events).at(-1) === 'sign-in-needed');
    expect(calls).toBe(2);

    // What runs on its own meanwhile: polls, kernel status checks, ZMQ re-opening forwards.
    (manager as any).poller.schedule('|login|||', 0);
    await expect((manager as any).clusters.link(profile)).rejects.toMatchObject({ code: 'sign-in-needed' });
    await expect(manager.kernelStatus('no-such-kernel')).resolves.toBeDefined();
    await new Promise(r => setTimeout(r, 1500));
    expect(calls).toBe(2);
    expect(manager.connectionEvents()).toEqual([expect.objectContaining({ state: 'sign-in-needed' })]);

    // The user signs in (twice, quickly: one login).
    personThere = true;
    await Promise.all([manager.signIn('hpc'), manager.signIn('hpc')]);
    await until('connected again', () => connectionStates(events).at(-1) === 'connected');
    expect(calls).toBe(3);
    expect(manager.get('abc123')?.state).toBe('running');
  });

  it('does not reconnect a cluster without live sessions', async () => {
    let calls = 0;
    const { manager, events, dir } = await managerWithRunningSession(async () => {
      calls++;
      return new ScriptedLink();
    }, 'ended');
    cleanup.push(
      () => manager.shutdown(),
      () => fs.rm(dir, { recursive: true, force: true })
    );
    // Nothing live: no poll, no connection until someone needs one.
    await new Promise(r => setTimeout(r, 200));
    expect(calls).toBe(0);
    const link = (await (manager as any).clusters.link(profile)) as ScriptedLink;
    link.drop('Connection to login was lost.');
    await new Promise(r => setTimeout(r, 1200));
    expect(calls).toBe(1);
    expect(connectionStates(events)).toEqual(['connecting', 'connected', 'closed']);
  });
});

describe('SessionManager status queries on a login node shared by two batch systems', () => {
  it('asks each batch system about its own jobs only, with its own login setup', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'rc-groups-'));
    const now = new Date().toISOString();
    const rec = (id: string, prof: string, jobId: string) => ({
      id,
      profile: prof,
      cluster: prof,
      resources: {},
      state: 'running',
      jobId,
      node: 'node1',
      createdAt: now,
      updatedAt: now,
      clusterKey: '|login|||',
      remoteDir: `/home/u/.jupyter-remote-cluster/sessions/${id}`,
      owner: 'user',
      kernels: []
    });
    await fs.writeFile(
      path.join(dir, 'sessions.json'),
      JSON.stringify([rec('5e5510', 'hpc', '42'), rec('5e5520', 'box', 'login:77:123')])
    );
    const named = (name: string): ISchedulerAdapter => ({
      ...adapter,
      name,
      statusCommand: ids => `${name}-status ${ids.join(',')}`
    });
    const link = new ScriptedLink();
    const manager = new SessionManager({
      stateDir: dir,
      helperPath: '/nonexistent',
      baseUrl: '/',
      profiles: async () => [profile, { ...profile, name: 'box', scheduler: 'ssh', loginSetup: ['export X=1'] }],
      adapters: { slurm: named('slurm'), ssh: named('ssh') },
      connect: async () => link,
      log: () => undefined
    });
    try {
      await manager.load();
      await until('both queries', () => link.commands.length >= 2);
      expect(link.commands.slice(0, 2).sort()).toEqual([
        'slurm-status 42',
        '{ export X=1\n} && ssh-status login:77:123'
      ]);
    } finally {
      await manager.shutdown();
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
