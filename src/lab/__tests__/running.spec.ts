/**
 * The Running panel's "Remote clusters" section and the status bar's item, on a real model
 * fed the agent's events: what they show of each session, and what their clicks run.
 */
import { nullTranslator } from '@jupyterlab/translation';
import { CommandRegistry } from '@lumino/commands';

import type { ISession } from '../../common/api';
import { sessionKernelName } from '../../common/routes';
import { CommandIDs } from '../commands';
import { RemoteClusterModel } from '../model';
import { RemoteClustersRunning, describeForRunning } from '../running';
import { SessionStatusItem, describeStatus } from '../status-item';
import { testSession } from './fixtures';

const trans = nullTranslator.load('jupyterlab');
const NOW = Date.parse('2026-12-06T10:00:00Z');

function setup() {
  const model = new RemoteClusterModel();
  const commands = new CommandRegistry();
  const ran: { id: string; args: unknown }[] = [];
  for (const id of [
    CommandIDs.cancelSession,
    CommandIDs.openDashboard,
    CommandIDs.showSessions,
    CommandIDs.openTerminal
  ]) {
    commands.addCommand(id, { execute: args => void ran.push({ id, args }) });
  }
  const cancelled: string[] = [];
  const manager = new RemoteClustersRunning(model, commands, trans, async s => void cancelled.push(s.id));
  return { model, commands, ran, cancelled, manager };
}

const running = (id: string, over: Partial<ISession> = {}) =>
  testSession(id, { node: 'node1', endsAt: new Date(NOW + 83 * 60_000).toISOString(), ...over });

describe('the Running panel section', () => {
  let managers: RemoteClustersRunning[] = [];
  afterEach(() => {
    managers.forEach(m => m.dispose());
    managers = [];
  });

  it('lists live sessions, not ended ones, with job, node, time left, kernels, dashboards, web servers and terminals', () => {
    const { model, manager } = setup();
    managers.push(manager);
    model.handle({
      type: 'session',
      session: running('a', {
        kernels: ['0e6a32790d9454fd'],
        httpPorts: [
          { name: 'dask-dashboard', port: 0, path: '/p/0/status' },
          { name: 'dask-notebook', port: 1, path: '/p/1/status' },
          { name: 'web', port: 6006, path: '/p/6006/', command: 'tensorboard --logdir runs' }
        ],
        terminals: ['t1', 't3']
      })
    });
    model.handle({ type: 'session', session: testSession('b', { state: 'ended', jobId: '41' }) });
    const items = manager.running();
    expect(items).toHaveLength(1);
    expect(items[0].label()).toBe('HPC · job 42');
    expect(describeForRunning(model.session('a')!, trans, NOW)).toBe('node1 · 1h 23m left');
    expect(items[0].children!.map(c => c.label())).toEqual([
      'Kernel 0e6a3279',
      'Dask dashboard',
      'Dask dashboard (notebook 1)',
      'Web server on port 6006',
      'Terminal t1',
      'Terminal t3'
    ]);
    expect(items[0].children![3].labelTitle!()).toBe('tensorboard --logdir runs');
  });

  it('says where a queued or starting session is', () => {
    const q = testSession('q', { state: 'queued', reason: 'Priority', startEstimate: '2026-12-06T14:05:00Z' });
    expect(describeForRunning(q, trans)).toMatch(/^queued \(Priority\) · starts ~\d\d:\d\d/);
    expect(describeForRunning(testSession('s', { state: 'starting', node: 'node2' }), trans)).toBe('starting on node2');
  });

  it("shutdown is the sidebar's Cancel (which asks); a dashboard and a terminal open; the item shows the sidebar", () => {
    const { model, manager, ran } = setup();
    managers.push(manager);
    model.handle({
      type: 'session',
      session: running('a', {
        httpPorts: [{ name: 'dask-dashboard', port: 0, path: '/p/0/status' }],
        terminals: ['t2']
      })
    });
    const [item] = manager.running();
    item.shutdown!();
    item.children![0].open!();
    item.children![1].open!();
    item.open!();
    expect(ran).toEqual([
      { id: CommandIDs.cancelSession, args: { session: 'a' } },
      { id: CommandIDs.openDashboard, args: { session: 'a', port: 0 } },
      { id: CommandIDs.openTerminal, args: { session: 'a', terminal: 't2' } },
      { id: CommandIDs.showSessions, args: {} }
    ]);
  });

  it('Cancel All cancels every live session once, after one confirmation of the panel', () => {
    const { model, manager, cancelled } = setup();
    managers.push(manager);
    for (const id of ['a', 'b']) {
      model.handle({ type: 'session', session: running(id) });
    }
    model.handle({ type: 'session', session: testSession('c', { state: 'ended' }) });
    expect(manager.shutdownAllConfirmationText()).toBe(
      'Cancel all 2 remote sessions? Their jobs end and their kernels stop.'
    );
    manager.shutdownAll();
    expect(cancelled.sort()).toEqual(['a', 'b']);
  });

  it('tells the panel when the sessions change', () => {
    const { model, manager } = setup();
    managers.push(manager);
    let changes = 0;
    manager.runningChanged.connect(() => changes++);
    model.handle({ type: 'session', session: running('a') });
    model.handle({ type: 'session', session: running('a', { state: 'ended' }) });
    expect(changes).toBe(2);
    expect(manager.running()).toEqual([]);
  });
});

describe('the status bar item', () => {
  /** A notebook whose kernel is kernelspec `name`. */
  const notebook = (name: string) => ({ sessionContext: { session: { kernel: { name } } }, title: { label: 'n' } });

  it("shows the current notebook's session: job, time left, and the link when it is not up", () => {
    const model = new RemoteClusterModel();
    model.handle({
      type: 'session',
      session: running('a', { endsAt: new Date(Date.now() + 83 * 60_000).toISOString() })
    });
    let current: unknown = notebook(sessionKernelName('a'));
    const shown: string[] = [];
    const item = new SessionStatusItem(
      model,
      trans,
      () => current,
      () => shown.push('sidebar')
    );
    expect(item.refresh()).toBe(true);
    expect(item.session?.id).toBe('a');
    expect(item.node.textContent).toMatch(/^job 42 · 1h 2\dm left$/);
    model.handle({ type: 'connection', cluster: 'hpc', state: 'sign-in-needed', message: 'a code' });
    item.refresh();
    expect(item.node.textContent).toMatch(/ · sign-in needed$/);
    item.node.click();
    expect(shown).toEqual(['sidebar']);
    current = notebook('python3'); // a local kernel: nothing to show
    expect(item.refresh()).toBe(true);
    expect(item.session).toBeUndefined();
    expect(item.node.textContent).toBe('');
  });

  it('says a session that is not running yet, or is reconnecting', () => {
    const q = testSession('q', { state: 'queued' });
    expect(describeStatus(q, undefined, trans)).toBe('job 42 · queued');
    expect(describeStatus(running('a'), { state: 'reconnecting' }, trans, NOW)).toBe(
      'job 42 · 1h 23m left · reconnecting'
    );
  });
});
