/**
 * The allocation's hours in Lab (docs/allocation.md): the commands that save work from the
 * walltime (Continue in a new job, Extend, Save and stop) and Relaunch, the warnings'
 * notifications with those actions, and moving a continued session's notebooks and
 * consoles to its successor's kernel once it runs.
 */
import { Dialog, Notification, showDialog, type ISessionContext } from '@jupyterlab/apputils';
import type { KernelSpec } from '@jupyterlab/services';
import type { TranslationBundle } from '@jupyterlab/translation';
import type { CommandRegistry } from '@lumino/commands';

import type { IClusterProfile, IExtendAnswer, IResources, ISession } from '../common/api';
import { sessionKernelName } from '../common/routes';
import {
  carriedDetails,
  countCarried,
  dumpVariables,
  loadVariables,
  type ICarried,
  type ICarryCaps
} from './carry-variables';
import { CommandIDs } from './commands';
import { formatDuration } from './format';
import { bindNotebook } from './open-notebook';
import { requestAPI } from './handler';
import { addSessionCommand, numberArg } from './session-commands';
import { defaultSubmitDeps, submitWithDialog } from './submit-dialog';
import type { IRemoteClusterModel } from './tokens';
import type { IWalltimeWarning } from './walltime-warnings';

/** A notebook or console: what has a kernel (and, for a document, what can be saved). */
export interface IKernelWidget {
  sessionContext?: ISessionContext;
  context?: { save(): Promise<void> };
  title: { label: string };
}

/**
 * The open widgets whose kernel is one of session `s`'s: on the session's kernelspec, or a
 * stable one's kernel running in it (the provisioner gives it Jupyter's kernel id there).
 */
export function widgetsOfSession(widgets: Iterable<unknown>, s: Pick<ISession, 'id' | 'kernels'>): IKernelWidget[] {
  const name = sessionKernelName(s.id);
  return [...widgets].filter((w): w is IKernelWidget => {
    const kernel = (w as IKernelWidget).sessionContext?.session?.kernel;
    return !!kernel && (kernel.name === name || (s.kernels ?? []).includes(kernel.id));
  });
}

export interface IAllocationDeps {
  commands: CommandRegistry;
  model: IRemoteClusterModel;
  trans: TranslationBundle;
  /** Lab's main-area widgets, now. */
  widgets: () => Iterable<unknown>;
  kernelspecs: Pick<KernelSpec.IManager, 'refreshSpecs' | 'specs'>;
  /** Has the agent write its kernelspecs now (GET api/v1/profiles answers once they match). */
  syncKernelspecs: () => Promise<unknown>;
  /** The caps for carrying variables to a successor, now (the sessions settings). */
  carryCaps?: () => ICarryCaps;
  /** Profile `name` as the settings have it now (undefined: not there). */
  profile?: (name: string) => Promise<IClusterProfile | undefined>;
  /** The submit dialog (submitWithDialog; tests give their own). */
  submit?: typeof submitWithDialog;
}

/** How long a successor's kernelspec may take to show in JupyterLab's list. */
const SPEC_WAIT_MS = 30_000;

/**
 * Until JupyterLab lists kernelspec `name` (false after `timeoutMs`). One refresh is not
 * enough: a refresh that lands while JupyterLab's own periodic spec poll is in flight
 * resolves with that poll's answer, from before the agent wrote the spec.
 */
async function specListed(
  kernelspecs: IAllocationDeps['kernelspecs'],
  name: string,
  timeoutMs: number
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    await kernelspecs.refreshSpecs();
    if (kernelspecs.specs?.kernelspecs[name]) {
      return true;
    }
    if (Date.now() >= deadline) {
      return false;
    }
    await new Promise(r => setTimeout(r, 500));
  }
}

/**
 * Move the notebooks and consoles of session `from` to `to`'s kernel (its kernelspec is
 * known first). Returns the labels moved and those that could not be, with why.
 */
export async function moveToSuccessor(
  from: string,
  to: string,
  deps: Pick<IAllocationDeps, 'widgets' | 'kernelspecs' | 'syncKernelspecs'> & {
    session: (id: string) => ISession | undefined;
    /** A notebook's stable kernel starts in session `id` from now on (bindNotebook). */
    bind: (id: string, path: string) => Promise<unknown>;
    specWaitMs?: number;
    /** Carry the variables within these caps (none: do not). */
    carryCaps?: ICarryCaps;
  }
): Promise<{ moved: string[]; failed: string[]; carried: Record<string, ICarried> }> {
  const widgets = widgetsOfSession(deps.widgets(), deps.session(from) ?? { id: from });
  const carried: Record<string, ICarried> = {};
  if (widgets.length === 0) {
    return { moved: [], failed: [], carried };
  }
  const name = sessionKernelName(to);
  await deps.syncKernelspecs();
  const listed = await specListed(deps.kernelspecs, name, deps.specWaitMs ?? SPEC_WAIT_MS);
  const moved: string[] = [];
  const failed: string[] = [];
  for (const w of widgets) {
    try {
      if (!listed) {
        throw new Error(`JupyterLab does not list the kernel ${name} yet`);
      }
      const old = w.sessionContext!.session!.kernel!;
      // asked before the old kernel is shut down (changing the kernel does it)
      const dumped = deps.carryCaps && (await dumpVariables(old, deps.carryCaps));
      if (old.name !== sessionKernelName(from)) {
        // A stable kernel (the notebook keeps its kernel name): bound to the successor, it starts there.
        await deps.bind(to, w.sessionContext!.path);
        await w.sessionContext!.changeKernel({ name: old.name });
      } else {
        await w.sessionContext!.changeKernel({ name });
      }
      moved.push(w.title.label);
      const kernel = w.sessionContext!.session?.kernel;
      if (dumped && kernel) {
        carried[w.title.label] = await loadVariables(kernel, dumped);
      }
    } catch (err) {
      console.warn(`Could not move ${w.title.label} to ${name}:`, err);
      failed.push(`${w.title.label} (${(err as Error).message})`);
    }
  }
  return { moved, failed, carried };
}

