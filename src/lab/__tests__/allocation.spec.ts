/**
 * Continue in a new job, in the page: the notebooks and consoles on the old session's
 * kernel (and only those) move to the successor's kernelspec once it is known; one that
 * cannot move is named, the others still move.
 */
import { Notification } from '@jupyterlab/apputils';
import { nullTranslator } from '@jupyterlab/translation';
import { CommandRegistry } from '@lumino/commands';

import type { IClusterProfile, ISession } from '../../common/api';
import { sessionKernelName, stableKernelName } from '../../common/routes';
import { moveToSuccessor, registerAllocationCommands, widgetsOfSession } from '../allocation';
import { CommandIDs } from '../commands';
import { requestAPI } from '../handler';
import { RemoteClusterModel } from '../model';

jest.mock('../handler', () => ({ requestAPI: jest.fn() }));

function widget(label: string, kernelName: string | undefined, fails = false, kernelId = `id-${label}`) {
  const changes: string[] = [];
  return {
    title: { label },
    changes,
    sessionContext: {
      path: label,
      session: kernelName ? { kernel: { name: kernelName, id: kernelId } } : null,
      changeKernel: async (o: { name: string }) => {
        if (fails) {
          throw new Error('refused');
        }
        changes.push(o.name);
      }
    }
  };
}

/** JupyterLab's spec list; `late` names appear only from the `after`-th refresh on. */
function specs(names: string[] = [], late: string[] = [], after = 1) {
  let refreshed = 0;
  const kernelspecs: Record<string, object> = Object.fromEntries(names.map(n => [n, {}]));
  return {
    get refreshed() {
      return refreshed;
    },
    refreshSpecs: async () => {
      refreshed++;
      if (refreshed >= after) {
        late.forEach(n => (kernelspecs[n] = {}));
      }
    },
    specs: { default: '', kernelspecs }
  };
}

/** No session knows these widgets' kernels by id; nothing is bound. */
const noStable = {
  session: (id: string) => ({ id, kernels: [] }) as never,
  bind: async () => {
    throw new Error('not called');
  }
};

describe('moving to the successor', () => {
  it("a notebook on a stable kernel running in the session is the session's, and moves by restarting there", async () => {
    const stable = widget('saved.ipynb', stableKernelName('hpc'), false, 'k-saved');
    const elsewhere = widget('other.ipynb', stableKernelName('hpc'), false, 'k-other');
    const old = { id: 'old', kernels: ['k-saved'] };
    expect(widgetsOfSession([stable, elsewhere], old).map(w => w.title.label)).toEqual(['saved.ipynb']);
    const bound: string[] = [];
    const r = await moveToSuccessor('old', 'new', {
      widgets: () => [stable, elsewhere],
      kernelspecs: specs([sessionKernelName('new')]) as never,
      syncKernelspecs: async () => undefined,
      session: id => (id === 'old' ? (old as never) : undefined),
      bind: async (id, path) => bound.push(`${path} -> ${id}`)
    });
    expect(r).toEqual({ moved: ['saved.ipynb'], failed: [], carried: {} });
    // bound to the successor first, then the same (stable) kernel name again: it starts there
    expect(bound).toEqual(['saved.ipynb -> new']);
    expect([stable.changes, elsewhere.changes]).toEqual([[stableKernelName('hpc')], []]);
  });

  it("moves the old session's notebooks and consoles only, after syncing the kernelspecs", async () => {
    const a = widget('a.ipynb', sessionKernelName('old'));
    const b = widget('Console 1', sessionKernelName('old'));
    const other = widget('other.ipynb', sessionKernelName('else'));
    const local = widget('local.ipynb', 'python3');
    const text = { title: { label: 'notes.txt' } };
    expect(widgetsOfSession([a, b, other, local, text], { id: 'old' }).map(w => w.title.label)).toEqual([
      'a.ipynb',
      'Console 1'
    ]);
    const ks = specs([sessionKernelName('new')]);
    let synced = 0;
    const r = await moveToSuccessor('old', 'new', {
      widgets: () => [a, b, other, local, text],
      kernelspecs: ks as never,
      syncKernelspecs: async () => synced++,
      ...noStable
    });
    expect(r).toEqual({ moved: ['a.ipynb', 'Console 1'], failed: [], carried: {} });
    expect([a.changes, b.changes, other.changes, local.changes]).toEqual([
      [sessionKernelName('new')],
      [sessionKernelName('new')],
      [],
      []
    ]);
    expect([synced, ks.refreshed]).toEqual([1, 1]);
  });

  it('names what could not move (no spec yet, or refused), and moves the rest', async () => {
    const ok = widget('ok.ipynb', sessionKernelName('old'));
    const bad = widget('bad.ipynb', sessionKernelName('old'), true);
    jest.spyOn(console, 'warn').mockImplementation(() => undefined);
    const r = await moveToSuccessor('old', 'new', {
      widgets: () => [ok, bad],
      kernelspecs: specs([sessionKernelName('new')]) as never,
      syncKernelspecs: async () => undefined,
      ...noStable
    });
    expect(r).toEqual({ moved: ['ok.ipynb'], failed: ['bad.ipynb (refused)'], carried: {} });
    const none = await moveToSuccessor('old', 'new', {
      widgets: () => [widget('x.ipynb', sessionKernelName('old'))],
      kernelspecs: specs() as never,
      syncKernelspecs: async () => undefined,
      specWaitMs: 0,
      ...noStable
    });
    expect(none).toEqual({
      moved: [],
      failed: [`x.ipynb (JupyterLab does not list the kernel ${sessionKernelName('new')} yet)`],
      carried: {}
    });
  });

  it("waits for JupyterLab to list the successor's kernelspec (a refresh may answer from before it was written)", async () => {
    const a = widget('a.ipynb', sessionKernelName('old'));
    const ks = specs([], [sessionKernelName('new')], 3);
    const r = await moveToSuccessor('old', 'new', {
      widgets: () => [a],
      kernelspecs: ks as never,
      syncKernelspecs: async () => undefined,
      ...noStable
    });
    expect(r).toEqual({ moved: ['a.ipynb'], failed: [], carried: {} });
    expect(ks.refreshed).toBe(3);
  });

  it('nothing to move: no kernelspec request at all', async () => {
    const ks = specs();
    const r = await moveToSuccessor('old', 'new', {
      widgets: () => [widget('l.ipynb', 'python3')],
      kernelspecs: ks as never,
      syncKernelspecs: async () => {
        throw new Error('not called');
      },
      ...noStable
    });
    expect(r).toEqual({ moved: [], failed: [], carried: {} });
    expect(ks.refreshed).toBe(0);
  });
});

