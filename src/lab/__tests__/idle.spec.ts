/**
 * Idle reclaim in the page: the activity lease (at most one POST a minute per session,
 * only for notebooks and consoles the user works in on that session's kernel), the
 * countdown with Keep running (once per countdown, refreshed, gone when it is over), and
 * the notice of a session ended for being idle, with Relaunch.
 */
import { Notification } from '@jupyterlab/apputils';
import type { Kernel } from '@jupyterlab/services';
import { nullTranslator } from '@jupyterlab/translation';
import { CommandRegistry } from '@lumino/commands';
import { Signal } from '@lumino/signaling';

import type { ISession } from '../../common/api';
import { sessionKernelName } from '../../common/routes';
import { CommandIDs } from '../commands';
import { testSession } from './fixtures';
import { describeIdleEnd, IdleReclaim, LEASE_MS, leaseWindowMs, type PostActivity } from '../idle';
import { RemoteClusterModel } from '../model';

const trans = nullTranslator.load('jupyterlab_remote_cluster');
const MIN = 60_000;
const T0 = Date.parse('2026-12-06T10:00:00Z');

function session(id: string, over: Partial<ISession> = {}): ISession {
  return testSession(
    id,
    { idle: { timeoutMinutes: 60, lastUseAt: T0 - 55 * MIN, lastUseWhy: 'used in JupyterLab' }, ...over },
    T0
  );
}

/** A notebook (or console) on kernel `name`, with the signals the lease listens to. */
function notebook(name: string, isReady = true) {
  const sender = {};
  const kernel = (n: string) => ({ name: n, anyMessage: new Signal<object, Kernel.IAnyMessageArgs>(sender) });
  const w = {
    title: { label: `${name}.ipynb` },
    sessionContext: { session: { kernel: kernel(name) }, kernelChanged: new Signal<object, unknown>(sender) },
    context: { isReady, model: { contentChanged: new Signal<object, void>(sender) } },
    content: { activeCellChanged: new Signal<object, unknown>(sender) }
  };
  const send = (msg_type: string, content: object = {}) =>
    w.sessionContext.session.kernel.anyMessage.emit({
      direction: 'send',
      msg: { header: { msg_type }, content } as unknown as Kernel.IAnyMessageArgs['msg']
    });
  return {
    w,
    run: (silent = false) => send('execute_request', { code: 'x', silent }),
    edit: () => w.context.model.contentChanged.emit(undefined),
    move: () => w.content.activeCellChanged.emit(null),
    /** Kernel › Change Kernel…: a new connection, the old one silent for the page. */
    changeKernel(n: string) {
      const old = w.sessionContext.session.kernel;
      w.sessionContext.session.kernel = kernel(n);
      w.sessionContext.kernelChanged.emit(undefined);
      return {
        runOld: () =>
          old.anyMessage.emit({
            direction: 'send',
            msg: { header: { msg_type: 'execute_request' }, content: {} } as never
          })
      };
    }
  };
}

function setup(sessions: ISession[], widgets: unknown[] = [], post?: PostActivity) {
  const model = new RemoteClusterModel();
  sessions.forEach(s => model.handle({ type: 'session', session: s }));
  const commands = new CommandRegistry();
  const calls: [string, object][] = [];
  const poster: PostActivity =
    post ??
    (async (id, body) => {
      calls.push([id, body]);
      return model.session(id)!;
    });
  const idle = new IdleReclaim({ commands, model, trans, widgets: () => widgets, post: poster });
  return { model, commands, idle, calls };
}

const flush = () => new Promise(r => setTimeout(r, 0));
const shown = () => Notification.manager.notifications;

afterEach(() => {
  Notification.manager.dismiss();
  jest.useRealTimers();
  jest.restoreAllMocks();
});

