/**
 * The "Remote sessions" sidebar: every session with its live state (queued with reason
 * and estimated start, starting, running on node X with time left, ended and why) and
 * its actions. Rendered from the model; the clock ticks locally between events.
 */
import type { TranslationBundle } from '@jupyterlab/translation';
import type { CommandRegistry } from '@lumino/commands';
import { Widget } from '@lumino/widgets';

import type { ISession } from '../common/api';
import { describeAccounting, describeUsage, formatDuration, timeLeftNow } from './format';
import { CommandIDs } from './commands';
import { remoteClusterIcon } from './icons';
import { describeIdleEnd } from './idle';
import type { IClusterConnectionState, IRemoteClusterModel } from './tokens';

/** The sidebar's widget id (also its tab's, for `labShell.activateById`). */
export const SESSIONS_PANEL_ID = 'jp-remote-cluster-sessions';

export class SessionsPanel extends Widget {
  private ticker: number | undefined;

  constructor(
    private readonly model: IRemoteClusterModel,
    private readonly commands: CommandRegistry,
    private readonly trans: TranslationBundle,
    /** Whether a running session is near its walltime's end (its rescue actions show). */
    private readonly endsSoon: (s: ISession) => boolean = s => (timeLeftNow(s) ?? Infinity) <= 30 * 60
  ) {
    super();
    this.id = SESSIONS_PANEL_ID;
    this.addClass('jp-RemoteCluster-sessions');
    this.title.icon = remoteClusterIcon;
    this.title.caption = trans.__('Remote sessions');
    model.sessionsChanged.connect(() => this.render(), this);
    this.render();
  }

  protected onAfterShow(): void {
    this.ticker = window.setInterval(() => this.updateClocks(), 1000);
    this.render();
  }

  protected onBeforeHide(): void {
    window.clearInterval(this.ticker);
  }

  dispose(): void {
    window.clearInterval(this.ticker);
    super.dispose();
  }

  private describe(s: ISession): string {
    const t = this.trans;
    switch (s.state) {
      case 'submitting':
        return t.__('Submitting…');
      case 'queued': {
        const parts = [t.__('Queued')];
        if (s.reason) {
          parts.push(`(${s.reason})`);
        }
        if (s.startEstimate) {
          parts.push(t.__('· starts ~%1', new Date(s.startEstimate).toLocaleString()));
        }
        return parts.join(' ');
      }
      case 'starting':
        return s.node ? t.__('Starting on %1…', s.node) : t.__('Starting…');
      case 'running':
        // with the connectivity mode in use (via-login, node-ssh, reverse) once known
        return s.connectivity
          ? t.__('Running on %1 (%2)', s.node ?? '?', s.connectivity)
          : t.__('Running on %1', s.node ?? '?');
      case 'ended':
        return t.__('Ended: %1', s.reason ?? t.__('unknown reason'));
    }
  }

  private describeConnection(state: IClusterConnectionState['state'], message?: string): string {
    const t = this.trans;
    switch (state) {
      case 'connecting':
        return t.__('Connecting…');
      case 'connected':
        return t.__('Connected');
      case 'reconnecting':
        return message ? t.__('Reconnecting… %1', message) : t.__('Reconnecting…');
      case 'sign-in-needed':
        return message ? t.__('Sign-in needed: %1', message) : t.__('Sign-in needed');
      case 'closed':
        return message ? t.__('Disconnected: %1', message) : t.__('Disconnected');
    }
  }

  private button(
    label: string,
    command: string,
    id: string,
    cls = '',
    extra: Record<string, string> = {}
  ): HTMLButtonElement {
    const b = document.createElement('button');
    b.className = `jp-Button jp-mod-styled jp-mod-small ${cls}`.trim();
    b.textContent = label;
    b.dataset.command = command;
    b.addEventListener('click', () => void this.commands.execute(command, { session: id, ...extra }));
    return b;
  }

