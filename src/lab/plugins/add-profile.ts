/**
 * The add-profile plugin: "Add a cluster" (the Settings Editor on the profiles) and
 * "Add from ssh_config", in the palette; the Launcher shows both while no profile exists.
 */
import type { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { ITranslator } from '@jupyterlab/translation';

import { registerAddFromSshConfig } from '../add-profile';
import { CommandIDs, LabCommandIDs } from '../commands';
import { remoteClusterIcon } from '../icons';
import { LAUNCHER_CATEGORY } from '../tokens';

export const addProfilePlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyterlab-remote-cluster:add-profile',
  description: 'Adds cluster profiles: from the Settings Editor, or from a Host entry of ~/.ssh/config.',
  autoStart: true,
  requires: [ITranslator, ISettingRegistry],
  optional: [ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    translator: ITranslator,
    registry: ISettingRegistry,
    palette: ICommandPalette | null
  ): void => {
    const trans = translator.load('jupyterlab_remote_cluster');
    const { commands } = app;

    commands.addCommand(CommandIDs.addProfile, {
      label: args => (args['isPalette'] ? trans.__('Add a remote cluster profile') : trans.__('Add a cluster')),
      caption: trans.__('Cluster profiles live in the Settings Editor ("Remote cluster profiles")'),
      icon: args => (args['isPalette'] ? undefined : remoteClusterIcon),
      execute: () => commands.execute(LabCommandIDs.openSettingEditor, { query: 'Remote cluster profiles' })
    });

    registerAddFromSshConfig(commands, registry, trans);

    palette?.addItem({ command: CommandIDs.addProfile, args: { isPalette: true }, category: LAUNCHER_CATEGORY });
    palette?.addItem({ command: CommandIDs.addFromSshConfig, args: { isPalette: true }, category: LAUNCHER_CATEGORY });
  }
};
