/**
 * The Dask dashboard (or any web UI the session serves) as a main-area panel: an iframe
 * of the proxied URL `remote-cluster/sessions/<id>/proxy/<port>/...`, which the server
 * extension authenticates and the agent carries over SSH to that session's node only.
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
  // Scripts and same-origin are needed for Bokeh's websocket through the proxy.
  const frame = new IFrame({ sandbox: ['allow-scripts', 'allow-same-origin', 'allow-popups'] });
  frame.url = url;
  const widget = new MainAreaWidget({ content: frame });
  widget.id = `jp-remote-cluster-dashboard-${s.id}`;
  widget.addClass('jp-RemoteCluster-dashboard');
  widget.title.label = trans.__('Dask · %1', s.jobId ? `job ${s.jobId}` : s.cluster);
  widget.title.icon = remoteClusterIcon;
  widget.title.closable = true;
  return widget;
}