describe('the activity lease', () => {
  it('renews at most every minute, and every quarter of a shorter timeout', () => {
    const withTimeout = (timeoutMinutes: number) =>
      ({ idle: { timeoutMinutes, lastUseAt: 0, lastUseWhy: '' } }) as ISession;
    expect(leaseWindowMs(withTimeout(60))).toBe(LEASE_MS);
    expect(leaseWindowMs(withTimeout(1))).toBe(15_000);
    expect(leaseWindowMs(undefined)).toBe(LEASE_MS);
  });

  it('sends the first activity at once and one more at the end of the minute, whatever came in it', () => {
    jest.useFakeTimers();
    const nb = notebook(sessionKernelName('a'));
    const { idle, calls } = setup([session('a')], [nb.w]);
    idle.watch();
    idle.watch(); // watched once, not once per scan
    nb.run();
    expect(calls).toEqual([['a', {}]]);
    nb.edit();
    nb.move();
    nb.run();
    jest.advanceTimersByTime(LEASE_MS - 1);
    expect(calls).toHaveLength(1);
    jest.advanceTimersByTime(1);
    expect(calls).toEqual([
      ['a', {}],
      ['a', {}]
    ]);
    // nothing since: no more sends, however long the tab stays open
    jest.advanceTimersByTime(10 * LEASE_MS);
    expect(calls).toHaveLength(2);
    // the windows are over: the next edit is sent at once
    nb.edit();
    expect(calls).toHaveLength(3);
    idle.dispose();
  });

  it('sends nothing for an open tab left alone, silent requests, another session, local kernels or a loading notebook', () => {
    jest.useFakeTimers();
    const untouched = notebook(sessionKernelName('a'));
    const other = notebook(sessionKernelName('b')); // b has no idle timeout
    const local = notebook('python3');
    const loading = notebook(sessionKernelName('a'), false);
    const text = { title: { label: 'notes.txt' } };
    const { idle, calls } = setup(
      [session('a'), session('b', { idle: undefined, createdAt: new Date(T0 + 1).toISOString() })],
      [untouched.w, other.w, local.w, loading.w, text]
    );
    for (let i = 0; i < 10; i++) {
      idle.check(T0 + i * 5000);
      jest.advanceTimersByTime(5000);
    }
    untouched.run(true); // an extension's silent request, not the user
    other.run();
    other.edit();
    local.run();
    local.move();
    loading.edit();
    loading.move();
    jest.advanceTimersByTime(5 * LEASE_MS);
    expect(calls).toEqual([]);
    // the same tab, used: sent
    untouched.move();
    expect(calls).toEqual([['a', {}]]);
    idle.dispose();
  });

  it('follows the kernel of a notebook, and stops for a session that ended', async () => {
    jest.useFakeTimers();
    const nb = notebook('python3');
    const { idle, calls, model } = setup([session('a')], [nb.w]);
    idle.watch();
    const { runOld } = nb.changeKernel(sessionKernelName('a'));
    runOld();
    expect(calls).toEqual([]);
    nb.run();
    expect(calls).toEqual([['a', {}]]);
    nb.run(); // due at the window's end...
    model.handle({ type: 'session', session: session('a', { state: 'ended', idle: undefined }) });
    jest.advanceTimersByTime(LEASE_MS);
    expect(calls).toHaveLength(1); // ...but the session ended meanwhile
    idle.dispose();
  });

  it('a console counts its runs and what is typed in its input cell, the new one after a run too', () => {
    jest.useFakeTimers();
    const nb = notebook(sessionKernelName('a'));
    const sender = {};
    const cell = () => ({ model: { contentChanged: new Signal<object, void>(sender) } });
    const first = cell();
    const panel = {
      title: { label: 'Console 1' },
      sessionContext: nb.w.sessionContext,
      console: { promptCell: first, promptCellCreated: new Signal<object, ReturnType<typeof cell>>(sender) }
    };
    const { idle, calls } = setup([session('a')], [panel]);
    idle.watch();
    first.model.contentChanged.emit();
    expect(calls).toHaveLength(1);
    jest.advanceTimersByTime(LEASE_MS);
    nb.run(); // the console's kernel connection
    expect(calls).toHaveLength(2);
    jest.advanceTimersByTime(LEASE_MS);
    const next = cell();
    panel.console.promptCellCreated.emit(next);
    expect(calls).toHaveLength(2); // a new input cell is not the user typing
    next.model.contentChanged.emit();
    expect(calls).toHaveLength(3);
    idle.dispose();
  });

  it('logs a failed POST with console.warn, never a dialog or notification', async () => {
    const warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
    const nb = notebook(sessionKernelName('a'));
    const { idle } = setup([session('a')], [nb.w], async () => {
      throw new Error('agent-unavailable');
    });
    idle.watch();
    nb.edit();
    await flush();
    expect(warn).toHaveBeenCalledWith(expect.stringContaining('session a'), expect.any(Error));
    expect(shown()).toEqual([]);
    expect(document.querySelector('.jp-Dialog')).toBeNull();
    idle.dispose();
  });
});

