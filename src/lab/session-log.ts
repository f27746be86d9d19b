/**
 * "Show log": a read-only panel with the ends of a session's log files on the cluster
 * (the job's stderr and stdout, each kernel's log, Dask's), as the agent reads them
 * (GET api/v1/sessions/<id>/logs). Text only: nothing a job printed is rendered as HTML.
 */
import { MainAreaWidget, ToolbarButton } from '@jupyterlab/apputils';
import type { TranslationBundle } from '@jupyterlab/translation';
import { refreshIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import type { ISession, ISessionLogs } from '../common/api';
import { formatBytes } from './format';
import { remoteClusterIcon } from './icons';

export function sessionLogId(sessionId: string): string {
  return `jp-remote-cluster-log-${sessionId}`;
}

/** Renders `logs` into `node` (replacing what was there). */
export function renderSessionLogs(node: HTMLElement, logs: ISessionLogs, trans: TranslationBundle): void {
  node.replaceChildren();
  if (logs.files.length === 0) {
    const p = node.appendChild(document.createElement('p'));
    p.className = 'jp-RemoteCluster-logEmpty';
    p.textContent = logs.missing ?? trans.__('No log files yet: the job has not started writing.');
    return;
  }
  for (const f of logs.files) {
    const details = node.appendChild(document.createElement('details'));
    details.className = 'jp-RemoteCluster-logFile';
    details.dataset.file = f.name;
    details.open = true;
    const summary = details.appendChild(document.createElement('summary'));
    summary.textContent = f.truncated
      ? trans.__('%1 (%2, the end)', f.name, formatBytes(f.size))
      : trans.__('%1 (%2)', f.name, formatBytes(f.size));
    const pre = details.appendChild(document.createElement('pre'));
    pre.textContent = f.text || trans.__('(empty)');
  }
}

export class SessionLogPanel extends Widget {
  constructor(
    private readonly fetchLogs: () => Promise<ISessionLogs>,
    private readonly trans: TranslationBundle
  ) {
    super();
    this.addClass('jp-RemoteCluster-log');
  }

  /** Reads the logs again; a failure is said in the panel (the previous text stays out of it). */
  async refresh(): Promise<void> {
    this.node.setAttribute('aria-busy', 'true');
    try {
      renderSessionLogs(this.node, await this.fetchLogs(), this.trans);
    } catch (e) {
      this.node.replaceChildren();
      const p = this.node.appendChild(document.createElement('p'));
      p.className = 'jp-RemoteCluster-error';
      p.textContent = this.trans.__('Could not read the logs: %1', (e as Error).message);
    } finally {
      this.node.removeAttribute('aria-busy');
    }
  }
}

/** The panel for session `s`, read once now; Refresh reads again. */
export function createSessionLog(
  s: ISession,
  fetchLogs: () => Promise<ISessionLogs>,
  trans: TranslationBundle
): MainAreaWidget<SessionLogPanel> {
  const content = new SessionLogPanel(fetchLogs, trans);
  const widget = new MainAreaWidget({ content });
  widget.id = sessionLogId(s.id);
  widget.title.label = s.jobId ? trans.__('Log · job %1', s.jobId) : trans.__('Log · %1', s.cluster);
  widget.title.icon = remoteClusterIcon;
  widget.title.closable = true;
  widget.toolbar.addItem(
    'refresh',
    new ToolbarButton({
      icon: refreshIcon,
      tooltip: trans.__('Read the logs again'),
      onClick: () => void content.refresh()
    })
  );
  void content.refresh();
  return widget;
}
