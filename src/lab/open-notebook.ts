/**
 * "Open a notebook on this session": a notebook on the session's kernel, or none.
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
import { stableKernelName } from '../common/routes';
import { LabCommandIDs } from './commands';
import { requestAPI } from './handler';

export interface IOpenNotebookDeps {
  commands: Pick<CommandRegistry, 'execute'>;
  kernelspecs: Pick<KernelSpec.IManager, 'refreshSpecs' | 'specs'>;
  /** Has the agent write its kernelspecs now (GET api/v1/profiles answers once they match). */
  syncKernelspecs: () => Promise<unknown>;
  notifyError: (message: string) => void;
  trans: TranslationBundle;
  /** A new untitled notebook where the user is (the file browser's folder): its path. */
  newNotebook: () => Promise<string>;
  bind: (id: string, path: string) => Promise<unknown>;
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

/** The notebook at `path` runs its stable kernel in session `id` (the agent remembers it). */
export function bindNotebook(id: string, path: string): Promise<unknown> {
  return requestAPI(`api/v1/sessions/${id}/notebooks`, { method: 'POST', body: JSON.stringify({ path }) });
}

/**
 * Opens a new notebook on session `s` (`kernelspec`: another kernel of the job's
 * environment); true if one was opened. The notebook gets the stable kernelspec of the
 * session's profile and that kernel (saved with it, it reopens next week on the same kind
 * of kernel), and is bound to this session first, so its kernel starts here.
 */
export async function openSessionNotebook(
  s: Pick<ISession, 'id' | 'profile'>,
  deps: IOpenNotebookDeps,
  kernelspec?: string
): Promise<boolean> {
  const name = stableKernelName(s.profile, kernelspec);
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
  const path = await deps.newNotebook();
  await deps.bind(s.id, path);
  await deps.commands.execute(LabCommandIDs.openDocument, { path, factory: 'Notebook', kernel: { name } });
  return true;
}
