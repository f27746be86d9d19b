/**
 * "Open a notebook on this session": a notebook on the session's own kernelspec, or none.
 *
 * The agent writes a running session's kernelspec when the session reaches Running, and
 * JupyterLab knows kernelspecs from its last refresh: opened too early, the notebook
 * would show Lab's kernel picker preselecting some other spec, perhaps a profile's
 * "(new job)" one that submits a second job. So the spec must be known first; if it is
 * not (the session ended meanwhile), nothing is opened and the user is told.
 */
import type { CommandRegistry } from '@lumino/commands';
import type { KernelSpec } from '@jupyterlab/services';
import type { TranslationBundle } from '@jupyterlab/translation';

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

/** Opens a notebook on `sessionId`'s kernel; true if one was opened. */
export async function openSessionNotebook(sessionId: string, deps: IOpenNotebookDeps): Promise<boolean> {
  const name = sessionKernelName(sessionId);
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
