/**
 * Idle reclaim in Lab (docs/allocation.md, "Idle sessions"). The session's helper ends a
 * job nobody uses; it decides on the node, so it works with the laptop closed. The page
 * only adds what the node cannot see: that the user works with the session here (a lease,
 * at most one POST a minute per session), the countdown before the end with Keep running,
 * and, once a session was ended for being idle, what it released, with Relaunch.
 */
import { Notification } from '@jupyterlab/apputils';
import type { Kernel } from '@jupyterlab/services';
import type { TranslationBundle } from '@jupyterlab/translation';
import type { CommandRegistry } from '@lumino/commands';
import { Signal, type ISignal } from '@lumino/signaling';

import type { ISession } from '../common/api';
import { widgetsOfSession } from './allocation';
import { CommandIDs } from './commands';
import { requestAPI } from './handler';
import { addSessionCommand } from './session-commands';
import type { IRemoteClusterModel } from './tokens';

/** At most one activity POST per session in this long (the helper counts in minutes). */
export const LEASE_MS = 60_000;

/**
 * The lease window for a session: a minute, but at most a quarter of its timeout, so a
 * renewal sent at a window's end always lands well before the helper's deadline.
 */
export function leaseWindowMs(s: ISession | undefined): number {
  const timeout = s?.idle?.timeoutMinutes;
  return timeout ? Math.min(LEASE_MS, (timeout * 60_000) / 4) : LEASE_MS;
}
/** The countdown's text is refreshed this often. */
const COUNTDOWN_UPDATE_MS = 30_000;

/** `{}`: the user is active with the session; `{keep: true}`: they pressed Keep running. */
export type PostActivity = (id: string, body: { keep?: true }) => Promise<ISession>;

export const postActivity: PostActivity = (id, body) =>
  requestAPI<ISession>(`api/v1/sessions/${id}/activity`, { method: 'POST', body: JSON.stringify(body) });

/** Whole minutes (rounded up) until the helper ends `s`; undefined when no countdown runs. */
export function idleMinutesLeft(s: ISession, now = Date.now()): number | undefined {
  const at = s.state === 'running' ? s.idle?.reclaimAt : undefined;
  return at === undefined ? undefined : Math.max(0, Math.ceil((at - now) / 60_000));
}

/** The sidebar's line during the countdown ("Idle: ends in 4 min"). */
export function describeIdleEnd(s: ISession, trans: TranslationBundle, now = Date.now()): string | undefined {
  const m = idleMinutesLeft(s, now);
  return m === undefined ? undefined : trans.__('Idle: ends in %1 min', m);
}

/**
 * Per-session throttle: the first touch is sent at once; touches within the next window
 * make exactly one more send at its end (which opens a new window), so steady work sends
 * once a minute and a burst of edits costs two requests at most.
 */
export class ActivityLease {
  private readonly windows = new Map<string, { pending: boolean; timer: ReturnType<typeof setTimeout> }>();

  constructor(
    private readonly send: (id: string) => void,
    private readonly windowMs: (id: string) => number = () => LEASE_MS
  ) {}

  touch(id: string): void {
    const w = this.windows.get(id);
    if (w) {
      w.pending = true;
    } else {
      this.open(id);
    }
  }

  dispose(): void {
    this.windows.forEach(w => clearTimeout(w.timer));
    this.windows.clear();
  }

  private open(id: string): void {
    this.send(id);
    const w = {
      pending: false,
      timer: setTimeout(() => {
        this.windows.delete(id);
        if (w.pending) {
          this.open(id);
        }
      }, this.windowMs(id))
    };
    this.windows.set(id, w);
  }
}

/**
 * What the lease watches of a notebook or console, duck-typed as allocation.ts's
 * IKernelWidget (the notebook and console packages are not dependencies of this one).
 */
interface IWatchable {
  sessionContext?: {
    session?: { kernel?: { name: string; anyMessage?: ISignal<unknown, Kernel.IAnyMessageArgs> } | null } | null;
    kernelChanged?: ISignal<unknown, unknown>;
  };
  /** A notebook's document: edits of its content. */
  context?: { isReady?: boolean; model?: { contentChanged?: ISignal<unknown, unknown> } };
  /** A notebook: moving the active cell. */
  content?: { activeCellChanged?: ISignal<unknown, unknown> };
  /** A console: typing in its input cell (a new one after every run). */
  console?: { promptCell?: ICellLike | null; promptCellCreated?: ISignal<unknown, ICellLike> };
}

