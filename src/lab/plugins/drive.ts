/**
 * The cluster files plugin: a drive per profile (`cluster-<profile>:`, the cluster user's
 * home directory over SFTP, drive.ts) and a file browser on it in the left area, opened
 * by a command (palette, the sessions sidebar's "Files") and reopened after a reload.
 * Registering the drives opens no connection; a browser's first listing does.
 */
import { ILayoutRestorer, type JupyterFrontEnd, type JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, Notification, WidgetTracker } from '@jupyterlab/apputils';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { INotebookTracker } from '@jupyterlab/notebook';
import { FileBrowser, IFileBrowserFactory, Uploader } from '@jupyterlab/filebrowser';
import { ServerConnection } from '@jupyterlab/services';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { ITranslator } from '@jupyterlab/translation';
import { closeIcon, newFolderIcon, refreshIcon, ToolbarButton } from '@jupyterlab/ui-components';

import { parseProfiles } from '../../common/profile';
import { CommandIDs } from '../commands';
import { ClusterDrive } from '../drive';
import { followDriveNotebook } from '../drive-kernels';
import { remoteClusterIcon } from '../icons';
import { listProfiles, pickProfile, type IProfileChoice } from '../profiles';
import { IRemoteClusterModel, LAUNCHER_CATEGORY, PROFILES_PLUGIN_ID } from '../tokens';

/** The id of the file browser on a profile's drive (its left-area tab has it as data-id). */
export function clusterFilesWidgetId(profile: string): string {
  return `remote-cluster-files-${profile}`;
}

export const drivePlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyterlab-remote-cluster:drive',
  description: "Files in a cluster's home directory over SFTP: a drive per profile and a file browser on it.",
  autoStart: true,
  // (the browsers open documents through the document manager, as the factory's do)
  requires: [IRemoteClusterModel, ITranslator, IFileBrowserFactory, IDocumentManager],
  optional: [ILayoutRestorer, ICommandPalette, ISettingRegistry, INotebookTracker],
  activate: async (
    app: JupyterFrontEnd,
    model: IRemoteClusterModel,
    translator: ITranslator,
    factory: IFileBrowserFactory,
    docManager: IDocumentManager,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null,
    registry: ISettingRegistry | null,
    notebooks: INotebookTracker | null
  ): Promise<void> => {
    const trans = translator.load('jupyterlab_remote_cluster');
    // a notebook of a drive runs in its folder there (drive-kernels.ts)
    notebooks?.widgetAdded.connect((_, panel) => followDriveNotebook(panel.sessionContext, () => panel.context.path));
    const drives = new Map<string, ClusterDrive>();
    const titles = new Map<string, string>();
    const tracker = new WidgetTracker<FileBrowser>({ namespace: 'remote-cluster-files' });
    const caption = (profile: string) =>
      trans.__('Files on %1 (cluster home over SFTP)', titles.get(profile) ?? profile);

    /** The profile's drive, added to the contents manager the first time (no connection). */
    const driveOf = (profile: string): ClusterDrive => {
      let drive = drives.get(profile);
      if (!drive) {
        drive = new ClusterDrive({
          profile,
          title: titles.get(profile),
          serverSettings: app.serviceManager.serverSettings,
          translator
        });
        app.serviceManager.contents.addDrive(drive);
        drives.set(profile, drive);
      }
      return drive;
    };
    /** Every profile's drive, before any document or browser on one is restored. */
    const register = (profiles: IProfileChoice[]): void => {
      for (const p of profiles) {
        titles.set(p.name, p.title || p.name);
        driveOf(p.name);
      }
      tracker.forEach(w => (w.title.caption = caption(w.node.dataset.profile ?? '')));
    };

    const open = (profile: string, activate: boolean): FileBrowser => {
      const id = clusterFilesWidgetId(profile);
      let browser = tracker.find(w => w.id === id);
      if (!browser) {
        const drive = driveOf(profile);
        browser = factory.createFileBrowser(id, { driveName: drive.name, restore: true });
        browser.addClass('jp-RemoteCluster-files');
        browser.node.dataset.profile = profile;
        browser.title.icon = remoteClusterIcon;
        browser.title.caption = caption(profile);
        addToolbar(browser);
        // A listing that fails (link down, sign-in needed) says why, once until one succeeds.
        let shown = '';
        browser.model.connectionFailure.connect((_, err) => {
          // (a folder that is gone: the browser says so itself and goes home)
          const gone = err instanceof ServerConnection.ResponseError && err.response.status === 404;
          if (!gone && err.message !== shown) {
            shown = err.message;
            Notification.error(trans.__('Files on %1: %2', titles.get(profile) ?? profile, err.message));
          }
        });
        browser.model.refreshed.connect(() => (shown = ''));
        void tracker.add(browser);
        app.shell.add(browser, 'left', { rank: 150 });
      }
      if (activate) {
        app.shell.activateById(id);
      }
      return browser;
    };

    const addToolbar = (browser: FileBrowser): void => {
      const button = (name: string, options: ConstructorParameters<typeof ToolbarButton>[0]) =>
        browser.toolbar.addItem(name, new ToolbarButton(options));
      button('new-directory', {
        icon: newFolderIcon,
        tooltip: trans.__('New Folder'),
        onClick: () => void browser.createNewDirectory()
      });
      browser.toolbar.addItem('upload', new Uploader({ model: browser.model, translator }));
      button('refresh', {
        icon: refreshIcon,
        tooltip: trans.__('Refresh the listing'),
        onClick: () => void browser.model.refresh()
      });
      button('close', {
        icon: closeIcon,
        tooltip: trans.__('Close this file browser (the files stay on the cluster)'),
        onClick: () => browser.dispose()
      });
    };

    app.commands.addCommand(CommandIDs.openClusterFiles, {
      label: args => (args['isPalette'] ? trans.__('Open Cluster Files…') : trans.__('Cluster Files')),
      caption: trans.__("Browse, open, upload and download the files of a cluster's home directory (over SFTP)"),
      icon: args => (args['isPalette'] ? undefined : remoteClusterIcon),
      // args: profile (absent: asks); activate: false when restored after a reload
      execute: async args => {
        let profile = typeof args['profile'] === 'string' ? args['profile'] : undefined;
        if (profile === undefined) {
          try {
            profile = await pickProfile(trans.__('Files on which cluster?'));
          } catch (err) {
            Notification.error(trans.__('No file browser was opened: %1', (err as Error).message));
            return;
          }
        }
        if (profile) {
          open(profile, args['activate'] !== false);
        }
      }
    });
    palette?.addItem({ command: CommandIDs.openClusterFiles, category: LAUNCHER_CATEGORY, args: { isPalette: true } });

    void restorer?.restore(tracker, {
      command: CommandIDs.openClusterFiles,
      args: w => ({ profile: w.node.dataset.profile ?? '', activate: false }),
      name: w => w.id
    });

    // Signed in again (or reconnected): a browser on that cluster lists what failed meanwhile.
    model.clusterMessage.connect((_, m) => {
      if (m.state === 'connected') {
        void tracker.find(w => w.node.dataset.profile === m.cluster)?.model.refresh();
      }
    });

    // The drives follow the profiles of the settings; without them, the agent's list.
    if (!registry) {
      void listProfiles().then(register, () => undefined);
      return;
    }
    try {
      const settings = await registry.load(PROFILES_PLUGIN_ID);
      register(parseProfiles(settings.composite).profiles);
      settings.changed.connect(() => register(parseProfiles(settings.composite).profiles));
    } catch {
      // (the profiles plugin says why the settings cannot be read)
    }
  }
};
