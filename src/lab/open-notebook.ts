/**
 * "Open a notebook on this session": a notebook on the session's own kernelspec, or none.
 *
 * The agent writes a running session's kernelspec when the session reaches Running, and
 * JupyterLab knows kernelspecs from its last refresh: opened too early, the notebook
 * would show Lab's kernel picker preselecting some other spec, perhaps a profile's
 * "(new job)" one that submits a second job. So the spec must be known first; if it is
 * not (the session ended meanwhile), nothing is opened and the user is told.
 *
 * A session whose job environment has other kernels (R, bash...) has a kernelspec for
 * each; the user picks one (pickSessionKernel).
 */
import type { CommandRegistry } from '@lumino/commands';
import type { KernelSpec } from '@jupyterlab/services';
import type { TranslationBundle } from '@jupyterlab/translation';

import type { ISession } from '../common/api';
import { sessionKernelName } from '../common/routes';
import { LabCommandIDs } from './commands';

export interface IOpenNotebookDeps {
  commands: Pick<CommandRegistry, 'execute'>;
  kernelspecs: Pick<KernelSpec.IManager, 'refreshSpecs' | 'specs'>;
  /** Has the agent write its kernelspecs now (GET api/v1/profiles answers once they match). */
  syncKernelspecs: () => Promise<unknown>;
  notifyError: (message: string) => void;
  trans: TranslationBundle;
}

/**
 * Which of the session's kernels a notebook should use: its default Python (undefined),
 * another kernel of its job's environment (its name there), or none (null: cancelled).
 * Asks only when there is a choice.
 */
export async function pickSessionKernel(
  s: Pick<ISession, 'kernelspecs'> | undefined,
  ask: (items: string[]) => Promise<string | null>,
  trans: TranslationBundle
): Promise<string | undefined | null> {
  const others = s?.kernelspecs ?? [];
  if (others.length === 0) {
    return undefined;
  }
  const python = trans.__("Python 3 (the session's Python)");
  const label = (k: (typeof others)[number]) => (k.displayName === k.name ? k.name : `${k.displayName} (${k.name})`);
  const answer = await ask([python, ...others.map(label)]);
  if (answer === null) {
    return null;
  }
  return answer === python ? undefined : (others.find(k => label(k) === answer)?.name ?? null);
}

/**
 * Opens a notebook on `sessionId`'s kernel (`kernelspec`: another kernel of the job's
 * environment); true if one was opened.
 */
export async function openSessionNotebook(
  sessionId: string,
  deps: IOpenNotebookDeps,
  kernelspec?: string
): Promise<boolean> {
  const name = sessionKernelName(sessionId, kernelspec);
  await deps.syncKernelspecs();
  await deps.kernelspecs.refreshSpecs();
  if (!deps.kernelspecs.specs?.kernelspecs[name]) {
    // refreshSpecs() joins a refresh already in flight (Lumino's Poll cancels a second
    // one), which may have left before the agent wrote the spec (every session event
    // starts one): once that one is done, this call makes a request of its own.
    await deps.kernelspecs.refreshSpecs();
  }
  if (!deps.kernelspecs.specs?.kernelspecs[name]) {
    deps.notifyError(
      deps.trans.__('The kernel of this session is not available (has the session ended?). No notebook was opened.')
    );
    return false;
  }
  await deps.commands.execute(LabCommandIDs.createNotebook, { kernelName: name });
  return true;
}