export function registerAllocationCommands(deps: IAllocationDeps): void {
  const { commands, model, trans } = deps;
  // a new session of the same profile (and resources), linked to this one if it continues it
  const relaunch = async (s: ISession, continues: boolean, resources?: IResources): Promise<ISession> => {
    const next = await requestAPI<ISession>(`api/v1/sessions/${s.id}/relaunch`, {
      method: 'POST',
      body: JSON.stringify({ ...(continues && { continue: true }), ...(resources && { resources }) })
    });
    model.handle({ type: 'session', session: next });
    return next;
  };
  const sayContinued = (next: ISession, s: ISession) => {
    const carrying = (deps.carryCaps?.().maxMegabytes ?? 0) > 0;
    Notification.info(
      carrying
        ? trans.__(
            'Job %1 submitted to continue job %2: your notebooks move to it when it runs, with their variables that pickle.',
            next.jobId ?? '-',
            s.jobId ?? '-'
          )
        : trans.__(
            'Job %1 submitted to continue job %2: your notebooks move to it when it runs (their variables do not).',
            next.jobId ?? '-',
            s.jobId ?? '-'
          ),
      { autoClose: 10000 }
    );
  };

  addSessionCommand(commands, model, CommandIDs.continueSession, {
    label: trans.__('Continue in a new job (same profile and resources)'),
    failed: message => trans.__('Could not continue in a new job: %1', message),
    run: async s => sayContinued(await relaunch(s, true), s)
  });

  // The same, with resources edited in the submit dialog (it starts with the old ones).
  addSessionCommand(commands, model, CommandIDs.continueSessionWith, {
    label: trans.__('Continue in a new job with other resources…'),
    failed: message => trans.__('Could not continue in a new job: %1', message),
    run: async s => {
      const profile = await deps.profile?.(s.profile);
      if (!profile) {
        throw new Error(
          trans.__(
            'the profile "%1" is not in the settings any more (Continue in a new job reuses it as it was)',
            s.profile
          )
        );
      }
      const next = await (deps.submit ?? submitWithDialog)(
        profile,
        trans,
        { ...defaultSubmitDeps, post: (_, resources) => relaunch(s, true, resources) },
        { values: s.resources, title: trans.__('Continue job %1 in a new job', s.jobId ?? '-') }
      );
      if (next) {
        sayContinued(next, s);
      }
    }
  });

  addSessionCommand(commands, model, CommandIDs.relaunchSession, {
    label: trans.__('Relaunch (same profile and resources)'),
    failed: message => trans.__('Could not relaunch: %1', message),
    run: async s => void (await relaunch(s, false))
  });

  addSessionCommand(commands, model, CommandIDs.extendSession, {
    label: trans.__('Ask the batch system for more walltime'),
    failed: message => trans.__('Could not ask for more walltime: %1', message),
    run: async (s, args) => {
      const minutes = await numberArg(args, 'minutes', {
        title: trans.__('Extend job %1', s.jobId ?? '-'),
        label: trans.__('Minutes to add (asked once; most sites let only their operators do it):'),
        value: 30
      });
      if (minutes === undefined) {
        return;
      }
      const r = await requestAPI<IExtendAnswer>(`api/v1/sessions/${s.id}/extend`, {
        method: 'POST',
        body: JSON.stringify({ minutes })
      });
      if (r.granted) {
        Notification.success(trans.__('Job %1 may run %2 more minutes: %3', s.jobId ?? '-', minutes, r.answer), {
          autoClose: 10000
        });
      } else {
        Notification.warning(trans.__('The batch system refused to extend job %1: %2', s.jobId ?? '-', r.answer), {
          autoClose: false
        });
      }
    }
  });

  addSessionCommand(commands, model, CommandIDs.saveAndStop, {
    label: trans.__("Save the session's notebooks and end its job"),
    failed: message => trans.__('Could not end the session: %1', message),
    run: async s => {
      const widgets = widgetsOfSession(deps.widgets(), s);
      const ok = await showDialog({
        title: trans.__('Save and stop?'),
        body: trans._n(
          'Save %1 notebook or console of job %2, then end the job; its kernels stop.',
          'Save %1 notebooks and consoles of job %2, then end the job; its kernels stop.',
          widgets.length,
          s.jobId ?? '-'
        ),
        buttons: [
          Dialog.cancelButton({ label: trans.__('Keep') }),
          Dialog.warnButton({ label: trans.__('Save and stop') })
        ]
      });
      if (!ok.button.accept) {
        return;
      }
      const unsaved: string[] = [];
      for (const w of widgets) {
        await w.context?.save().catch(() => unsaved.push(w.title.label));
      }
      if (unsaved.length > 0) {
        // never end the job over work that is not on disk
        Notification.error(trans.__('Could not save %1: job %2 keeps running.', unsaved.join(', '), s.jobId ?? '-'), {
          autoClose: false
        });
        return;
      }
      model.handle({
        type: 'session',
        session: await requestAPI<ISession>(`api/v1/sessions/${s.id}`, { method: 'DELETE' })
      });
    }
  });
}