interface ICellLike {
  model?: { contentChanged?: ISignal<unknown, unknown> };
}

/** A cell or console input run by this page (not a silent request of an extension), or input() answered. */
function isUserRequest(a: Kernel.IAnyMessageArgs): boolean {
  const type = a.msg.header.msg_type;
  return (
    a.direction === 'send' &&
    ((type === 'execute_request' && !(a.msg.content as { silent?: boolean }).silent) || type === 'input_reply')
  );
}

export interface IIdleDeps {
  commands: CommandRegistry;
  model: IRemoteClusterModel;
  trans: TranslationBundle;
  /** Lab's main-area widgets, now. */
  widgets: () => Iterable<unknown>;
  post?: PostActivity;
}

/**
 * The page's side of idle reclaim: registers Keep running (CommandIDs.keepSession),
 * watches notebooks and consoles for activity (`watch`), and shows the countdown and the
 * ended notice (`check`, at every change of the sessions and on a clock).
 */
export class IdleReclaim {
  readonly lease: ActivityLease;
  private readonly post: PostActivity;
  private readonly watched = new WeakSet<object>();
  /** Per session: its countdown notification. */
  private readonly countdowns = new Map<string, { id: string; reclaimAt: number; message: string; at: number }>();
  /** `<session>@<reclaimAt>` already announced: each countdown once per page, even if closed. */
  private readonly announced = new Set<string>();
  /** Sessions seen running: only their end is news (not one that ended before the page opened). */
  private readonly seenRunning = new Set<string>();

  constructor(private readonly deps: IIdleDeps) {
    this.post = deps.post ?? postActivity;
    this.lease = new ActivityLease(
      id => this.sendActivity(id),
      id => leaseWindowMs(deps.model.session(id))
    );
    const { trans } = deps;
    addSessionCommand(deps.commands, deps.model, CommandIDs.keepSession, {
      label: trans.__('Keep the idle session running'),
      failed: message => trans.__('Could not keep the session running: %1', message),
      run: async s => {
        const next = await this.post(s.id, { keep: true });
        this.dismissCountdown(s.id);
        this.apply(next);
      }
    });
  }

  /** Starts watching the kernel widgets not watched yet (only while some session can be reclaimed). */
  watch(): void {
    if (!this.deps.model.sessions.some(s => s.state === 'running' && s.idle)) {
      return;
    }
    for (const w of this.deps.widgets()) {
      if (w && typeof w === 'object' && !this.watched.has(w) && (w as IWatchable).sessionContext) {
        this.watched.add(w);
        this.watchOne(w as IWatchable);
      }
    }
  }

  /** The countdowns and ended notices due for the model's sessions at `now`. */
  check(now = Date.now()): void {
    const sessions = this.deps.model.sessions;
    for (const s of sessions) {
      this.countdown(s, now);
      if (s.state === 'running') {
        this.seenRunning.add(s.id);
      } else if (s.state === 'ended' && this.seenRunning.delete(s.id) && s.endedIdle) {
        this.notifyEnded(s);
      }
    }
    const live = new Set(sessions.map(s => s.id));
    for (const id of [...this.countdowns.keys()].filter(x => !live.has(x))) {
      this.dismissCountdown(id);
    }
    [...this.seenRunning].filter(id => !live.has(id)).forEach(id => this.seenRunning.delete(id));
    this.watch();
  }

  dispose(): void {
    this.lease.dispose();
    Signal.disconnectReceiver(this);
  }

