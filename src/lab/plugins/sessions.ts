/**
 * The sessions plugin: the "Remote sessions" sidebar and the commands of its rows (open
 * a notebook, cancel, attach a kernel, remove an ended session, show its log), the allocation's hours
 * (allocation.ts: walltime warnings, continue, extend, save and stop, relaunch), and idle
 * reclaim (idle.ts: activity, the countdown with Keep running, the ended notice).
 */
import { ILayoutRestorer, type JupyterFrontEnd, type JupyterFrontEndPlugin } from '@jupyterlab/application';
import {
  Dialog,
  InputDialog,
  Notification,
  showDialog,
  WidgetTracker,
  type MainAreaWidget
} from '@jupyterlab/apputils';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { ITranslator } from '@jupyterlab/translation';
import type { ReadonlyPartialJSONObject } from '@lumino/coreutils';

import type { IClusterProfile, ISession, ISessionLogs } from '../../common/api';
import { CommandIDs, LabCommandIDs } from '../commands';
import { requestAPI } from '../handler';
import { bindNotebook, openSessionNotebook, pickSessionKernel } from '../open-notebook';
import { followSuccessors, notifyWalltime, registerAllocationCommands } from '../allocation';
import { DEFAULT_CARRY_CAPS, type ICarryCaps } from '../carry-variables';
import { IdleReclaim } from '../idle';
import { addSessionCommand, numberArg } from '../session-commands';
import { createSessionLog, sessionLogId, type SessionLogPanel } from '../session-log';
import { SessionsPanel } from '../sidebar';
import { DEFAULT_WARNING_MINUTES, WalltimeWarnings } from '../walltime-warnings';
import { IRemoteClusterModel } from '../tokens';

