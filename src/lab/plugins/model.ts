/**
 * The model plugin: one `RemoteClusterModel` for the page, provided as
 * `IRemoteClusterModel`; the agent's notices and its status dialog.
 */
import type { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { Dialog, ICommandPalette, Notification, showDialog } from '@jupyterlab/apputils';
import { ITranslator, nullTranslator } from '@jupyterlab/translation';
import { Widget } from '@lumino/widgets';

import type { IAgentHealth } from '../../common/api';
import { CommandIDs } from '../commands';
import { requestAPI } from '../handler';
import { RemoteClusterModel } from '../model';
import { IRemoteClusterModel, LAUNCHER_CATEGORY } from '../tokens';

/** Render the agent's health as plain text lines for a dialog. */
export function describeHealth(h: IAgentHealth, trans = nullTranslator.load('jupyterlab_remote_cluster')): string[] {
  return [
    trans.__('Agent %1 is running (pid %2, up %3 s).', h.agentVersion, h.pid, h.uptimeSeconds),
    trans.__(
      'Node.js %1, ssh2 %2 (%3 crypto, %4).',
      h.nodeVersion,
      h.ssh.version,
      h.ssh.nativeCrypto ? trans.__('native') : trans.__('pure JS'),
      h.ssh.certificates ? trans.__('OpenSSH certificates') : trans.__('no OpenSSH certificates')
    )
  ];
}

function paragraphs(lines: string[], className: string): Widget {
  const body = document.createElement('div');
  body.className = className;
  for (const line of lines) {
    body.appendChild(document.createElement('p')).textContent = line;
  }
  return new Widget({ node: body });
}

export const modelPlugin: JupyterFrontEndPlugin<IRemoteClusterModel> = {
  id: 'jupyterlab-remote-cluster:model',
  description: "The remote-cluster agent's sessions, cluster links and prompts (IRemoteClusterModel), and its status.",
  autoStart: true,
  provides: IRemoteClusterModel,
  requires: [ITranslator],
  optional: [ICommandPalette],
  activate: (app: JupyterFrontEnd, translator: ITranslator, palette: ICommandPalette | null): IRemoteClusterModel => {
    const trans = translator.load('jupyterlab_remote_cluster');
    const model = new RemoteClusterModel();

    app.commands.addCommand(CommandIDs.showStatus, {
      label: trans.__('Remote cluster: agent status'),
      execute: async () => {
        let lines: string[];
        try {
          lines = describeHealth(await requestAPI<IAgentHealth>('api/v1/health'), trans);
        } catch (error) {
          lines = [trans.__('The remote-cluster agent is not available: %1', (error as Error).message)];
        }
        await showDialog({
          title: trans.__('Remote cluster'),
          body: paragraphs(lines, 'jp-RemoteCluster-status'),
          buttons: [Dialog.okButton({ label: trans.__('Close') })]
        });
      }
    });
    palette?.addItem({ command: CommandIDs.showStatus, category: LAUNCHER_CATEGORY });

    model.notice.connect((_, n) => {
      const show = n.level === 'error' ? Notification.error : Notification.warning;
      show(trans.__('Remote cluster: %1', n.message), { autoClose: false });
    });

    // Keep kernel choices current: the agent writes a session's kernelspec as it runs.
    model.sessionsChanged.connect(() => void app.serviceManager.kernelspecs.refreshSpecs());

    // The agent replays its open prompts and notices to a new listener: connect once every
    // plugin has activated, so that those using the model have connected their handlers.
    void app.started.then(() => model.connect());
    return model;
  }
};
