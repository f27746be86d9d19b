/**
 * The "Remote clusters" section of JupyterLab's Running panel (`IRunningSessionManagers`):
 * where Lab users look for what runs. One item per live session ("Testbed · job 42",
 * detail "node1 · 1h 23m left" or "queued (Priority) · starts ~14:05"); its children are the
 * session's kernels, dashboards and terminals. Shutdown is the sidebar's Cancel (with its
 * confirmation); "Cancel All" confirms once for every live session.
 */
import type { IRunningSessions } from '@jupyterlab/running';
import type { TranslationBundle } from '@jupyterlab/translation';
import { terminalIcon } from '@jupyterlab/ui-components';
import type { CommandRegistry } from '@lumino/commands';
import { Signal, type ISignal } from '@lumino/signaling';

import type { ISession } from '../common/api';
import { CommandIDs } from './commands';
import { formatDuration, timeLeftNow } from './format';
import { remoteClusterIcon } from './icons';
import type { IRemoteClusterModel } from './tokens';

/** The time left moves: the panel is told this often while a session has a clock. */
const CLOCK_MS = 30_000;

/** What the detail column says of a session: its place in the queue, or its node and time left. */
export function describeForRunning(s: ISession, trans: TranslationBundle, now = Date.now()): string {
  switch (s.state) {
    case 'submitting':
      return trans.__('submitting');
    case 'queued': {
      const parts = [s.reason ? trans.__('queued (%1)', s.reason) : trans.__('queued')];
      if (s.startEstimate) {
        const at = new Date(s.startEstimate);
        parts.push(trans.__('starts ~%1', at.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })));
      }
      return parts.join(' · ');
    }
    case 'starting':
      return s.node ? trans.__('starting on %1', s.node) : trans.__('starting');
    case 'running': {
      const left = timeLeftNow(s, now);
      const where = s.node ?? '?';
      return left === undefined ? where : trans.__('%1 · %2 left', where, formatDuration(left));
    }
    case 'ended':
      return trans.__('ended');
  }
}

export class RemoteClustersRunning implements IRunningSessions.IManager {
  readonly name: string;
  readonly shutdownLabel: string;
  readonly shutdownAllLabel: string;
  readonly shutdownAllConfirmationText: () => string;
  /** One view: sessions with their kernels and dashboards under them. */
  readonly supportsMultipleViews = false;
  private readonly _changed = new Signal<this, void>(this);
  private readonly _clock: number;

  constructor(
    private readonly model: IRemoteClusterModel,
    private readonly commands: CommandRegistry,
    private readonly trans: TranslationBundle,
    /** Cancels one session without asking (after "Cancel All" was confirmed). */
    private readonly cancel: (s: ISession) => Promise<void>
  ) {
    this.name = trans.__('Remote clusters');
    this.shutdownLabel = trans.__('Cancel the job');
    this.shutdownAllLabel = trans.__('Cancel All');
    this.shutdownAllConfirmationText = () =>
      trans._n(
        'Cancel %1 remote session? Its job ends and its kernels stop.',
        'Cancel all %1 remote sessions? Their jobs end and their kernels stop.',
        this.live().length
      );
    model.sessionsChanged.connect(() => this._changed.emit());
    this._clock = window.setInterval(() => {
      if (this.live().some(s => s.state === 'running')) {
        this._changed.emit();
      }
    }, CLOCK_MS);
  }

  get runningChanged(): ISignal<this, void> {
    return this._changed;
  }

  /** The sessions worth showing: not ended. */
  private live(): ISession[] {
    return this.model.sessions.filter(s => s.state !== 'ended');
  }

  running(): IRunningSessions.IRunningItem[] {
    const t = this.trans;
    return this.live().map(s => ({
      className: 'jp-RemoteCluster-runningSession',
      context: s.id,
      icon: () => remoteClusterIcon,
      label: () => (s.jobId ? t.__('%1 · job %2', s.cluster, s.jobId) : s.cluster),
      labelTitle: () => t.__('Remote session %1 (profile %2)', s.id, s.profile),
      detail: () => describeForRunning(s, t),
      // the sidebar is where the session's actions are
      open: () => void this.commands.execute(CommandIDs.showSessions),
      shutdown: () => void this.commands.execute(CommandIDs.cancelSession, { session: s.id }),
      children: this.children(s)
    }));
  }

  private children(s: ISession): IRunningSessions.IRunningItem[] {
    const t = this.trans;
    const kernels = (s.kernels ?? []).map(k => ({
      className: 'jp-RemoteCluster-runningKernel',
      icon: () => remoteClusterIcon,
      label: () => t.__('Kernel %1', k.slice(0, 8)),
      labelTitle: () => t.__('Remote kernel %1 on %2', k, s.node ?? '?')
    }));
    // Dask dashboards, then the web servers its processes run (TensorBoard, ...)
    const dashboards = (s.httpPorts ?? [])
      .filter(p => p.name.startsWith('dask-') || p.name === 'web')
      .map(p => ({
        className: 'jp-RemoteCluster-runningDashboard',
        icon: () => remoteClusterIcon,
        label: () =>
          p.name === 'web'
            ? t.__('Web server on port %1', p.port)
            : p.port === 0
              ? t.__('Dask dashboard')
              : t.__('Dask dashboard (notebook %1)', p.port),
        labelTitle: () => p.command ?? '',
        open: () => void this.commands.execute(CommandIDs.openDashboard, { session: s.id, port: p.port })
      }));
    const terminals = (s.terminals ?? []).map(id => ({
      className: 'jp-RemoteCluster-runningTerminal',
      icon: () => terminalIcon,
      label: () => t.__('Terminal %1', id),
      labelTitle: () => t.__('A shell on %1 in this job', s.node ?? '?'),
      open: () => void this.commands.execute(CommandIDs.openTerminal, { session: s.id, terminal: id })
    }));
    return [...kernels, ...dashboards, ...terminals];
  }

  shutdownAll(): void {
    // The Running panel asked already (shutdownAllConfirmationText).
    for (const s of this.live()) {
      void this.cancel(s);
    }
  }

  refreshRunning(): void {
    this._changed.emit(); // the model follows the agent's events: nothing to fetch
  }

  dispose(): void {
    window.clearInterval(this._clock);
    Signal.clearData(this);
  }
}