/** The warning's notification, with the actions that save the work. */
export function notifyWalltime(w: IWalltimeWarning, commands: CommandRegistry, trans: TranslationBundle): void {
  const s = w.session;
  const left = formatDuration(Math.max(0, w.left));
  const message = w.bySchedulerSignal
    ? trans.__('%1 says job %2 (%3) ends soon: %4 left.', s.cluster, s.jobId ?? '-', s.profile, left)
    : trans.__('Job %1 on %2 (%3) reaches its walltime in %4.', s.jobId ?? '-', s.cluster, s.profile, left);
  const action = (label: string, command: string) => ({
    label,
    callback: () => void commands.execute(command, { session: s.id })
  });
  Notification.warning(message, {
    autoClose: false,
    actions: [
      action(trans.__('Continue'), CommandIDs.continueSession),
      action(trans.__('Extend'), CommandIDs.extendSession),
      action(trans.__('Save and stop'), CommandIDs.saveAndStop)
    ]
  });
}

/** The notification's text for a move that carried variables (it shows 140 characters: the lists are in Details). */
export function movedMessage(
  jobId: string,
  moved: string[],
  carried: Record<string, ICarried>,
  trans: TranslationBundle
): string {
  const n = countCarried(carried);
  const labels = moved.join(', ');
  return n.failed === Object.keys(carried).length
    ? trans.__('Moved to job %1: %2. The variables did not move (see Details).', jobId, labels)
    : n.notCarried === 0 && n.failed === 0
      ? trans.__('Moved to job %1: %2, with its %3 variables.', jobId, labels, n.carried)
      : trans.__(
          'Moved to job %1: %2. Carried %3 variables; some did not move (see Details).',
          jobId,
          labels,
          n.carried
        );
}

/** Says what moved to job `jobId`; what was carried (undefined: carrying is off) in Details. */
function notifyMoved(
  jobId: string,
  moved: string[],
  carried: Record<string, ICarried> | undefined,
  trans: TranslationBundle
): void {
  if (!carried || Object.keys(carried).length === 0) {
    Notification.success(
      trans.__(
        'Moved to job %1: %2. Variables and running cells did not move: re-run what you need.',
        jobId,
        moved.join(', ')
      ),
      { autoClose: false }
    );
    return;
  }
  const message = movedMessage(jobId, moved, carried, trans);
  Notification.success(message, {
    autoClose: false,
    actions: [
      {
        label: trans.__('Details'),
        callback: () =>
          void showDialog({
            title: trans.__('What moved to job %1', jobId),
            body: carriedDetails(carried, trans),
            buttons: [Dialog.okButton({ label: trans.__('Close') })]
          })
      }
    ]
  });
}

/**
 * Moves the notebooks of continued sessions to their successor once it runs (each
 * successor once per page), and says what moved and what did not.
 */
export function followSuccessors(deps: IAllocationDeps): () => void {
  const done = new Set<string>();
  return () => {
    for (const next of deps.model.sessions) {
      if (!next.continues || next.state !== 'running' || done.has(next.id)) {
        continue;
      }
      done.add(next.id);
      const caps = deps.carryCaps?.();
      const moving = {
        ...deps,
        session: (id: string) => deps.model.session(id),
        bind: bindNotebook,
        carryCaps: caps && caps.maxMegabytes > 0 ? caps : undefined
      };
      void moveToSuccessor(next.continues, next.id, moving).then(({ moved, failed, carried }) => {
        if (moved.length > 0) {
          notifyMoved(next.jobId ?? '-', moved, moving.carryCaps ? carried : undefined, deps.trans);
        }
        if (failed.length > 0) {
          Notification.error(
            deps.trans.__(
              'Could not move to job %1: %2 (Kernel › Change Kernel… does it by hand).',
              next.jobId ?? '-',
              failed.join(', ')
            ),
            { autoClose: false }
          );
        }
      });
    }
  };
}
