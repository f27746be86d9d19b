/**
 * The dashboard plugin: a session's Dask dashboard, or a web server its processes run, as
 * a main-area panel, reopened after a page reload while its session still serves it; a
 * new web server is announced with Open.
 */
import { ILayoutRestorer, type JupyterFrontEnd, type JupyterFrontEndPlugin } from '@jupyterlab/application';
import {
  ICommandPalette,
  InputDialog,
  Notification,
  WidgetTracker,
  type IFrame,
  type MainAreaWidget
} from '@jupyterlab/apputils';
import { ITranslator } from '@jupyterlab/translation';

import type { ISession, IServedPort } from '../../common/api';
import { CommandIDs } from '../commands';
import { createDashboard, dashboardId, sessionSoon, WEB_PORT_MIN } from '../dashboard';
import { requestAPI } from '../handler';
import { IRemoteClusterModel, LAUNCHER_CATEGORY } from '../tokens';
import { openPortByNumber, WebPortNotices } from '../web-ports';

/** After a reload, how long a restored dashboard waits for the agent to list its session. */
const RESTORE_WAIT_MS = 15_000;

export const dashboardPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyterlab-remote-cluster:dashboard',
  description: "Opens a session's Dask dashboard as a panel (sandboxed iframe of the proxied URL).",
  autoStart: true,
  requires: [IRemoteClusterModel, ITranslator],
  optional: [ILayoutRestorer, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    model: IRemoteClusterModel,
    translator: ITranslator,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null
  ): void => {
    const trans = translator.load('jupyterlab_remote_cluster');
    const dashboards = new WidgetTracker<MainAreaWidget<IFrame>>({ namespace: 'remote-cluster-dashboard' });

    const open = (s: ISession, port: number, restoring: boolean): void => {
      const existing = dashboards.find(w => w.id === dashboardId(s, port));
      if (existing) {
        app.shell.activateById(existing.id);
        return;
      }
      const widget = createDashboard(s, trans, port);
      if (!widget) {
        if (!restoring) {
          Notification.warning(trans.__('This session serves no dashboard.'));
        }
        return; // (restoring: the session ended meanwhile; its panel stays closed)
      }
      void dashboards.add(widget);
      app.shell.add(widget, 'main', restoring ? {} : { mode: 'split-right' });
    };

    app.commands.addCommand(CommandIDs.openDashboard, {
      label: args =>
        Number(args['port'] ?? 0) >= WEB_PORT_MIN ? trans.__('Open the web page') : trans.__('Open the Dask dashboard'),
      // args: session; port: the proxied label (absent: 0, the session's own scheduler);
      // restoring: reopened after a reload
      execute: args => {
        const restoring = Boolean(args['restoring']);
        const id = String(args['session']);
        const port = Number(args['port'] ?? 0);
        const s = model.session(id);
        if (s) {
          open(s, port, restoring);
        } else if (restoring) {
          // The agent lists its sessions a moment after the page loads; Lab's layout is
          // not held for that: the panel opens when its session shows.
          void sessionSoon(model, id, RESTORE_WAIT_MS).then(later => later && open(later, port, true));
        }
      }
    });
    // A web server a session's process starts: said once, with Open (web-ports.ts).
    const notices = new WebPortNotices((s, p) => {
      const where = s.jobId ? trans.__('job %1', s.jobId) : s.cluster;
      Notification.info(
        p.command
          ? trans.__('Port %1 of %2 serves a web page (%3).', p.port, where, p.command)
          : trans.__('Port %1 of %2 serves a web page.', p.port, where),
        {
          autoClose: 15_000,
          actions: [
            {
              label: trans.__('Open'),
              callback: () => void app.commands.execute(CommandIDs.openDashboard, { session: s.id, port: p.port })
            }
          ]
        }
      );
    });
    model.sessionsChanged.connect(() => notices.check(model.sessions));

    app.commands.addCommand(CommandIDs.openWebPort, {
      label: trans.__('Open a Port of the Session…'),
      caption: trans.__("A web server of a running session's processes, by its port number, as a panel"),
      execute: args =>
        openPortByNumber(
          {
            session: args['session'] === undefined ? undefined : String(args['session']),
            port: args['port'] === undefined ? undefined : Number(args['port'])
          },
          {
            sessions: () => model.sessions,
            pickSession: async running => {
              const label = (s: ISession) => `${s.profile} · ${s.jobId ? trans.__('job %1', s.jobId) : s.cluster}`;
              const r = await InputDialog.getItem({
                title: trans.__('Open a port of which session?'),
                items: running.map(label)
              });
              return r.button.accept ? running.find(s => label(s) === r.value) : undefined;
            },
            askPort: async s => {
              const r = await InputDialog.getNumber({
                title: trans.__('Open a port of %1', s.jobId ? trans.__('job %1', s.jobId) : s.cluster),
                label: trans.__('Port a web server of the session listens on (TensorBoard 6006, Streamlit 8501…):'),
                value: 8000
              });
              return r.button.accept && r.value !== null ? r.value : undefined;
            },
            post: (s, port) =>
              requestAPI<IServedPort>(`api/v1/sessions/${s.id}/web-ports`, {
                method: 'POST',
                body: JSON.stringify({ port })
              }),
            open: (s, port) => {
              notices.seen(s.id, port);
              open(s, port, false);
            },
            notifyError: message => Notification.error(message, { autoClose: false }),
            trans
          }
        )
    });
    palette?.addItem({ command: CommandIDs.openWebPort, category: LAUNCHER_CATEGORY });
    void restorer?.restore(dashboards, {
      command: CommandIDs.openDashboard,
      args: w => ({ session: w.node.dataset.session ?? '', port: Number(w.node.dataset.port ?? 0), restoring: true }),
      name: w => w.id
    });
  }
};
