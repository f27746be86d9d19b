/**
 * Remote kernelspecs stay out of the Launcher's Notebook and Console sections. JupyterLab
 * adds a card there for every kernelspec, and each profile and each running session has
 * one: with ten profiles, twenty generic cards before the "Remote cluster" tiles, which
 * are the way in (resources, walltime, the session's sidebar row). The kernelspecs stay
 * for the kernel picker (Change Kernel…), nbclient and papermill.
 */
import type { ILauncher } from '@jupyterlab/launcher';
import { DisposableDelegate } from '@lumino/disposable';

import { KERNELSPEC_MARKER } from '../common/routes';

/** A kernelspec's card (Notebook, Console) for one of our kernelspecs: its metadata carries the marker. */
export function isRemoteKernelCard(options: ILauncher.IItemOptions): boolean {
  const kernel = options.metadata?.['kernel'];
  return !!kernel && typeof kernel === 'object' && !Array.isArray(kernel) && KERNELSPEC_MARKER in kernel;
}

/**
 * Every card added to `launcher` from now on, except remote kernelspecs' cards. (The
 * Launcher has no filter of its own; its cards are added by the plugins that own them.)
 */
export function hideRemoteKernelCards(launcher: ILauncher): void {
  const add = launcher.add.bind(launcher);
  launcher.add = options => (isRemoteKernelCard(options) ? new DisposableDelegate(() => undefined) : add(options));
}
