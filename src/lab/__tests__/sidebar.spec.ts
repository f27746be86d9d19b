import { nullTranslator } from '@jupyterlab/translation';
import { CommandRegistry } from '@lumino/commands';

import type { ISession } from '../../common/api';
import { RemoteClusterModel } from '../model';
import { SessionsPanel } from '../sidebar';
import { SignInStatus } from '../sign-in';

function running(id: string, profile: string): ISession {
  return {
    id,
    profile,
    cluster: profile,
    resources: {},
    state: 'running',
    node: 'node1',
    createdAt: '2026-11-25T08:00:00.000Z',
    updatedAt: '2026-11-25T08:00:00.000Z'
  };
}

describe('SessionsPanel connection line', () => {
  it('shows each session its cluster link: reconnecting with the reason, then connected', () => {
    const model = new RemoteClusterModel();
    const panel = new SessionsPanel(model, new CommandRegistry(), nullTranslator.load('jupyterlab'));
    model.handle({ type: 'session', session: running('a', 'hpc') });
    model.handle({ type: 'session', session: { ...running('b', 'other'), connectivity: 'node-ssh' } });
    const line = (id: string) =>
      panel.node.querySelector<HTMLElement>(`[data-session-id="${id}"] .jp-RemoteCluster-connection`);
    expect(line('a')).toBeNull(); // nothing known yet: no line
    const state = (id: string) =>
      panel.node.querySelector(`[data-session-id="${id}"] .jp-RemoteCluster-sessionState`)?.textContent;
    expect(state('a')).toBe('Running on node1');
    expect(state('b')).toBe('Running on node1 (node-ssh)');

    model.handle({
      type: 'connection',
      cluster: 'hpc',
      state: 'reconnecting',
      message: 'Connection to login was lost.'
    });
    expect(line('a')?.dataset.connectionState).toBe('reconnecting');
    expect(line('a')?.textContent).toBe('Reconnecting… Connection to login was lost.');
    expect(line('b')).toBeNull(); // another cluster is not affected

    model.handle({ type: 'connection', cluster: 'hpc', state: 'connected', message: 'Reconnected to login.' });
    expect(line('a')?.dataset.connectionState).toBe('connected');
    expect(line('a')?.textContent).toBe('Connected');
    // The session itself never left "running".
    expect(panel.node.querySelector('[data-session-id="a"]')?.getAttribute('data-state')).toBe('running');

    model.handle({ type: 'connection', cluster: 'hpc', state: 'closed', message: 'Host key changed.' });
    expect(line('a')?.textContent).toBe('Disconnected: Host key changed.');
    panel.dispose();
    model.dispose();
  });
});

describe('SessionsPanel detached kernels', () => {
  it('lists kernels that outlived their Jupyter server, each with an Attach button for it', async () => {
    const model = new RemoteClusterModel();
    const commands = new CommandRegistry();
    const calls: unknown[] = [];
    commands.addCommand('remote-cluster:attach-kernel', { execute: args => void calls.push(args) });
    const panel = new SessionsPanel(model, commands, nullTranslator.load('jupyterlab'));
    const rows = () => [
      ...panel.node.querySelectorAll<HTMLElement>('[data-session-id="a"] .jp-RemoteCluster-detachedKernel')
    ];

    model.handle({ type: 'session', session: { ...running('a', 'hpc'), kernels: ['k0'] } });
    expect(rows()).toEqual([]);
    model.handle({
      type: 'session',
      session: { ...running('a', 'hpc'), kernels: [], detachedKernels: ['0123456789abcdef', 'fedcba9876543210'] }
    });
    expect(rows().map(r => r.dataset.kernelId)).toEqual(['0123456789abcdef', 'fedcba9876543210']);
    expect(rows()[1].querySelector('span')?.textContent).toBe('Kernel fedcba98 is running, not connected');
    rows()[1].querySelector('button')!.click();
    await Promise.resolve();
    expect(calls).toEqual([{ session: 'a', kernel: 'fedcba9876543210' }]);

    // Attached (or the job ended): the rows go away.
    model.handle({ type: 'session', session: { ...running('a', 'hpc'), kernels: ['fedcba9876543210'] } });
    expect(rows()).toEqual([]);
    panel.dispose();
    model.dispose();
  });
});

