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

    const open = (session: string, terminal: string): void => {
      const id = terminalWidgetId(session, terminal);
      const existing = tracker.find(w => w.id === id);
      if (existing) {
        app.shell.activateById(id);
        return;
      }
      const s = model.session(session);
      const where = s?.jobId ? trans.__('job %1', s.jobId) : session;
      const path = `api/v1/sessions/${session}/terminals/${terminal}`;
      const connection = new RemoteTerminalConnection({
        session,
        terminal,
        name: `${where} · ${terminal}`,
        serverSettings: app.serviceManager.serverSettings,
        shutdown: () => requestAPI(path, { method: 'DELETE' }).then(() => undefined)
      });
      const content = new Terminal(connection, { shutdownOnClose: true }, translator);
      const widget = new MainAreaWidget({ content });
      widget.id = id;
      widget.addClass('jp-RemoteCluster-terminal');
      widget.node.dataset.session = session;
      widget.node.dataset.terminal = terminal;
      widget.title.icon = terminalIcon;
      widget.title.label = trans.__('Terminal %1', connection.name);
      widget.title.caption = trans.__('A shell on %1 in %2 (closing this tab ends it)', s?.node ?? '-', where);
      void tracker.add(widget);
      app.shell.add(widget, 'main');
      app.shell.activateById(id);
    };

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
        if (typeof args['terminal'] === 'string') {
          open(session, args['terminal']);
          return;
        }
        try {
          const t = await requestAPI<ITerminalInfo>(`api/v1/sessions/${session}/terminals`, {
            method: 'POST',
            body: JSON.stringify({})
          });
          open(session, t.terminalId);
        } catch (err) {
          Notification.error(trans.__('No terminal was opened: %1', (err as Error).message), { autoClose: false });
        }
      }
    });
    palette?.addItem({ command: CommandIDs.openTerminal, category: LAUNCHER_CATEGORY, args: { isPalette: true } });

    void restorer?.restore(tracker, {
      command: CommandIDs.openTerminal,
      args: w => ({ session: w.node.dataset.session ?? '', terminal: w.node.dataset.terminal ?? '' }),
      name: w => w.id
    });
  }
};
