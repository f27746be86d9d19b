/** Remote kernelspecs' cards kept out of a real LauncherModel; every other card goes in. */
import { LauncherModel, type ILauncher } from '@jupyterlab/launcher';

import { hideRemoteKernelCards, isRemoteKernelCard } from '../launcher-cards';

// the shapes JupyterLab's notebook and console plugins add, one per kernelspec
const notebookCard = (name: string, kernel: Record<string, unknown>): ILauncher.IItemOptions => ({
  command: 'notebook:create-new',
  args: { isLauncher: true, kernelName: name },
  category: 'Notebook',
  metadata: { kernel: kernel as any }
});
const consoleCard = (name: string, kernel: Record<string, unknown>): ILauncher.IItemOptions => ({
  command: 'console:create',
  args: { isLauncher: true, kernelPreference: { name } },
  category: 'Console',
  metadata: { kernel: kernel as any }
});
const remote = { jupyterlab_remote_cluster: { profile: 'hpc' }, kernel_provisioner: { provisioner_name: 'x' } };

describe('remote kernelspec cards', () => {
  it('are recognised by the marker in their kernelspec metadata, nothing else', () => {
    expect(isRemoteKernelCard(notebookCard('remote-cluster-hpc', remote))).toBe(true);
    expect(isRemoteKernelCard(consoleCard('remote-cluster-hpc', remote))).toBe(true);
    // a local kernel, even one named like ours, and cards without a kernel
    expect(isRemoteKernelCard(notebookCard('remote-cluster-lookalike', { debugger: true }))).toBe(false);
    expect(isRemoteKernelCard({ command: 'remote-cluster:submit', category: 'Remote cluster' })).toBe(false);
    expect(isRemoteKernelCard({ command: 'x', metadata: { kernel: ['jupyterlab_remote_cluster'] as any } })).toBe(
      false
    );
  });

  it('stay out of the Launcher; local kernels and the Remote cluster tiles go in', () => {
    const launcher = new LauncherModel();
    hideRemoteKernelCards(launcher);
    const hidden = launcher.add(notebookCard('remote-cluster-hpc', remote));
    launcher.add(consoleCard('remote-cluster-session-ab12cd', remote));
    const local = launcher.add(notebookCard('python3', { debugger: true }));
    launcher.add({ command: 'remote-cluster:submit', args: { profile: 'hpc' }, category: 'Remote cluster' });
    const shown = () => [...launcher.items()].map(i => `${i.category}:${i.command}`);
    expect(shown()).toEqual(['Notebook:notebook:create-new', 'Remote cluster:remote-cluster:submit']);
    // the notebook plugin disposes its cards when the kernelspecs change: both kinds work
    hidden.dispose();
    local.dispose();
    expect(shown()).toEqual(['Remote cluster:remote-cluster:submit']);
  });
});