describe('SessionsPanel warnings', () => {
  it('shows what the user should know about a live session, and nothing once it is fine', () => {
    const model = new RemoteClusterModel();
    const panel = new SessionsPanel(model, new CommandRegistry(), nullTranslator.load('jupyterlab'));
    const warnings = () =>
      [...panel.node.querySelectorAll('[data-session-id="a"] .jp-RemoteCluster-warning')].map(w => w.textContent);
    const old =
      'Started by an earlier version of jupyterlab-remote-cluster: … start a new session to get the protections.';
    const dask = 'Dask did not start: … (Dask runs only over TLS, never in the clear, and python cannot do TLS: …)';
    model.handle({ type: 'session', session: { ...running('a', 'hpc'), warnings: [old, dask] } });
    expect(warnings()).toEqual([old, dask]);
    model.handle({ type: 'session', session: running('a', 'hpc') });
    expect(warnings()).toEqual([]);
    // queued: what the login node's checks missed, before the wait
    const missing = 'The working directory ~/w does not exist on the login node; …';
    model.handle({ type: 'session', session: { ...running('a', 'hpc'), state: 'queued', warnings: [missing] } });
    expect(warnings()).toEqual([missing]);
    panel.dispose();
    model.dispose();
  });
});

describe('Signing in', () => {
  it('shows sign-in-needed with a Sign in button, and a status-bar badge while any cluster waits', async () => {
    const model = new RemoteClusterModel();
    const commands = new CommandRegistry();
    const calls: unknown[] = [];
    commands.addCommand('remote-cluster:sign-in', { execute: args => void calls.push(args) });
    const trans = nullTranslator.load('jupyterlab');
    const panel = new SessionsPanel(model, commands, trans);
    const badge = new SignInStatus(model, commands, trans);
    model.handle({ type: 'session', session: running('a', 'hpc') });
    expect(badge.active).toBe(false);

    const message = 'bob@bastion asks for a one-time code or password, and no JupyterLab is open to ask you.';
    model.handle({ type: 'connection', cluster: 'hpc', state: 'sign-in-needed', message });
    const line = panel.node.querySelector<HTMLElement>('[data-session-id="a"] .jp-RemoteCluster-connection')!;
    expect(line.dataset.connectionState).toBe('sign-in-needed');
    expect(line.textContent).toContain(`Sign-in needed: ${message}`);
    line.querySelector('button')!.click();
    await Promise.resolve();
    expect(calls).toEqual([{ session: 'a', cluster: 'hpc' }]);

    expect(badge.active).toBe(true);
    expect(badge.node.textContent).toBe('Sign in to hpc');
    expect(badge.node.title).toBe(`hpc: ${message}`);
    badge.node.click();
    await Promise.resolve();
    expect(calls).toHaveLength(2);

    model.handle({ type: 'connection', cluster: 'hpc', state: 'connected' });
    expect(badge.active).toBe(false);
    expect(panel.node.querySelector('[data-session-id="a"] .jp-RemoteCluster-connection button')).toBeNull();
    badge.dispose();
    panel.dispose();
    model.dispose();
  });
});

