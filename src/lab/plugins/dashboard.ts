/** The dashboard plugin: a session's Dask dashboard as a main-area panel. */
import type { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { Notification, WidgetTracker, type IFrame, type MainAreaWidget } from '@jupyterlab/apputils';
import { ITranslator } from '@jupyterlab/translation';

import { CommandIDs } from '../commands';
import { createDashboard, dashboardId } from '../dashboard';
import { IRemoteClusterModel } from '../tokens';

export const dashboardPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyterlab-remote-cluster:dashboard',
  description: "Opens a session's Dask dashboard as a panel (sandboxed iframe of the proxied URL).",
  autoStart: true,
  requires: [IRemoteClusterModel, ITranslator],
  activate: (app: JupyterFrontEnd, model: IRemoteClusterModel, translator: ITranslator): void => {
    const trans = translator.load('jupyterlab_remote_cluster');
    const dashboards = new WidgetTracker<MainAreaWidget<IFrame>>({ namespace: 'remote-cluster-dashboard' });

    app.commands.addCommand(CommandIDs.openDashboard, {
      label: trans.__('Open the Dask dashboard'),
      // args: session; port: the proxied label (absent: 0, the session's own scheduler)
      execute: args => {
        const s = model.session(String(args['session']));
        if (!s) {
          return;
        }
        const port = Number(args['port'] ?? 0);
        const existing = dashboards.find(w => w.id === dashboardId(s, port));
        if (existing) {
          app.shell.activateById(existing.id);
          return;
        }
        const widget = createDashboard(s, trans, port);
        if (!widget) {
          Notification.warning(trans.__('This session serves no dashboard.'));
          return;
        }
        void dashboards.add(widget);
        app.shell.add(widget, 'main', { mode: 'split-right' });
      }
    });
  }
};
