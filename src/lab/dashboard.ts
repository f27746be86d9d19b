/**
 * The Dask dashboard (or any web UI the session serves) as a main-area panel: an iframe
 * of the proxied URL `remote-cluster/proxied/<key>/<port>/...` (the session's proxy key is
 * the capability), which the agent carries over SSH to that session's node only.
 *
 * What it shows runs sandboxed, without `allow-same-origin`: an opaque origin, so a page
 * served by the session (a Bokeh XSS, a port another user took over) cannot read
 * JupyterLab's cookies, token or DOM, nor call its API with its cookies. The server sends
 * the same sandbox as a CSP header, for the URL opened in a tab of its own.
 */
import { IFrame, MainAreaWidget } from '@jupyterlab/apputils';
import { PageConfig, URLExt } from '@jupyterlab/coreutils';
import type { TranslationBundle } from '@jupyterlab/translation';

import type { ISession } from '../common/api';
import { remoteClusterIcon } from './icons';
import type { IRemoteClusterModel } from './tokens';

/**
 * Session `id` once the model knows it (after a reload, the agent's event stream lists
 * the sessions a moment after the layout is restored), or undefined after `timeoutMs`.
 */
export function sessionSoon(model: IRemoteClusterModel, id: string, timeoutMs: number): Promise<ISession | undefined> {
  const known = model.session(id);
  if (known) {
    return Promise.resolve(known);
  }
  return new Promise(resolve => {
    const check = () => {
      const s = model.session(id);
      if (s) {
        done(s);
      }
    };
    const done = (s: ISession | undefined) => {
      window.clearTimeout(timer);
      model.sessionsChanged.disconnect(check);
      resolve(s);
    };
    const timer = window.setTimeout(() => done(undefined), timeoutMs);
    model.sessionsChanged.connect(check);
  });
}

/**
 * The page served under proxied port label `port`: 0 is the session's own dashboard, 1,
 * 2, ... those of Dask schedulers its notebooks start, 1024 and up web servers its
 * processes run (TensorBoard, ...): all in the same sandboxed panel.
 */
export function dashboardUrl(s: ISession, port = 0, baseUrl = PageConfig.getBaseUrl()): string | undefined {
  const dash = (s.httpPorts ?? []).find(p => p.port === port && (p.name.startsWith('dask-') || p.name === 'web'));
  if (!dash) {
    return undefined;
  }
  // The helper reports the full public path.
  const origin = new URL(baseUrl, window.location.href).origin;
  return URLExt.join(origin, dash.path);
}

/** Labels from here on are TCP ports of web servers (below: Dask dashboards). */
export const WEB_PORT_MIN = 1024;

export function dashboardId(s: ISession, port: number): string {
  return port === 0 ? `jp-remote-cluster-dashboard-${s.id}` : `jp-remote-cluster-dashboard-${s.id}-${port}`;
}

export function createDashboard(s: ISession, trans: TranslationBundle, port = 0): MainAreaWidget<IFrame> | undefined {
  const url = dashboardUrl(s, port);
  if (!url) {
    return undefined;
  }
  const frame = new IFrame({ sandbox: ['allow-scripts', 'allow-forms', 'allow-popups', 'allow-downloads'] });
  frame.referrerPolicy = 'no-referrer';
  frame.url = url;
  const widget = new MainAreaWidget({ content: frame });
  widget.id = dashboardId(s, port);
  // what the layout restorer reopens after a reload
  widget.node.dataset.session = s.id;
  widget.node.dataset.port = String(port);
  widget.addClass('jp-RemoteCluster-dashboard');
  const where = s.jobId ? `job ${s.jobId}` : s.cluster;
  widget.title.label =
    port === 0
      ? trans.__('Dask · %1', where)
      : port >= WEB_PORT_MIN
        ? trans.__('Port %1 · %2', port, where)
        : trans.__('Dask · %1 · notebook %2', where, port);
  widget.title.icon = remoteClusterIcon;
  widget.title.closable = true;
  return widget;
}