describe('Continue with other resources', () => {
  const old: ISession = {
    id: 'a',
    profile: 'hpc',
    cluster: 'hpc',
    jobId: '42',
    resources: { partition: 'debug', walltime: '01:00:00', cpus: 2 },
    state: 'running',
    node: 'node1',
    createdAt: '2026-12-07T08:00:00.000Z',
    updatedAt: '2026-12-07T08:00:00.000Z'
  };
  const profile = {
    name: 'hpc',
    scheduler: 'slurm',
    resources: { walltime: '00:30:00' }
  } as unknown as IClusterProfile;

  function setUp(profiles: IClusterProfile[]) {
    const model = new RemoteClusterModel();
    model.handle({ type: 'session', session: old });
    const commands = new CommandRegistry();
    const dialogs: unknown[] = [];
    registerAllocationCommands({
      commands,
      model,
      trans: nullTranslator.load('jupyterlab_remote_cluster'),
      widgets: () => [],
      kernelspecs: {} as never,
      syncKernelspecs: async () => undefined,
      profile: async name => profiles.find(p => p.name === name),
      // the dialog: the user doubles the walltime and submits
      submit: async (p, _trans, deps, start) => {
        dialogs.push({ profile: p.name, ...start });
        return deps!.post(p.name, { ...start!.values, walltime: '02:00:00' });
      }
    });
    return { model, commands, dialogs };
  }

  it("the dialog starts with the old session's resources; the successor continues it with the edited ones", async () => {
    const next: ISession = { ...old, id: 'b', jobId: '43', state: 'queued', continues: 'a' };
    (requestAPI as jest.Mock).mockResolvedValueOnce(next);
    const { model, commands, dialogs } = setUp([profile]);
    jest.spyOn(Notification, 'info').mockImplementation(() => '');
    await commands.execute(CommandIDs.continueSessionWith, { session: 'a' });
    expect(dialogs).toEqual([{ profile: 'hpc', values: old.resources, title: 'Continue job 42 in a new job' }]);
    expect((requestAPI as jest.Mock).mock.calls).toEqual([
      [
        'api/v1/sessions/a/relaunch',
        {
          method: 'POST',
          body: JSON.stringify({
            continue: true,
            resources: { partition: 'debug', walltime: '02:00:00', cpus: 2 }
          })
        }
      ]
    ]);
    expect(model.session('b')?.continues).toBe('a');
    expect((Notification.info as jest.Mock).mock.calls[0][0]).toMatch(/^Job 43 submitted to continue job 42/);
  });

  it('a profile no longer in the settings: said, nothing submitted', async () => {
    (requestAPI as jest.Mock).mockReset();
    const { commands, dialogs } = setUp([]);
    const error = jest.spyOn(Notification, 'error').mockImplementation(() => '');
    await commands.execute(CommandIDs.continueSessionWith, { session: 'a' });
    expect(error.mock.calls[0][0]).toBe(
      'Could not continue in a new job: the profile "hpc" is not in the settings any more (Continue in a new job reuses it as it was)'
    );
    expect([dialogs, (requestAPI as jest.Mock).mock.calls]).toEqual([[], []]);
  });
});