export const sessionsPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyterlab-remote-cluster:sessions',
  description: 'The "Remote sessions" sidebar and the commands on a session (notebook, cancel, attach, remove).',
  autoStart: true,
  requires: [IRemoteClusterModel, ITranslator],
  // (the default file browser: a session's new notebook goes to the folder it shows)
  optional: [ILayoutRestorer, ISettingRegistry, IDefaultFileBrowser],
  activate: (
    app: JupyterFrontEnd,
    model: IRemoteClusterModel,
    translator: ITranslator,
    restorer: ILayoutRestorer | null,
    settingRegistry: ISettingRegistry | null,
    browser: IDefaultFileBrowser | null
  ): void => {
    const trans = translator.load('jupyterlab_remote_cluster');
    const { commands } = app;
    // Every command here names its session by id in args.session.
    const sessionId = (args: ReadonlyPartialJSONObject): string => String(args['session']);

    commands.addCommand(CommandIDs.openNotebook, {
      label: trans.__('Open a notebook on this session'),
      execute: async args => {
        const id = sessionId(args);
        // `choose`: the user picks among the session's kernels (a sidebar row's "Kernel…")
        const kernelspec =
          typeof args['kernelspec'] === 'string'
            ? args['kernelspec']
            : args['choose']
              ? await pickSessionKernel(
                  model.session(id),
                  async items => {
                    const r = await InputDialog.getItem({
                      title: trans.__('Open a notebook with which kernel?'),
                      items
                    });
                    return r.button.accept ? r.value : null;
                  },
                  trans
                )
              : model.session(id)?.defaultKernel;
        if (kernelspec === null) {
          return false;
        }
        const s = model.session(id);
        if (!s) {
          Notification.error(trans.__('There is no session %1 (any more).', id));
          return false;
        }
        return openSessionNotebook(
          s,
          {
            commands,
            kernelspecs: app.serviceManager.kernelspecs,
            syncKernelspecs: () => requestAPI('api/v1/profiles'),
            notifyError: message => Notification.error(message),
            trans,
            newNotebook: async () => {
              const where = browser?.model.path ?? '';
              const made = await commands.execute(LabCommandIDs.newUntitled, { path: where, type: 'notebook' });
              return (made as { path: string }).path;
            },
            bind: bindNotebook
          },
          kernelspec
        );
      }
    });

    addSessionCommand(commands, model, CommandIDs.addWorkers, {
      label: trans.__('Add Dask workers (one batch job each)'),
      failed: message => trans.__('Could not add workers: %1', message),
      run: async (s, args) => {
        const count = await numberArg(args, 'count', {
          title: trans.__('Add Dask workers to job %1', s.jobId ?? '-'),
          label: trans.__("Worker jobs to submit (each with this session's CPUs and memory, ending with the session):"),
          value: 1
        });
        if (count === undefined) {
          return;
        }
        const r = await requestAPI<{ jobIds: string[]; walltime: string }>(`api/v1/sessions/${s.id}/workers`, {
          method: 'POST',
          body: JSON.stringify({ count })
        });
        Notification.success(
          trans._n(
            'Submitted %1 worker job (%2); it joins the Dask dashboard when it runs.',
            'Submitted %1 worker jobs (%2); they join the Dask dashboard when they run.',
            r.jobIds.length,
            r.jobIds.join(', ')
          ),
          { autoClose: 5000 }
        );
      }
    });

    addSessionCommand(commands, model, CommandIDs.cancelSession, {
      label: trans.__('Cancel the session (ends its job)'),
      failed: message => trans.__('Could not cancel: %1', message),
      run: async s => {
        const ok = await showDialog({
          title: trans.__('Cancel session?'),
          body: trans.__('This ends job %1 on %2; its kernels stop.', s.jobId ?? '-', s.cluster),
          buttons: [
            Dialog.cancelButton({ label: trans.__('Keep') }),
            Dialog.warnButton({ label: trans.__('Cancel job') })
          ]
        });
        if (ok.button.accept) {
          model.handle({
            type: 'session',
            session: await requestAPI<ISession>(`api/v1/sessions/${s.id}`, { method: 'DELETE' })
          });
        }
      }
    });

    commands.addCommand(CommandIDs.attachKernel, {
      label: trans.__('Attach a running kernel of this session'),
      execute: async args => {
        const session = sessionId(args);
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
                  callback: () => void commands.execute(LabCommandIDs.createNotebook, { kernelId: k.id })
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

    const logs = new WidgetTracker<MainAreaWidget<SessionLogPanel>>({ namespace: 'remote-cluster-log' });
    addSessionCommand(commands, model, CommandIDs.showLog, {
      label: trans.__("Show the session's log (job, kernels, Dask)"),
      failed: message => trans.__('Could not show the log: %1', message),
      run: async s => {
        const open = logs.find(w => w.id === sessionLogId(s.id));
        if (open) {
          app.shell.activateById(open.id);
          void open.content.refresh();
          return;
        }
        const widget = createSessionLog(s, () => requestAPI<ISessionLogs>(`api/v1/sessions/${s.id}/logs`), trans);
        void logs.add(widget);
        app.shell.add(widget, 'main', { mode: 'split-bottom' });
      }
    });

    commands.addCommand(CommandIDs.removeSession, {
      label: trans.__('Remove the ended session from the list'),
      execute: async args => {
        await requestAPI(`api/v1/sessions/${sessionId(args)}`, { method: 'DELETE' });
      }
    });

    // The allocation's hours: warnings at the configured minutes, checked every 5 s and
    // at every change; a continued session's notebooks follow its successor.
    let warningMinutes = DEFAULT_WARNING_MINUTES;
    let carryCaps = DEFAULT_CARRY_CAPS;
    void settingRegistry
      ?.load(sessionsPlugin.id)
      .then(settings => {
        const read = () => {
          warningMinutes = settings.get('walltimeWarnings').composite as number[];
          carryCaps = { ...DEFAULT_CARRY_CAPS, ...(settings.get('carryVariables').composite as Partial<ICarryCaps>) };
        };
        read();
        settings.changed.connect(read);
      })
      // no settings (a registry without our schema): the default warnings
      .catch(() => undefined);
    const warnings = new WalltimeWarnings(
      w => notifyWalltime(w, commands, trans),
      () => warningMinutes
    );
    const allocation = {
      commands,
      model,
      trans,
      widgets: () => app.shell.widgets('main'),
      kernelspecs: app.serviceManager.kernelspecs,
      syncKernelspecs: () => requestAPI('api/v1/profiles'),
      carryCaps: () => carryCaps,
      profile: async (name: string) =>
        (await requestAPI<{ profiles: IClusterProfile[] }>('api/v1/profiles')).profiles.find(p => p.name === name)
    };
    registerAllocationCommands(allocation);
    const follow = followSuccessors(allocation);
    // Idle reclaim: the same clock and changes; a new notebook or console is watched as
    // soon as it becomes current (the clock finds the others).
    const idle = new IdleReclaim(allocation);
    app.shell.currentChanged?.connect(() => idle.watch());
    const check = () => {
      warnings.check(model.sessions);
      follow();
      idle.check();
    };
    model.sessionsChanged.connect(check);
    window.setInterval(check, 5000);

    const sidebar = new SessionsPanel(model, commands, trans, s => warnings.endsSoon(s));
    app.shell.add(sidebar, 'left', { rank: 850 });
    commands.addCommand(CommandIDs.showSessions, {
      label: trans.__('Show remote sessions'),
      execute: () => app.shell.activateById(sidebar.id)
    });
    restorer?.add(sidebar, sidebar.id);
  }
};
