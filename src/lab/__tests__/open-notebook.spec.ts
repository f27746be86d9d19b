import { nullTranslator } from '@jupyterlab/translation';

import { openSessionNotebook, pickSessionKernel, type IOpenNotebookDeps } from '../open-notebook';

/**
 * Lab's kernelspec list as the frontend knows it: `onDisk` reaches it only on a refresh.
 * `inFlight`: a refresh that left before the sync (another session event started it) is
 * what the first refreshSpecs() after the sync returns, as Lumino's Poll joins it.
 */
function world(agentWritesSpec: boolean, inFlight = false, written = ['remote-cluster-hpc--python3']) {
  const calls: string[] = [];
  const onDisk = new Set<string>(['remote-cluster-hpc']); // a profile's "(new job)" spec
  let known: Record<string, unknown> = {};
  let stale = inFlight ? Object.fromEntries([...onDisk].map(n => [n, { name: n }])) : undefined;
  const deps: IOpenNotebookDeps = {
    commands: {
      execute: async (id: string, args?: any) => {
        calls.push(`${id} ${args?.path} ${args?.kernel?.name}`);
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
        written.forEach(n => onDisk.add(n));
      }
    },
    notifyError: message => calls.push(`error ${message}`),
    trans: nullTranslator.load('jupyterlab'),
    newNotebook: async () => {
      calls.push('new');
      return 'runs/Untitled3.ipynb';
    },
    bind: async (id, path) => calls.push(`bind ${path} ${id}`)
  };
  return { deps, calls };
}

const S = { id: 'ab12cd', profile: 'hpc' };
const OPENED = 'docmanager:open runs/Untitled3.ipynb';
/** A new notebook, bound to the session, opened on the profile's stable Python. */
const OPENS_ON_PYTHON = ['new', 'bind runs/Untitled3.ipynb ab12cd', `${OPENED} remote-cluster-hpc--python3`];

describe('opening a notebook on a session', () => {
  it("waits until the session's kernelspec is written and known, then opens on it", async () => {
    const { deps, calls } = world(true);
    expect(await openSessionNotebook(S, deps)).toBe(true);
    // the profile's stable Python (saved with the notebook), bound to this session before it starts
    expect(calls).toEqual(['sync', 'refresh', ...OPENS_ON_PYTHON]);
  });

  it('does not take the answer of a refresh that left before the spec was written', async () => {
    const { deps, calls } = world(true, true);
    expect(await openSessionNotebook(S, deps)).toBe(true);
    expect(calls).toEqual(['sync', 'refresh', 'refresh', ...OPENS_ON_PYTHON]);
  });

  it('opens nothing (no kernel picker that could submit a job) when the spec does not exist', async () => {
    const { deps, calls } = world(false);
    expect(await openSessionNotebook(S, deps)).toBe(false);
    expect(calls.filter(c => /^(new|bind|docmanager)/.test(c))).toEqual([]);
    expect(calls[calls.length - 1]).toMatch(/^error The kernel of this session is not available/);
  });
});

describe("a notebook on another kernel of the session's job", () => {
  const trans = nullTranslator.load('jupyterlab');
  const kernelspecs = [
    { name: 'bash', displayName: 'Bash', language: 'bash', interruptMode: 'signal' as const },
    { name: 'ir', displayName: 'R', language: 'R', interruptMode: 'signal' as const }
  ];

  it('asks only when the job has other kernels, and names each as the job does', async () => {
    const asked: string[][] = [];
    const ask = (answer: string | null) => async (items: string[]) => {
      asked.push(items);
      return answer;
    };
    expect(await pickSessionKernel({}, ask('x'), trans)).toBeUndefined();
    expect(await pickSessionKernel(undefined, ask('x'), trans)).toBeUndefined();
    expect(asked).toEqual([]);
    expect(await pickSessionKernel({ kernelspecs }, ask('R (ir)'), trans)).toBe('ir');
    expect(asked[0]).toEqual(["Python 3 (the session's Python)", 'Bash (bash)', 'R (ir)']);
    expect(await pickSessionKernel({ kernelspecs }, ask("Python 3 (the session's Python)"), trans)).toBeUndefined();
    expect(await pickSessionKernel({ kernelspecs }, ask(null), trans)).toBeNull();
  });

  it("opens on that kernel's own kernelspec, or on none if the agent wrote none", async () => {
    const without = world(true);
    expect(await openSessionNotebook(S, without.deps, 'bash')).toBe(false);
    expect(without.calls.filter(c => /^(new|bind|docmanager)/.test(c))).toEqual([]);
    const { deps, calls } = world(true, false, ['remote-cluster-hpc--python3', 'remote-cluster-hpc--bash']);
    expect(await openSessionNotebook(S, deps, 'bash')).toBe(true);
    expect(calls[calls.length - 1]).toBe(`${OPENED} remote-cluster-hpc--bash`);
  });
});
