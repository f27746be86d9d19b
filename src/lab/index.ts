import { ILabShell, ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import {
  Dialog,
  ICommandPalette,
  Notification,
  showDialog,
  WidgetTracker,
  type MainAreaWidget,
  type IFrame
} from '@jupyterlab/apputils';
import { ILauncher } from '@jupyterlab/launcher';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStatusBar } from '@jupyterlab/statusbar';
import { ITranslator, nullTranslator } from '@jupyterlab/translation';
import { DisposableSet } from '@lumino/disposable';
import { Widget } from '@lumino/widgets';

import type { IAgentHealth, IClusterProfile, ISession } from '../common/api';
import { parseProfiles } from '../common/profile';
import { ADD_FROM_SSH_CONFIG, registerAddFromSshConfig } from './add-profile';
import { createDashboard } from './dashboard';
import { requestAPI } from './handler';
import { remoteClusterIcon } from './icons';
import { RemoteClusterModel } from './model';
import { openSessionNotebook } from './open-notebook';
import { askPrompt } from './prompts';
import { SessionsPanel } from './sidebar';
import { addSignInStatus, registerSignIn } from './sign-in';
import { submitWithDialog } from './submit-dialog';
import { CommandIDs, LAUNCHER_CATEGORY, PROFILES_PLUGIN_ID } from './tokens';

export { CommandIDs, LAUNCHER_CATEGORY } from './tokens';