describe('SessionsPanel Dask workers', () => {
  it('lists the workers of a session, one per node, with their threads', () => {
    const model = new RemoteClusterModel();
    const panel = new SessionsPanel(model, new CommandRegistry(), nullTranslator.load('jupyterlab'));
    const line = () => panel.node.querySelector('[data-session-id="a"] .jp-RemoteCluster-daskWorkers')?.textContent;
    model.handle({ type: 'session', session: running('a', 'hpc') });
    expect(line()).toBeUndefined(); // no Dask (yet): no line
    model.handle({
      type: 'session',
      session: { ...running('a', 'hpc'), daskWorkers: [{ name: 'rc-worker-0', host: 'node1', threads: 1 }] }
    });
    expect(line()).toBe('Dask: 1 worker on node1, 1 thread');
    model.handle({
      type: 'session',
      session: {
        ...running('a', 'hpc'),
        daskWorkers: [
          { name: 'rc-worker-0', host: 'node1', threads: 4 },
          { name: 'rc-worker-1', host: 'node2', threads: 4 }
        ]
      }
    });
    expect(line()).toBe('Dask: 2 workers (node1, node2), 4 threads each');
    panel.dispose();
    model.dispose();
  });

  it("says what the scheduler says of the session's worker jobs, each job's reason in the tooltip", () => {
    const model = new RemoteClusterModel();
    const panel = new SessionsPanel(model, new CommandRegistry(), nullTranslator.load('jupyterlab'));
    const row = () => panel.node.querySelector<HTMLElement>('[data-session-id="a"] .jp-RemoteCluster-workerJobs');
    model.handle({ type: 'session', session: running('a', 'hpc') });
    expect(row()).toBeNull();
    model.handle({
      type: 'session',
      session: {
        ...running('a', 'hpc'),
        workerJobs: [
          { id: '41', state: 'running' },
          { id: '42', state: 'queued', reason: 'waiting for resources' },
          { id: '43', state: 'submitted' },
          { id: '40', state: 'ended', reason: 'cancelled' }
        ]
      }
    });
    expect(row()?.textContent).toBe('Worker jobs: 1 running, 2 queued, 1 ended');
    expect(row()?.title.split('\n')).toEqual([
      '41: running',
      '42: queued (waiting for resources)',
      '43: submitted',
      '40: ended (cancelled)'
    ]);
    model.handle({
      type: 'session',
      session: { ...running('a', 'hpc'), workerJobs: [{ id: '41', state: 'running' }] }
    });
    expect(row()?.textContent).toBe('Worker job: 1 running');
    panel.dispose();
    model.dispose();
  });
});

describe('SessionsPanel: the allocation hours', () => {
  it('the rescue actions show near the end; Relaunch on an ended session; continued sessions name each other', () => {
    jest.useFakeTimers();
    const model = new RemoteClusterModel();
    let soon = false;
    const panel = new SessionsPanel(model, new CommandRegistry(), nullTranslator.load('jupyterlab'), () => soon);
    const li = () => panel.node.querySelector<HTMLElement>('[data-session-id="a"]')!;
    const labels = (id: string) =>
      [...panel.node.querySelectorAll(`[data-session-id="${id}"] .jp-RemoteCluster-actions button`)].map(
        b => b.textContent
      );
    const endsAt = new Date(Date.now() + 3600_000).toISOString();
    model.handle({ type: 'session', session: { ...running('a', 'hpc'), jobId: '42', endsAt } });
    panel.show();
    (panel as unknown as { onAfterShow(): void }).onAfterShow();
    expect(labels('a')).toEqual([
      'Notebook',
      'Terminal',
      'Files',
      'Open port…',
      'Continue in a new job',
      'Continue with…',
      'Extend',
      'Save and stop',
      'Log',
      'Cancel'
    ]);
    jest.advanceTimersByTime(1100);
    expect(li().classList.contains('jp-mod-endsSoon')).toBe(false);
    soon = true;
    jest.advanceTimersByTime(1100);
    expect(li().classList.contains('jp-mod-endsSoon')).toBe(true);

    model.handle({ type: 'session', session: { ...running('a', 'hpc'), jobId: '42', endsAt, continuedBy: 'b' } });
    model.handle({
      type: 'session',
      session: {
        ...running('b', 'hpc'),
        jobId: '43',
        state: 'queued',
        continues: 'a',
        createdAt: '2026-11-25T09:00:00Z'
      }
    });
    expect(labels('a')).toEqual(['Notebook', 'Terminal', 'Files', 'Open port…', 'Log', 'Cancel']); // its successor is on its way
    const line = (id: string) =>
      panel.node.querySelector(`[data-session-id="${id}"] .jp-RemoteCluster-continuation`)?.textContent;
    expect(line('a')).toBe('Continued by job 43: notebooks move there when it runs');
    expect(line('b')).toBe('Continues job 42');
    model.handle({ type: 'session', session: { ...running('a', 'hpc'), state: 'ended', reason: 'walltime' } });
    expect(labels('a')).toEqual(['Relaunch', 'Remove']);
    panel.dispose();
    model.dispose();
    jest.useRealTimers();
  });

  /** A panel whose button `command` records what it was run with; `button(label)` on session a's row. */
  const withCommand = (command: string) => {
    const model = new RemoteClusterModel();
    const commands = new CommandRegistry();
    const ran: unknown[] = [];
    commands.addCommand(command, { execute: args => void ran.push(args) });
    const panel = new SessionsPanel(model, commands, nullTranslator.load('jupyterlab'), () => false);
    const button = (label: string) =>
      [...panel.node.querySelectorAll<HTMLButtonElement>('[data-session-id="a"] button')].find(
        b => b.textContent === label
      );
    const dispose = () => {
      panel.dispose();
      model.dispose();
    };
    return { model, ran, button, dispose };
  };

  it("offers the job environment's other kernels (Kernel…) only when it has some", async () => {
    const { model, ran, button, dispose } = withCommand('remote-cluster:open-notebook');
    model.handle({ type: 'session', session: running('a', 'hpc') });
    expect(button('Kernel…')).toBeUndefined();
    const kernelspecs = [{ name: 'bash', displayName: 'Bash', language: 'bash', interruptMode: 'signal' as const }];
    model.handle({ type: 'session', session: { ...running('a', 'hpc'), kernelspecs } });
    expect(button('Kernel…')!.title).toBe('A notebook on another kernel of the job: Bash');
    button('Kernel…')!.click();
    await Promise.resolve();
    expect(ran).toEqual([{ session: 'a', choose: 'true' }]);
    dispose();
  });

  it("opens the files of the session's cluster (Files: its profile)", async () => {
    const { model, ran, button, dispose } = withCommand('remote-cluster:open-cluster-files');
    model.handle({ type: 'session', session: running('a', 'hpc') });
    button('Files')!.click();
    await Promise.resolve();
    expect(ran).toEqual([{ session: 'a', profile: 'hpc' }]);
    dispose();
  });
});

