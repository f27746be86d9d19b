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

export function dashboardUrl(s: ISession, baseUrl = PageConfig.getBaseUrl()): string | undefined {
  const dash = (s.httpPorts ?? []).find(p => p.name === 'dask-dashboard');
  if (!dash) {
    return undefined;
  }
  // The helper reports the full path (the dashboard runs under our proxy prefix).
  const origin = new URL(baseUrl, window.location.href).origin;
  return URLExt.join(origin, dash.path);
}

export function createDashboard(s: ISession, trans: TranslationBundle): MainAreaWidget<IFrame> | undefined {
  const url = dashboardUrl(s);
  if (!url) {
    return undefined;
  }
  const frame = new IFrame({ sandbox: ['allow-scripts', 'allow-forms', 'allow-popups', 'allow-downloads'] });
  frame.referrerPolicy = 'no-referrer';
  frame.url = url;
  const widget = new MainAreaWidget({ content: frame });
  widget.id = `jp-remote-cluster-dashboard-${s.id}`;
  widget.addClass('jp-RemoteCluster-dashboard');
  widget.title.label = trans.__('Dask · %1', s.jobId ? `job ${s.jobId}` : s.cluster);
  widget.title.icon = remoteClusterIcon;
  widget.title.closable = true;
  return widget;
}