describe('the countdown', () => {
  const countdown = (over: Partial<ISession['idle']> = {}): ISession =>
    session('a', {
      idle: {
        timeoutMinutes: 60,
        lastUseAt: T0 - 55 * MIN,
        lastUseWhy: 'used in JupyterLab',
        reclaimAt: T0 + 5 * MIN,
        ...over
      }
    });
  const at = new Date(T0 - 55 * MIN).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  const message = (minutes: number) =>
    `Session hpc · job 42 is idle (used in JupyterLab last, at ${at}): it will be ended in ${minutes} min to release its allocation.`;

  it('is shown once per countdown, refreshed with the minutes left, and dismissed when it is over', () => {
    const { idle, model } = setup([countdown()]);
    idle.check(T0);
    idle.check(T0 + 5000);
    expect(shown().map(n => [n.type, n.message, n.options.autoClose])).toEqual([['warning', message(5), false]]);
    expect(shown()[0].options.actions?.map(a => a.label)).toEqual(['Keep running']);
    idle.check(T0 + 70_000);
    expect(shown().map(n => n.message)).toEqual([message(4)]);
    expect(describeIdleEnd(model.session('a')!, trans, T0 + 70_000)).toBe('Idle: ends in 4 min');

    // used again (the helper dropped the countdown): gone
    model.handle({ type: 'session', session: session('a') });
    idle.check(T0 + 80_000);
    expect(shown()).toEqual([]);
    // the same countdown again (a late event) is not said twice
    model.handle({ type: 'session', session: countdown() });
    idle.check(T0 + 90_000);
    expect(shown()).toEqual([]);
    // a new one is
    model.handle({ type: 'session', session: countdown({ reclaimAt: T0 + 70 * MIN }) });
    idle.check(T0 + 66 * MIN);
    expect(shown().map(n => n.message)).toEqual([message(4)]);
    // the session ends: gone
    model.handle({ type: 'session', session: { ...countdown(), state: 'ended' } });
    idle.check(T0 + 67 * MIN);
    expect(shown()).toEqual([]);
  });

  it('a page opened during the countdown shows it once; one closed by the user stays closed', () => {
    const { idle } = setup([countdown()]);
    idle.check(T0 + 2 * MIN);
    idle.check(T0 + 2 * MIN + 5000);
    expect(shown().map(n => n.message)).toEqual([message(3)]);
    Notification.dismiss(shown()[0].id);
    idle.check(T0 + 3 * MIN);
    expect(shown()).toEqual([]);
    // a countdown already over by the page's clock: nothing to say
    const late = setup([countdown()]);
    late.idle.check(T0 + 6 * MIN);
    expect(shown()).toEqual([]);
  });

  it('Keep running posts {keep: true}, from the notification or the command, and dismisses it', async () => {
    const { idle, calls, model, commands } = setup([countdown()]);
    idle.check(T0);
    const click = new MouseEvent('click', { cancelable: true });
    shown()[0].options.actions![0].callback(click);
    expect(click.defaultPrevented).toBe(true); // Lab would close the toast before the answer
    await flush();
    expect(calls).toEqual([['a', { keep: true }]]);
    expect(shown()).toEqual([]);
    // the answer is shown (here: the same session), the countdown is not said again
    idle.check(T0 + 1000);
    expect(shown()).toEqual([]);
    await commands.execute(CommandIDs.keepSession, { session: 'a' });
    expect(calls).toEqual([
      ['a', { keep: true }],
      ['a', { keep: true }]
    ]);
    expect(model.session('a')?.state).toBe('running');
  });

  it('a refused Keep running says why and leaves the countdown up', async () => {
    const { idle, commands } = setup([countdown()], [], async () => {
      throw new Error('The session has ended.');
    });
    idle.check(T0);
    await commands.execute(CommandIDs.keepSession, { session: 'a' });
    expect(shown().map(n => [n.type, n.message])).toEqual([
      ['error', 'Could not keep the session running: The session has ended.'],
      ['warning', message(5)]
    ]);
  });
});

describe('a session ended for being idle', () => {
  it('says so once, with what it released and Relaunch; not for one that ended before the page saw it run', async () => {
    const { idle, model, commands } = setup([session('a')]);
    const relaunched: unknown[] = [];
    commands.addCommand(CommandIDs.relaunchSession, { execute: args => void relaunched.push(args) });
    idle.check(T0);
    const ended = session('a', {
      state: 'ended',
      idle: undefined,
      reason: 'idle for 60 min, released 12.5 core-hours',
      endedIdle: { idleMinutes: 60, coreHoursReleased: 12.5 }
    });
    model.handle({ type: 'session', session: ended });
    idle.check(T0 + 1000);
    idle.check(T0 + 6000);
    expect(shown().map(n => [n.type, n.message, n.options.autoClose])).toEqual([
      ['info', 'Session hpc · job 42 ended: idle for 60 min, released 12.5 core-hours', false]
    ]);
    const relaunch = shown()[0].options.actions!;
    expect(relaunch.map(a => a.label)).toEqual(['Relaunch']);
    relaunch[0].callback(new MouseEvent('click'));
    await flush();
    expect(relaunched).toEqual([{ session: 'a' }]);

    Notification.manager.dismiss();
    // without the core-hours; and one the page never saw running says nothing
    const other = setup([session('b', { jobId: '7' }), ended]);
    other.idle.check(T0);
    other.model.handle({
      type: 'session',
      session: session('b', { jobId: '7', state: 'ended', endedIdle: { idleMinutes: 30 } })
    });
    other.idle.check(T0 + 1000);
    expect(shown().map(n => n.message)).toEqual(['Session hpc · job 7 ended: idle for 30 min']);
  });
});
