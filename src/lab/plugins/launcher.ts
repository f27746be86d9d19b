/**
 * The launcher plugin: the cluster profiles of the settings, a Launcher tile and a palette
 * entry per profile, and the submit command behind them. It owns the settings schema
 * (schema/profiles.json), hence its id `jupyterlab-remote-cluster:profiles`: user settings
 * and the agent's reader are keyed by it.
 */
import { ILabShell, type JupyterFrontEnd, type JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, Notification } from '@jupyterlab/apputils';
import { ILauncher } from '@jupyterlab/launcher';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { ITranslator } from '@jupyterlab/translation';
import { DisposableSet } from '@lumino/disposable';

import type { IClusterProfile } from '../../common/api';
import { parseProfiles } from '../../common/profile';
import { CommandIDs } from '../commands';
import { requestAPI } from '../handler';
import { remoteClusterIcon } from '../icons';
import { SESSIONS_PANEL_ID } from '../sidebar';
import { submitWithDialog } from '../submit-dialog';
import { IRemoteClusterModel, LAUNCHER_CATEGORY, PROFILES_PLUGIN_ID } from '../tokens';

export const launcherPlugin: JupyterFrontEndPlugin<void> = {
  id: PROFILES_PLUGIN_ID,
  description:
    'Cluster profiles (settings) and the "Remote cluster" Launcher tiles and palette entries that submit a session.',
  autoStart: true,
  requires: [IRemoteClusterModel, ITranslator, ISettingRegistry],
  optional: [ILauncher, ICommandPalette, ILabShell],
  activate: async (
    app: JupyterFrontEnd,
    model: IRemoteClusterModel,
    translator: ITranslator,
    registry: ISettingRegistry,
    launcher: ILauncher | null,
    palette: ICommandPalette | null,
    labShell: ILabShell | null
  ): Promise<void> => {
    const trans = translator.load('jupyterlab_remote_cluster');
    const { commands } = app;
    let profiles: IClusterProfile[] = [];
    /** Sessions submitted from this window: open a notebook when they run. */
    const openWhenRunning = new Set<string>();

    commands.addCommand(CommandIDs.submit, {
      label: args => {
        const p = profiles.find(x => x.name === args['profile']);
        return args['isPalette']
          ? trans.__('Start a remote session on %1', p?.title ?? String(args['profile'] ?? ''))
          : (p?.title ?? p?.name ?? trans.__('Remote cluster'));
      },
      caption: args =>
        trans.__('Submit a job on %1 and run a kernel on its compute node', String(args['profile'] ?? '')),
      icon: args => (args['isPalette'] ? undefined : remoteClusterIcon),
      execute: async args => {
        const profile = profiles.find(x => x.name === args['profile']);
        if (!profile) {
          Notification.error(trans.__('No cluster profile named "%1".', String(args['profile'])));
          return;
        }
        try {
          const session = await submitWithDialog(profile, trans);
          if (session) {
            openWhenRunning.add(session.id);
            model.handle({ type: 'session', session });
            if (labShell) {
              labShell.activateById(SESSIONS_PANEL_ID);
            }
          }
        } catch (e) {
          Notification.error(trans.__('Could not submit: %1', (e as Error).message));
        }
      }
    });

    // Open a notebook once a session submitted here runs.
    model.sessionsChanged.connect((_, s) => {
      if (s && s.state === 'running' && openWhenRunning.delete(s.id)) {
        void commands.execute(CommandIDs.openNotebook, { session: s.id });
      }
      if (s && s.state === 'ended') {
        openWhenRunning.delete(s.id);
      }
    });

    // Launcher tiles and palette entries follow the profiles in the settings.
    const tiles = new DisposableSet();
    const applyProfiles = (raw: unknown): void => {
      const parsed = parseProfiles(raw);
      profiles = parsed.profiles;
      for (const e of parsed.errors) {
        Notification.error(trans.__('Remote cluster settings: %1', e), { autoClose: false });
      }
      tiles.dispose();
      if (profiles.length === 0 && launcher) {
        // Discoverable even before any profile exists (the add-profile plugin's commands).
        tiles.add(launcher.add({ command: CommandIDs.addProfile, category: LAUNCHER_CATEGORY, rank: 0 }));
        tiles.add(launcher.add({ command: CommandIDs.addFromSshConfig, category: LAUNCHER_CATEGORY, rank: 1 }));
      }
      for (const [rank, p] of profiles.entries()) {
        if (launcher) {
          tiles.add(
            launcher.add({ command: CommandIDs.submit, args: { profile: p.name }, category: LAUNCHER_CATEGORY, rank })
          );
        }
        if (palette) {
          tiles.add(
            palette.addItem({
              command: CommandIDs.submit,
              args: { profile: p.name, isPalette: true },
              category: LAUNCHER_CATEGORY
            })
          );
        }
      }
      // The agent writes the matching kernelspecs when it reads the profiles.
      void requestAPI('api/v1/profiles')
        .then(() => app.serviceManager.kernelspecs.refreshSpecs())
        .catch(() => undefined);
    };
    try {
      const settings = await registry.load(PROFILES_PLUGIN_ID);
      applyProfiles(settings.composite);
      settings.changed.connect(() => applyProfiles(settings.composite));
    } catch (e) {
      console.error('remote-cluster: cannot load settings', e);
    }
  }
};
