import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, showDialog, Dialog } from '@jupyterlab/apputils';
import { ILauncher } from '@jupyterlab/launcher';
import { ITranslator, nullTranslator } from '@jupyterlab/translation';
import { Widget } from '@lumino/widgets';

import type { IAgentHealth } from '../common/api';
import { requestAPI } from './handler';
import { remoteClusterIcon } from './icons';

/** Command ids, namespaced like JupyterLab's own. */
export namespace CommandIDs {
  export const showStatus = 'remote-cluster:show-status';
}

/** Launcher category shared by every tile of this extension. */
export const LAUNCHER_CATEGORY = 'Remote cluster';

/** Render the agent's health as plain text lines for a dialog. */
export function describeHealth(h: IAgentHealth, trans = nullTranslator.load('jupyterlab_remote_cluster')): string[] {
  return [
    trans.__('Agent %1 is running (pid %2, up %3 s).', h.agentVersion, h.pid, h.uptimeSeconds),
    trans.__('Node.js %1, ssh2 %2 (%3 crypto).', h.nodeVersion, h.ssh.version, h.ssh.nativeCrypto ? trans.__('native') : trans.__('pure JS'))
  ];
}

const launcherPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyterlab-remote-cluster:launcher',
  description: 'Adds the "Remote cluster" tiles to the Launcher.',
  autoStart: true,
  requires: [ITranslator],
  optional: [ILauncher, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    translator: ITranslator,
    launcher: ILauncher | null,
    palette: ICommandPalette | null
  ) => {
    const trans = translator.load('jupyterlab_remote_cluster');
    app.commands.addCommand(CommandIDs.showStatus, {
      label: trans.__('Remote cluster'),
      caption: trans.__('Run kernels on an HPC cluster over SSH'),
      icon: args => (args['isPalette'] ? undefined : remoteClusterIcon),
      execute: async () => {
        let lines: string[];
        try {
          lines = describeHealth(await requestAPI<IAgentHealth>('api/health'), trans);
        } catch (error) {
          lines = [trans.__('The remote-cluster agent is not available: %1', (error as Error).message)];
        }
        const body = document.createElement('div');
        body.className = 'jp-RemoteCluster-status';
        for (const line of lines) {
          body.appendChild(document.createElement('p')).textContent = line;
        }
        await showDialog({
          title: trans.__('Remote cluster'),
          body: new Widget({ node: body }),
          buttons: [Dialog.okButton({ label: trans.__('Close') })]
        });
      }
    });
    launcher?.add({ command: CommandIDs.showStatus, category: LAUNCHER_CATEGORY, rank: 0 });
    palette?.addItem({ command: CommandIDs.showStatus, category: LAUNCHER_CATEGORY, args: { isPalette: true } });
  }
};

export default [launcherPlugin];
