/**
 * Keeps remote kernelspecs' cards out of the Launcher (launcher-cards.ts). It needs the
 * Launcher only, so it is active before the notebook and console plugins, which add their
 * cards once the kernelspecs are loaded.
 */
import type { JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ILauncher } from '@jupyterlab/launcher';

import { hideRemoteKernelCards } from '../launcher-cards';

export const launcherCardsPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyterlab-remote-cluster:launcher-cards',
  description: "Keeps remote kernelspecs' cards out of the Launcher's Notebook and Console sections.",
  autoStart: true,
  requires: [ILauncher],
  activate: (_app, launcher: ILauncher): void => hideRemoteKernelCards(launcher)
};
