import { nullTranslator } from '@jupyterlab/translation';

import { openSessionNotebook, type IOpenNotebookDeps } from '../open-notebook';

/** Lab's kernelspec list as the frontend knows it: `onDisk` reaches it only on a refresh. */
function world(agentWritesSpec: boolean) {
  const calls: string[] = [];
  const onDisk = new Set<string>(['remote-cluster-hpc']); // a profile's "(new job)" spec
  let known: Record<string, unknown> = {};
  const deps: IOpenNotebookDeps = {
    commands: {
      execute: async (id: string, args?: any) => {
        calls.push(`${id} ${args?.kernelName}`);
      }
    } as IOpenNotebookDeps['commands'],
    kernelspecs: {
      refreshSpecs: async () => {
        calls.push('refresh');
        known = Object.fromEntries([...onDisk].map(n => [n, { name: n }]));
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

  it('opens nothing (no kernel picker that could submit a job) when the spec does not exist', async () => {
    const { deps, calls } = world(false);
    expect(await openSessionNotebook('ab12cd', deps)).toBe(false);
    expect(calls.filter(c => c.startsWith('notebook:'))).toEqual([]);
    expect(calls[calls.length - 1]).toMatch(/^error The kernel of this session is not available/);
  });
});
