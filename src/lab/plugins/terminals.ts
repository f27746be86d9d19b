/**
 * The terminals plugin: a shell in a running job as a main-area panel (JupyterLab's own
 * terminal widget on a RemoteTerminalConnection), reopened after a page reload on the same
 * shell. Closing the panel ends the shell; a reload or a link drop does not.
 */
import { ILayoutRestorer, type JupyterFrontEnd, type JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, InputDialog, MainAreaWidget, Notification, WidgetTracker } from '@jupyterlab/apputils';
import { Terminal } from '@jupyterlab/terminal';
import { ITranslator } from '@jupyterlab/translation';
import { terminalIcon } from '@jupyterlab/ui-components';

import type { ISession, ITerminalInfo } from '../../common/api';
import { CommandIDs } from '../commands';
import { requestAPI } from '../handler';
import { pickProfile } from '../profiles';
import { RemoteTerminalConnection } from '../terminal';
import { IRemoteClusterModel, LAUNCHER_CATEGORY } from '../tokens';

export function terminalWidgetId(session: string, terminal: string): string {
  return `remote-cluster-terminal-${session}-${terminal}`;
}

export const terminalsPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyterlab-remote-cluster:terminals',
  description: 'Terminals in a running job: a shell on the node that outlives a drop of the link.',
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
    const tracker = new WidgetTracker<MainAreaWidget<Terminal>>({ namespace: 'remote-cluster-terminal' });

    /** A terminal's panel (or the open one): `kind` names where its shell runs. */
    const openPanel = (t: {
      id: string;
      route: string;
      api: string;
      name: string;
      caption: string;
      args: Record<string, string>;
    }): void => {
      if (tracker.find(w => w.id === t.id)) {
        app.shell.activateById(t.id);
        return;
      }
      const connection = new RemoteTerminalConnection({
        route: t.route,
        name: t.name,
        serverSettings: app.serviceManager.serverSettings,
        shutdown: () => requestAPI(t.api, { method: 'DELETE' }).then(() => undefined)
      });
      const content = new Terminal(connection, { shutdownOnClose: true }, translator);
      const widget = new MainAreaWidget({ content });
      widget.id = t.id;
      widget.addClass('jp-RemoteCluster-terminal');
      widget.node.dataset.restore = JSON.stringify(t.args); // (what the restorer reopens)
      widget.title.icon = terminalIcon;
      widget.title.label = trans.__('Terminal %1', t.name);
      widget.title.caption = t.caption;
      void tracker.add(widget);
      app.shell.add(widget, 'main');
      app.shell.activateById(t.id);
    };

    const open = (session: string, terminal: string): void => {
      const s = model.session(session);
      const where = s?.jobId ? trans.__('job %1', s.jobId) : session;
      openPanel({
        id: terminalWidgetId(session, terminal),
        route: `terminals/${session}/${terminal}`,
        api: `api/v1/sessions/${session}/terminals/${terminal}`,
        name: `${where} · ${terminal}`,
        caption: trans.__('A shell on %1 in %2 (closing this tab ends it)', s?.node ?? '-', where),
        args: { command: CommandIDs.openTerminal, session, terminal }
      });
    };

    const openLogin = (profile: string, terminal: string): void =>
      openPanel({
        id: `remote-cluster-login-terminal-${profile}-${terminal}`,
        route: `login-terminals/${profile}/${terminal}`,
        api: `api/v1/profiles/${profile}/terminals/${terminal}`,
        name: trans.__('%1 login node · %2', profile, terminal),
        caption: trans.__(
          "A shell on %1's login node, on the cluster's SSH connection: it ends if the link drops (closing this tab ends it)",
          profile
        ),
        args: { command: CommandIDs.openLoginTerminal, profile, terminal }
      });

    const running = () => model.sessions.filter(s => s.state === 'running');
    /** From the palette: the one running session, or the one the user picks. */
    const pickSession = async (): Promise<string | undefined> => {
      const choices = running();
      if (choices.length <= 1) {
        return choices[0]?.id;
      }
      const label = (s: ISession) => `${s.profile} · ${s.jobId ? trans.__('job %1', s.jobId) : s.cluster}`;
      const r = await InputDialog.getItem({ title: trans.__('A terminal in which job?'), items: choices.map(label) });
      return r.button.accept ? choices.find(s => label(s) === r.value)?.id : undefined;
    };

    /** The panel of a terminal that runs (restored), or of a new one (POST `api`), or why none. */
    const showOrStart = async (
      terminal: unknown,
      api: string,
      show: (terminal: string) => void,
      failed: (message: string) => string
    ): Promise<void> => {
      if (typeof terminal === 'string') {
        show(terminal);
        return;
      }
      try {
        const t = await requestAPI<ITerminalInfo>(api, { method: 'POST', body: JSON.stringify({}) });
        show(t.terminalId);
      } catch (err) {
        Notification.error(failed((err as Error).message), { autoClose: false });
      }
    };

    app.commands.addCommand(CommandIDs.openTerminal, {
      label: trans.__('Open a Terminal in the Job'),
      caption: trans.__("A shell on the job's node, kept when the link drops"),
      icon: args => (args['isPalette'] ? undefined : terminalIcon),
      // args: session; terminal: one that runs already (restored after a reload)
      isEnabled: args => args['session'] !== undefined || running().length > 0,
      execute: async args => {
        const session = args['session'] === undefined ? await pickSession() : String(args['session']);
        if (!session) {
          return;
        }
        await showOrStart(
          args['terminal'],
          `api/v1/sessions/${session}/terminals`,
          terminal => open(session, terminal),
          message => trans.__('No terminal was opened: %1', message)
        );
      }
    });
    palette?.addItem({ command: CommandIDs.openTerminal, category: LAUNCHER_CATEGORY, args: { isPalette: true } });

    app.commands.addCommand(CommandIDs.openLoginTerminal, {
      label: args =>
        args['isPalette'] ? trans.__("Open a Terminal on a Cluster's Login Node…") : trans.__('Login node terminal'),
      caption: trans.__("A shell on a cluster's login node (squeue, module avail…), on its SSH connection"),
      icon: args => (args['isPalette'] ? undefined : terminalIcon),
      // args: profile (absent: asks); terminal: one that runs already (restored after a reload)
      execute: async args => {
        const profile =
          args['profile'] === undefined
            ? await pickProfile(trans.__("A terminal on which cluster's login node?"))
            : String(args['profile']);
        if (!profile) {
          return;
        }
        await showOrStart(
          args['terminal'],
          `api/v1/profiles/${profile}/terminals`,
          terminal => openLogin(profile, terminal),
          message => trans.__('No terminal was opened on %1: %2', profile, message)
        );
      }
    });
    palette?.addItem({ command: CommandIDs.openLoginTerminal, category: LAUNCHER_CATEGORY, args: { isPalette: true } });

    // (each panel carries the command and arguments that reopen it)
    const restoreArgs = (w: MainAreaWidget<Terminal>): Record<string, string> =>
      JSON.parse(w.node.dataset.restore ?? '{}');
    void restorer?.restore(tracker, {
      command: CommandIDs.reopenTerminal,
      args: w => restoreArgs(w),
      name: w => w.id
    });
    app.commands.addCommand(CommandIDs.reopenTerminal, {
      execute: args => {
        const { command, ...rest } = args as Record<string, string>;
        return command === CommandIDs.openTerminal || command === CommandIDs.openLoginTerminal
          ? app.commands.execute(command, rest)
          : undefined;
      }
    });
  }
};
