/**
 * Remote sessions where JupyterLab shows what runs: a "Remote clusters" section in the
 * Running panel (running.ts) and the current notebook's session in the status bar
 * (status-item.ts). Both are optional: a Lab without them loses only these views.
 */
import type { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { Notification } from '@jupyterlab/apputils';
import { IRunningSessionManagers } from '@jupyterlab/running';
import { IStatusBar } from '@jupyterlab/statusbar';
import { ITranslator } from '@jupyterlab/translation';
import { Signal } from '@lumino/signaling';

import type { ISession } from '../../common/api';
import { CommandIDs } from '../commands';
import { requestAPI } from '../handler';
import { RemoteClustersRunning } from '../running';
import { SessionStatusItem } from '../status-item';
import { IRemoteClusterModel } from '../tokens';

/** The status item follows the clock (time left) and the current widget's kernel this often. */
const STATUS_TICK_MS = 1_000;

export const runningPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyterlab-remote-cluster:running',
  description: "Remote sessions in the Running panel, and the current notebook's session in the status bar.",
  autoStart: true,
  requires: [IRemoteClusterModel, ITranslator],
  optional: [IRunningSessionManagers, IStatusBar],
  activate: (
    app: JupyterFrontEnd,
    model: IRemoteClusterModel,
    translator: ITranslator,
    running: IRunningSessionManagers | null,
    statusBar: IStatusBar | null
  ): void => {
    const trans = translator.load('jupyterlab_remote_cluster');
    if (running) {
      const cancel = async (s: ISession): Promise<void> => {
        try {
          model.handle({
            type: 'session',
            session: await requestAPI<ISession>(`api/v1/sessions/${s.id}`, { method: 'DELETE' })
          });
        } catch (e) {
          Notification.error(trans.__('Could not cancel: %1', (e as Error).message));
        }
      };
      running.add(new RemoteClustersRunning(model, app.commands, trans, cancel));
    }
    if (statusBar) {
      const item = new SessionStatusItem(
        model,
        trans,
        () => app.shell.currentWidget,
        () => void app.commands.execute(CommandIDs.showSessions)
      );
      const activeChanged = new Signal<SessionStatusItem, void>(item);
      const refresh = () => {
        if (item.refresh()) {
          activeChanged.emit();
        }
      };
      statusBar.registerStatusItem(runningPlugin.id, {
        item,
        align: 'left',
        rank: 5,
        isActive: () => item.session !== undefined,
        activeStateChanged: activeChanged
      });
      model.sessionsChanged.connect(refresh);
      app.shell.currentChanged?.connect(refresh);
      window.setInterval(refresh, STATUS_TICK_MS);
    }
  }
};
