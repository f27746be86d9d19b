import { nullTranslator } from '@jupyterlab/translation';

import { openSessionNotebook, type IOpenNotebookDeps } from '../open-notebook';

/**
 * Lab's kernelspec list as the frontend knows it: `onDisk` reaches it only on a refresh.
 * `inFlight`: a refresh that left before the sync (another session event started it) is
 * what the first refreshSpecs() after the sync returns, as Lumino's Poll joins it.
 */
function world(agentWritesSpec: boolean, inFlight = false) {
  const calls: string[] = [];
  const onDisk = new Set<string>(['remote-cluster-hpc']); // a profile's "(new job)" spec
  let known: Record<string, unknown> = {};
  let stale = inFlight ? Object.fromEntries([...onDisk].map(n => [n, { name: n }])) : undefined;
  const deps: IOpenNotebookDeps = {
    commands: {
      execute: async (id: string, args?: any) => {
        calls.push(`${id} ${args?.kernelName}`);
      }
    } as IOpenNotebookDeps['commands'],
    kernelspecs: {
      refreshSpecs: async () => {
        calls.push('refresh');
        known = stale ?? Object.fromEntries([...onDisk].map(n => [n, { name: n }]));
        stale = undefined;
      },
      get specs() {
        return { default: 'remote-cluster-hpc', kernelspecs: known } as any;
      }
    },
    syncKernelspecs: async () => {
      calls.push('sync');
      if (agentWritesSpec) {
        onDisk.add('remote-cluster-session-ab12cd');
      }
    },
    notifyError: message => calls.push(`error ${message}`),
    trans: nullTranslator.load('jupyterlab')
  };
  return { deps, calls };
}

describe('opening a notebook on a session', () => {
  it("waits until the session's kernelspec is written and known, then opens on it", async () => {
    const { deps, calls } = world(true);
    expect(await openSessionNotebook('ab12cd', deps)).toBe(true);
    expect(calls).toEqual(['sync', 'refresh', 'notebook:create-new remote-cluster-session-ab12cd']);
  });

  it('does not take the answer of a refresh that left before the spec was written', async () => {
    const { deps, calls } = world(true, true);
    expect(await openSessionNotebook('ab12cd', deps)).toBe(true);
    expect(calls).toEqual(['sync', 'refresh', 'refresh', 'notebook:create-new remote-cluster-session-ab12cd']);
  });

  it('opens nothing (no kernel picker that could submit a job) when the spec does not exist', async () => {
    const { deps, calls } = world(false);
    expect(await openSessionNotebook('ab12cd', deps)).toBe(false);
    expect(calls.filter(c => c.startsWith('notebook:'))).toEqual([]);
    expect(calls[calls.length - 1]).toMatch(/^error The kernel of this session is not available/);
  });
});