  private updateClocks(): void {
    for (const el of this.node.querySelectorAll<HTMLElement>('[data-time-left]')) {
      const s = this.model.session(el.dataset.timeLeft!);
      const left = s && timeLeftNow(s);
      el.textContent = left === undefined ? '' : this.trans.__('%1 left', formatDuration(left));
      // near the end: the clock warns and the rescue actions show (CSS)
      el.closest('li')?.classList.toggle('jp-mod-endsSoon', !!s && this.endsSoon(s));
    }
    for (const el of this.node.querySelectorAll<HTMLElement>('[data-idle-ends]')) {
      const s = this.model.session(el.dataset.idleEnds!);
      el.textContent = (s && describeIdleEnd(s, this.trans)) ?? '';
    }
  }

  render(): void {
    const t = this.trans;
    this.node.replaceChildren();
    const header = this.node.appendChild(document.createElement('header'));
    header.textContent = t.__('Remote sessions');
    const sessions = this.model.sessions;
    if (sessions.length === 0) {
      const empty = this.node.appendChild(document.createElement('p'));
      empty.className = 'jp-RemoteCluster-empty';
      empty.textContent = t.__('No sessions. Start one from the Launcher ("Remote cluster").');
      return;
    }
    const list = this.node.appendChild(document.createElement('ul'));
    for (const s of sessions) {
      const li = list.appendChild(document.createElement('li'));
      li.className = 'jp-RemoteCluster-session';
      li.dataset.sessionId = s.id;
      li.dataset.state = s.state;
      const title = li.appendChild(document.createElement('div'));
      title.className = 'jp-RemoteCluster-sessionTitle';
      title.textContent = s.jobId ? t.__('%1 · job %2', s.cluster, s.jobId) : s.cluster;
      const state = li.appendChild(document.createElement('div'));
      state.className = 'jp-RemoteCluster-sessionState';
      state.textContent = this.describe(s);
      // Continue in a new job: the two sessions name each other
      const link = (text: string) => {
        const row = li.appendChild(document.createElement('div'));
        row.className = 'jp-RemoteCluster-continuation';
        row.textContent = text;
      };
      const jobOf = (id: string) => this.model.session(id)?.jobId ?? '-';
      if (s.continuedBy && s.state !== 'ended') {
        link(t.__('Continued by job %1: notebooks move there when it runs', jobOf(s.continuedBy)));
      }
      if (s.continues && s.state !== 'ended') {
        link(t.__('Continues job %1', jobOf(s.continues)));
      }
      const conn = s.state !== 'ended' ? this.model.connection(s.profile) : undefined;
      if (conn) {
        // The SSH link behind the session: a drop shows here; the job keeps running.
        const line = li.appendChild(document.createElement('div'));
        line.className = 'jp-RemoteCluster-connection';
        line.dataset.connectionState = conn.state;
        line.title = conn.message ?? '';
        line.textContent = this.describeConnection(conn.state, conn.message);
        if (conn.state === 'sign-in-needed') {
          // Nothing retries a login that needs a person: the user starts it here.
          line.appendChild(
            this.button(t.__('Sign in'), CommandIDs.signIn, s.id, 'jp-mod-accept', { cluster: s.profile })
          );
        }
      }
      if (s.state === 'running') {
        const clock = li.appendChild(document.createElement('div'));
        clock.className = 'jp-RemoteCluster-timeLeft';
        clock.dataset.timeLeft = s.id;
        if (s.reason) {
          li.appendChild(document.createElement('div')).textContent = s.reason;
        }
        if (s.idle?.reclaimAt !== undefined) {
          // Its helper ends the idle session soon (idle.ts): the time left, and the way out.
          const row = li.appendChild(document.createElement('div'));
          row.className = 'jp-RemoteCluster-idleEnds';
          row.appendChild(document.createElement('span')).dataset.idleEnds = s.id;
          row.appendChild(this.button(t.__('Keep running'), CommandIDs.keepSession, s.id, 'jp-mod-accept'));
        }
        const workers = s.daskWorkers ?? [];
        if (workers.length > 0) {
          // One worker per node of the allocation (docs/scale-out.md).
          const row = li.appendChild(document.createElement('div'));
          row.className = 'jp-RemoteCluster-daskWorkers';
          const hosts = workers.map(w => w.host).join(', ');
          const threads = workers[0].threads;
          row.textContent =
            workers.length === 1
              ? t._n('Dask: 1 worker on %2, %1 thread', 'Dask: 1 worker on %2, %1 threads', threads, hosts)
              : t._n(
                  'Dask: %2 workers (%3), %1 thread each',
                  'Dask: %2 workers (%3), %1 threads each',
                  threads,
                  workers.length,
                  hosts
                );
          // Worker jobs added later ("Add workers", dask-jobqueue on this scheduler) join it too.
          const total = (s.httpPorts ?? []).find(p => p.port === 0)?.workers ?? workers.length;
          if (total > workers.length) {
            row.textContent += t._n(' (+%1 from worker jobs)', ' (+%1 from worker jobs)', total - workers.length);
          }
        }
        // Web servers its processes started (TensorBoard, http.server): the user's own, opened here.
        for (const p of (s.httpPorts ?? []).filter(x => x.name === 'web')) {
          const row = li.appendChild(document.createElement('div'));
          row.className = 'jp-RemoteCluster-webPort';
          row.dataset.port = String(p.port);
          const label = row.appendChild(document.createElement('span'));
          label.textContent = t.__('Web server on port %1', p.port);
          label.title = p.command ?? '';
          row.appendChild(this.button(t.__('Open'), CommandIDs.openDashboard, s.id, '', { port: String(p.port) }));
        }
        const jobs = s.workerJobs ?? [];
        if (jobs.length > 0) {
          // Worker jobs ("Add workers", a notebook's dask-jobqueue cluster), as the scheduler says.
          const row = li.appendChild(document.createElement('div'));
          row.className = 'jp-RemoteCluster-workerJobs';
          const count = (state: string) => jobs.filter(j => j.state === state).length;
          const parts = [
            count('running') && t.__('%1 running', count('running')),
            count('queued') + count('submitted') && t.__('%1 queued', count('queued') + count('submitted')),
            count('ended') && t.__('%1 ended', count('ended'))
          ].filter(Boolean);
          row.textContent = t._n('Worker job: %2', 'Worker jobs: %2', jobs.length, parts.join(', '));
          row.title = jobs.map(j => `${j.id}: ${j.state}${j.reason ? ` (${j.reason})` : ''}`).join('\n');
        }
        // Dask schedulers the notebooks started (LocalCluster, dask-jobqueue), each with its dashboard.
        for (const p of (s.httpPorts ?? []).filter(x => x.name === 'dask-notebook')) {
          const row = li.appendChild(document.createElement('div'));
          row.className = 'jp-RemoteCluster-notebookDask';
          row.dataset.port = String(p.port);
          const label = row.appendChild(document.createElement('span'));
          label.textContent = t._n(
            "A notebook's Dask: %1 worker, %2 threads",
            "A notebook's Dask: %1 workers, %2 threads",
            p.workers ?? 0,
            p.threads ?? 0
          );
          if (p.kernelId) {
            label.title = t.__('Started by kernel %1', p.kernelId.slice(0, 8));
          }
          row.appendChild(this.button(t.__('Dashboard'), CommandIDs.openDashboard, s.id, '', { port: String(p.port) }));
        }
        // Kernels whose Jupyter server was lost (crash, kill): still running, with their
        // variables, until attached here or the job ends.
        for (const kid of s.detachedKernels ?? []) {
          const row = li.appendChild(document.createElement('div'));
          row.className = 'jp-RemoteCluster-detachedKernel';
          row.dataset.kernelId = kid;
          const label = row.appendChild(document.createElement('span'));
          label.textContent = t.__('Kernel %1 is running, not connected', kid.slice(0, 8));
          label.title = t.__(
            'Its Jupyter server stopped without shutting it down. Attach it to use it again; its variables are kept.'
          );
          row.appendChild(this.button(t.__('Attach'), CommandIDs.attachKernel, s.id, '', { kernel: kid }));
        }
      }
      // What the login node's checks missed (queued), an older helper without the
      // protections, Dask that did not start: said, not hidden.
      for (const w of s.warnings ?? []) {
        const row = li.appendChild(document.createElement('div'));
        row.className = 'jp-RemoteCluster-warning';
        row.textContent = w;
      }
      if (s.usage && (s.state === 'running' || s.state === 'ended')) {
        // The efficiency card: what the job used on its node, and a suggestion.
        const card = describeUsage(s.usage, t);
        const row = li.appendChild(document.createElement('div'));
        row.className = 'jp-RemoteCluster-usage';
        row.textContent = card.used;
        if (card.gpu) {
          const gpuRow = li.appendChild(document.createElement('div'));
          gpuRow.className = 'jp-RemoteCluster-usage jp-RemoteCluster-usageGpu';
          gpuRow.textContent = card.gpu;
        }
        if (card.suggestion) {
          const tip = li.appendChild(document.createElement('div'));
          tip.className = 'jp-RemoteCluster-usageSuggestion';
          tip.textContent = card.suggestion;
        }
      }
      if (s.accounting && s.state === 'ended') {
        const row = li.appendChild(document.createElement('div'));
        row.className = 'jp-RemoteCluster-usage jp-RemoteCluster-accounting';
        row.textContent = describeAccounting(s.accounting, t);
      }
      const actions = li.appendChild(document.createElement('div'));
      actions.className = 'jp-RemoteCluster-actions';
      if (s.state === 'running') {
        actions.appendChild(this.button(t.__('Notebook'), CommandIDs.openNotebook, s.id));
        if ((s.kernelspecs ?? []).length > 0) {
          // the job's environment has other kernels (R, bash...): pick one
          const other = this.button(t.__('Kernel…'), CommandIDs.openNotebook, s.id, '', { choose: 'true' });
          other.title = t.__(
            'A notebook on another kernel of the job: %1',
            s.kernelspecs!.map(k => k.displayName).join(', ')
          );
          actions.appendChild(other);
        }
        if ((s.httpPorts ?? []).some(p => p.name === 'dask-dashboard')) {
          actions.appendChild(this.button(t.__('Dashboard'), CommandIDs.openDashboard, s.id));
        }
        if (s.canAddWorkers) {
          actions.appendChild(this.button(t.__('Add workers'), CommandIDs.addWorkers, s.id));
        }
        actions.appendChild(this.button(t.__('Terminal'), CommandIDs.openTerminal, s.id));
        // the cluster's home directory over SFTP, in a file browser
        actions.appendChild(this.button(t.__('Files'), CommandIDs.openClusterFiles, s.id, '', { profile: s.profile }));
        actions.appendChild(this.button(t.__('Open port…'), CommandIDs.openWebPort, s.id));
        if (!s.continuedBy) {
          // shown near the walltime's end (jp-mod-endsSoon); their commands work any time
          for (const [label, command] of [
            [t.__('Continue in a new job'), CommandIDs.continueSession],
            [t.__('Continue with…'), CommandIDs.continueSessionWith],
            [t.__('Extend'), CommandIDs.extendSession],
            [t.__('Save and stop'), CommandIDs.saveAndStop]
          ]) {
            actions.appendChild(this.button(label, command, s.id, 'jp-RemoteCluster-rescue'));
          }
        }
      }
      if (s.jobId && s.state !== 'queued') {
        // the job's stderr and stdout, the kernels' and Dask's logs (why a start failed)
        actions.appendChild(this.button(t.__('Log'), CommandIDs.showLog, s.id));
      }
      if (s.state === 'ended') {
        actions.appendChild(this.button(t.__('Relaunch'), CommandIDs.relaunchSession, s.id));
        actions.appendChild(this.button(t.__('Remove'), CommandIDs.removeSession, s.id));
      } else {
        actions.appendChild(this.button(t.__('Cancel'), CommandIDs.cancelSession, s.id, 'jp-mod-warn'));
      }
    }
    this.updateClocks();
  }
}