/** Render the agent's health as plain text lines for a dialog. */
export function describeHealth(h: IAgentHealth, trans = nullTranslator.load('jupyterlab_remote_cluster')): string[] {
  return [
    trans.__('Agent %1 is running (pid %2, up %3 s).', h.agentVersion, h.pid, h.uptimeSeconds),
    trans.__(
      'Node.js %1, ssh2 %2 (%3 crypto).',
      h.nodeVersion,
      h.ssh.version,
      h.ssh.nativeCrypto ? trans.__('native') : trans.__('pure JS')
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

const plugin: JupyterFrontEndPlugin<void> = {
  id: PROFILES_PLUGIN_ID,
  description: 'Cluster profiles, the "Remote cluster" Launcher tiles, the sessions sidebar and the dashboard panels.',
  autoStart: true,
  requires: [ITranslator, ISettingRegistry],
  optional: [ILauncher, ICommandPalette, ILabShell, ILayoutRestorer, IStatusBar],
  activate: async (
    app: JupyterFrontEnd,
    translator: ITranslator,
    registry: ISettingRegistry,
    launcher: ILauncher | null,
    palette: ICommandPalette | null,
    labShell: ILabShell | null,
    restorer: ILayoutRestorer | null,
    statusBar: IStatusBar | null
  ) => {
    const trans = translator.load('jupyterlab_remote_cluster');
    const { commands } = app;
    const model = new RemoteClusterModel();
    let profiles: IClusterProfile[] = [];
    /** Sessions submitted from this window: open a notebook when they run. */
    const openWhenRunning = new Set<string>();
    const dashboards = new WidgetTracker<MainAreaWidget<IFrame>>({ namespace: 'remote-cluster-dashboard' });

    commands.addCommand(CommandIDs.showStatus, {
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
              labShell.activateById(sidebar.id);
            }
          }
        } catch (e) {
          Notification.error(trans.__('Could not submit: %1', (e as Error).message));
        }
      }
    });

    commands.addCommand(CommandIDs.addProfile, {
      label: args => (args['isPalette'] ? trans.__('Add a remote cluster profile') : trans.__('Add a cluster')),
      caption: trans.__('Cluster profiles live in the Settings Editor ("Remote cluster profiles")'),
      icon: args => (args['isPalette'] ? undefined : remoteClusterIcon),
      execute: () => commands.execute('settingeditor:open', { query: 'Remote cluster profiles' })
    });

    registerAddFromSshConfig(commands, registry, trans);

    commands.addCommand(CommandIDs.openNotebook, {
      label: trans.__('Open a notebook on this session'),
      execute: args =>
        openSessionNotebook(String(args['session']), {
          commands,
          kernelspecs: app.serviceManager.kernelspecs,
          syncKernelspecs: () => requestAPI('api/v1/profiles'),
          notifyError: message => Notification.error(message),
          trans
        })
    });

    commands.addCommand(CommandIDs.openDashboard, {
      label: trans.__('Open the Dask dashboard'),
      execute: args => {
        const s = model.session(String(args['session']));
        if (!s) {
          return;
        }
        const existing = dashboards.find(w => w.id === `jp-remote-cluster-dashboard-${s.id}`);
        if (existing) {
          app.shell.activateById(existing.id);
          return;
        }
        const widget = createDashboard(s, trans);
        if (!widget) {
          Notification.warning(trans.__('This session serves no dashboard.'));
          return;
        }
        void dashboards.add(widget);
        app.shell.add(widget, 'main', { mode: 'split-right' });
      }
    });

    commands.addCommand(CommandIDs.cancelSession, {
      label: trans.__('Cancel the session (ends its job)'),
      execute: async args => {
        const s = model.session(String(args['session']));
        if (!s) {
          return;
        }
        const ok = await showDialog({
          title: trans.__('Cancel session?'),
          body: trans.__('This ends job %1 on %2; its kernels stop.', s.jobId ?? '-', s.cluster),
          buttons: [
            Dialog.cancelButton({ label: trans.__('Keep') }),
            Dialog.warnButton({ label: trans.__('Cancel job') })
          ]
        });
        if (!ok.button.accept) {
          return;
        }
        try {
          model.handle({
            type: 'session',
            session: await requestAPI<ISession>(`api/v1/sessions/${s.id}`, { method: 'DELETE' })
          });
        } catch (e) {
          Notification.error(trans.__('Could not cancel: %1', (e as Error).message));
        }
      }
    });

    commands.addCommand(CommandIDs.attachKernel, {
      label: trans.__('Attach a running kernel of this session'),
      execute: async args => {
        const session = String(args['session']);
        const kernel = String(args['kernel']);
        try {
          // The server starts a Jupyter kernel whose provisioner takes the remote one over.
          const k = await requestAPI<{ id: string; name: string }>('kernels/attach', {
            method: 'POST',
            body: JSON.stringify({ session, kernel })
          });
          Notification.success(
            trans.__(
              'Kernel %1 is attached again, with its variables. Pick it in any notebook (Kernel › Change Kernel…) or:',
              kernel.slice(0, 8)
            ),
            {
              autoClose: 10000,
              actions: [
                {
                  label: trans.__('New notebook'),
                  callback: () => void commands.execute('notebook:create-new', { kernelId: k.id })
                }
              ]
            }
          );
          return k;
        } catch (e) {
          Notification.error(trans.__('Could not attach the kernel: %1', (e as Error).message));
          return undefined;
        }
      }
    });

    commands.addCommand(CommandIDs.removeSession, {
      label: trans.__('Remove the ended session from the list'),
      execute: async args => {
        await requestAPI(`api/v1/sessions/${String(args['session'])}`, { method: 'DELETE' });
      }
    });

    // Sidebar.
    const sidebar = new SessionsPanel(model, commands, trans);
    app.shell.add(sidebar, 'left', { rank: 850 });
    restorer?.add(sidebar, sidebar.id);

    // Prompts from the SSH layer; a prompt the agent withdraws (answered in another tab,
    // timed out, login over) closes here too.
    const openPrompts = new Map<string, AbortController>();
    model.promptClosed.connect((_, id) => openPrompts.get(id)?.abort());
    model.prompt.connect(async (_, prompt) => {
      if (openPrompts.has(prompt.id)) {
        return; // replayed after a reconnect of the event stream: shown already
      }
      const withdrawn = new AbortController();
      openPrompts.set(prompt.id, withdrawn);
      try {
        const answer = await askPrompt(prompt, trans, withdrawn.signal);
        if (answer) {
          await requestAPI(`api/v1/prompts/${prompt.id}`, { method: 'POST', body: JSON.stringify(answer) }).catch(
            () => undefined
          );
        }
      } finally {
        openPrompts.delete(prompt.id);
      }
    });

    // Clusters waiting for the user to sign in: the sidebar's button and a status-bar badge.
    registerSignIn(commands, model, trans);
    if (statusBar) {
      addSignInStatus(statusBar, model, commands, trans);
    }

    model.notice.connect((_, n) => {
      const show = n.level === 'error' ? Notification.error : Notification.warning;
      show(trans.__('Remote cluster: %1', n.message), { autoClose: false });
    });

    // Open a notebook once a session submitted here runs; keep kernel choices current.
    model.sessionsChanged.connect((_, s) => {
      void app.serviceManager.kernelspecs.refreshSpecs();
      if (s && s.state === 'running' && openWhenRunning.delete(s.id)) {
        void commands.execute(CommandIDs.openNotebook, { session: s.id });
      }
      if (s && s.state === 'ended') {
        openWhenRunning.delete(s.id);
      }
    });
    model.connect();

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
        // Discoverable even before any profile exists.
        tiles.add(launcher.add({ command: CommandIDs.addProfile, category: LAUNCHER_CATEGORY, rank: 0 }));
        tiles.add(launcher.add({ command: ADD_FROM_SSH_CONFIG, category: LAUNCHER_CATEGORY, rank: 1 }));
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
    palette?.addItem({ command: CommandIDs.showStatus, category: LAUNCHER_CATEGORY });
    palette?.addItem({ command: CommandIDs.addProfile, args: { isPalette: true }, category: LAUNCHER_CATEGORY });
    palette?.addItem({ command: ADD_FROM_SSH_CONFIG, args: { isPalette: true }, category: LAUNCHER_CATEGORY });
    try {
      const settings = await registry.load(PROFILES_PLUGIN_ID);
      applyProfiles(settings.composite);
      settings.changed.connect(() => applyProfiles(settings.composite));
    } catch (e) {
      console.error('remote-cluster: cannot load settings', e);
    }
  }
};

export default [plugin];