  private watchOne(w: IWatchable): void {
    const active = () => {
      const s = this.deps.model.sessions.find(x => x.state === 'running' && x.idle && widgetsOfSession([w], x)[0]);
      if (s) {
        this.lease.touch(s.id);
      }
    };
    // Edits and cell moves count once the document is loaded (its loading emits them too).
    const edited = () => w.context?.isReady !== false && active();
    w.context?.model?.contentChanged?.connect(edited, this);
    w.content?.activeCellChanged?.connect(edited, this);
    const typed = (cell?: ICellLike | null) => cell?.model?.contentChanged?.connect(active, this);
    typed(w.console?.promptCell);
    w.console?.promptCellCreated?.connect((_, cell) => typed(cell), this);
    // Runs go through the kernel connection, which changes with the kernel.
    const ctx = w.sessionContext!;
    const onMessage = (_: unknown, a: Kernel.IAnyMessageArgs) => isUserRequest(a) && active();
    let kernel: { anyMessage?: ISignal<unknown, Kernel.IAnyMessageArgs> } | null | undefined;
    const follow = () => {
      kernel?.anyMessage?.disconnect(onMessage, this);
      kernel = ctx.session?.kernel;
      kernel?.anyMessage?.connect(onMessage, this);
    };
    ctx.kernelChanged?.connect(follow, this);
    follow();
  }

  private sendActivity(id: string): void {
    const s = this.deps.model.session(id);
    if (s?.state !== 'running' || !s.idle) {
      return; // ended (or no longer reclaimed) since the touch: nothing to keep alive
    }
    this.post(id, {}).then(
      next => this.apply(next),
      // the helper still sees busy kernels and CPU: a lost lease is not worth a dialog
      e => console.warn(`remote-cluster: could not report activity of session ${id}:`, e)
    );
  }

  /** Shows the agent's answer, unless an event says more already (the session ended meanwhile). */
  private apply(next: ISession): void {
    const current = this.deps.model.session(next.id);
    if (current && current.state !== 'ended' && current.updatedAt <= next.updatedAt) {
      this.deps.model.handle({ type: 'session', session: next });
    }
  }

  private countdown(s: ISession, now: number): void {
    const at = s.state === 'running' ? s.idle?.reclaimAt : undefined;
    let shown = this.countdowns.get(s.id);
    if (shown && shown.reclaimAt !== at) {
      this.dismissCountdown(s.id); // kept, used again, ended, or a new countdown
      shown = undefined;
    }
    if (at === undefined) {
      return;
    }
    const key = `${s.id}@${at}`;
    if (!shown && at > now && !this.announced.has(key)) {
      this.announced.add(key);
      const message = this.countdownMessage(s, now);
      const id = Notification.warning(message, { autoClose: false, actions: [this.keepAction(s.id)] });
      this.countdowns.set(s.id, { id, reclaimAt: at, message, at: now });
    } else if (shown && now - shown.at >= COUNTDOWN_UPDATE_MS) {
      const message = this.countdownMessage(s, now);
      if (message !== shown.message) {
        shown.message = message;
        shown.at = now;
        Notification.update({ id: shown.id, message, type: 'warning', autoClose: false });
      }
    }
  }

  private countdownMessage(s: ISession, now: number): string {
    const idle = s.idle!;
    const time = new Date(idle.lastUseAt).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    return this.deps.trans.__(
      'Session %1 · job %2 is idle (%3 last, at %4): it will be ended in %5 min to release its allocation.',
      s.profile,
      s.jobId ?? '-',
      idle.lastUseWhy,
      time,
      idleMinutesLeft(s, now) ?? 0
    );
  }

  private keepAction(session: string): Notification.IAction {
    return {
      label: this.deps.trans.__('Keep running'),
      callback: event => {
        // the countdown stays until the helper agreed (success dismisses it), not on the click
        event.preventDefault();
        void this.deps.commands.execute(CommandIDs.keepSession, { session });
      }
    };
  }

  private dismissCountdown(session: string): void {
    const shown = this.countdowns.get(session);
    if (shown) {
      this.countdowns.delete(session);
      Notification.dismiss(shown.id);
    }
  }

  private notifyEnded(s: ISession): void {
    const { trans, commands } = this.deps;
    const e = s.endedIdle!;
    const name = trans.__('Session %1 · job %2', s.profile, s.jobId ?? '-');
    const message =
      e.coreHoursReleased === undefined
        ? trans.__('%1 ended: idle for %2 min', name, e.idleMinutes)
        : trans.__(
            '%1 ended: idle for %2 min, released %3 core-hours',
            name,
            e.idleMinutes,
            Number(e.coreHoursReleased.toFixed(1))
          );
    Notification.info(message, {
      autoClose: false,
      actions: [
        {
          label: trans.__('Relaunch'),
          callback: () => void commands.execute(CommandIDs.relaunchSession, { session: s.id })
        }
      ]
    });
  }
}