describe('SessionsPanel: idle reclaim', () => {
  it('shows the time left before the helper ends an idle session, with Keep running, only during the countdown', async () => {
    jest.useFakeTimers();
    const model = new RemoteClusterModel();
    const commands = new CommandRegistry();
    const calls: unknown[] = [];
    commands.addCommand('remote-cluster:keep-session', { execute: args => void calls.push(args) });
    const panel = new SessionsPanel(model, commands, nullTranslator.load('jupyterlab'));
    const row = () => panel.node.querySelector<HTMLElement>('[data-session-id="a"] .jp-RemoteCluster-idleEnds');
    const idle = { timeoutMinutes: 60, lastUseAt: Date.now() - 56 * 60_000, lastUseWhy: 'a kernel is busy' };
    model.handle({ type: 'session', session: { ...running('a', 'hpc'), idle } });
    expect(row()).toBeNull(); // idle timeout, no countdown: nothing to say

    const reclaimAt = Date.now() + 4 * 60_000 - 1000;
    model.handle({ type: 'session', session: { ...running('a', 'hpc'), idle: { ...idle, reclaimAt } } });
    expect(row()?.querySelector('span')?.textContent).toBe('Idle: ends in 4 min');
    const keep = row()!.querySelector('button')!;
    expect(keep.textContent).toBe('Keep running');
    panel.show();
    (panel as unknown as { onAfterShow(): void }).onAfterShow();
    jest.advanceTimersByTime(60_000);
    expect(row()?.querySelector('span')?.textContent).toBe('Idle: ends in 3 min');
    keep.click();
    await Promise.resolve();
    expect(calls).toEqual([{ session: 'a' }]);

    // kept (or used again): the row goes; an ended session never has it
    model.handle({ type: 'session', session: { ...running('a', 'hpc'), idle: { ...idle, keptAt: Date.now() } } });
    expect(row()).toBeNull();
    model.handle({
      type: 'session',
      session: { ...running('a', 'hpc'), state: 'ended', idle: { ...idle, reclaimAt } }
    });
    expect(row()).toBeNull();
    panel.dispose();
    model.dispose();
    jest.useRealTimers();
  });
});
