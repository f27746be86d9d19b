/**
 * The earlier-output plugin: output that remote kernels send for cells of an earlier
 * page (a reload; a server restart and Attach) goes to a log panel per kernel, announced
 * once by a notification (earlier-output.ts says why JupyterLab would drop it).
 */
import type { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { MainAreaWidget, Notification, WidgetTracker } from '@jupyterlab/apputils';
import { INotebookTracker } from '@jupyterlab/notebook';
import { OutputArea } from '@jupyterlab/outputarea';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import type { Kernel, KernelMessage } from '@jupyterlab/services';
import { ITranslator } from '@jupyterlab/translation';

import { KERNEL_NAME_PREFIX } from '../../common/routes';
import { CommandIDs } from '../commands';
import { EarlierOutputLog, isEarlierOutput } from '../earlier-output';

export const earlierOutputPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyterlab-remote-cluster:earlier-output',
  description: 'Shows the output of cells run before this page was loaded in a log panel per remote kernel.',
  autoStart: true,
  requires: [INotebookTracker, IRenderMimeRegistry, ITranslator],
  activate: (
    app: JupyterFrontEnd,
    notebooks: INotebookTracker,
    rendermime: IRenderMimeRegistry,
    translator: ITranslator
  ): void => {
    const trans = translator.load('jupyterlab_remote_cluster');
    const pageStart = Date.now();
    const logs = new Map<string, { log: EarlierOutputLog; label: string }>();
    const watched = new WeakSet<Kernel.IKernelConnection>();
    const panels = new WidgetTracker<MainAreaWidget<OutputArea>>({ namespace: 'remote-cluster-earlier-output' });

    const heard = (kernel: Kernel.IKernelConnection, label: string, msg: KernelMessage.IIOPubMessage): void => {
      if (!isEarlierOutput(msg, kernel.clientId, pageStart)) {
        return;
      }
      let entry = logs.get(kernel.id);
      const first = !entry;
      if (!entry) {
        entry = { log: new EarlierOutputLog(), label };
        logs.set(kernel.id, entry);
      }
      if (entry.log.add(msg) && first) {
        Notification.info(trans.__('%1 is printing output of a cell run before this page was loaded.', label), {
          autoClose: false,
          actions: [
            {
              label: trans.__('Show output'),
              callback: () => void app.commands.execute(CommandIDs.showEarlierOutput, { kernel: kernel.id })
            }
          ]
        });
      }
    };

    const watch = (kernel: Kernel.IKernelConnection | null | undefined, label: string): void => {
      if (!kernel || watched.has(kernel) || !kernel.name.startsWith(KERNEL_NAME_PREFIX)) {
        return;
      }
      watched.add(kernel);
      kernel.iopubMessage.connect((k, msg) => heard(k, label, msg));
    };

    notebooks.widgetAdded.connect((_, panel) => {
      const ctx = panel.sessionContext;
      const label = (): string => panel.title.label || panel.context.path;
      ctx.kernelChanged.connect((_ctx, change) => watch(change.newValue, label()));
      void ctx.ready.then(() => watch(ctx.session?.kernel, label()));
    });

    app.commands.addCommand(CommandIDs.showEarlierOutput, {
      label: trans.__('Show the output of earlier cells'),
      execute: args => {
        const kernelId = String(args['kernel']);
        const entry = logs.get(kernelId);
        if (!entry) {
          return;
        }
        const id = `remote-cluster-earlier-output-${kernelId}`;
        const open = panels.find(w => w.id === id);
        if (open) {
          app.shell.activateById(id);
          return;
        }
        const content = new OutputArea({ model: entry.log.model, rendermime });
        const widget = new MainAreaWidget({ content });
        widget.id = id;
        widget.addClass('jp-RemoteCluster-earlierOutput');
        widget.title.label = trans.__('Earlier output · %1', entry.label);
        widget.title.caption = trans.__(
          'Output of cells run before this page was loaded, for kernel %1 (read-only).',
          kernelId.slice(0, 8)
        );
        widget.title.closable = true;
        void panels.add(widget);
        app.shell.add(widget, 'main', { mode: 'split-bottom' });
      }
    });
  }
};
