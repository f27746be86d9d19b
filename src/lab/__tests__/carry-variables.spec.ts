/**
 * Carrying variables to the successor, in the page: the old kernel is asked (a silent user
 * expression, within the caps) before the notebook changes kernel, the new one loads what
 * it wrote; a kernel that cannot or does not answer costs the variables, never the move.
 */
import { sessionKernelName } from '../../common/routes';
import { nullTranslator } from '@jupyterlab/translation';

import { moveToSuccessor, movedMessage } from '../allocation';
import { carriedDetails, describeCarried, userExpression } from '../carry-variables';

const trans = nullTranslator.load('jupyterlab-remote-cluster');

type Answer = Record<string, unknown> | 'silent';

/** A kernel connection that answers each user expression with `answer(expression)`. */
function kernel(name: string, answer: (expression: string) => Answer) {
  const asked: { code: string; silent: boolean; store_history: boolean; expression: string }[] = [];
  return {
    name,
    id: `id-${name}`,
    asked,
    requestExecute(content: {
      code: string;
      silent: boolean;
      store_history: boolean;
      user_expressions: Record<string, string>;
    }) {
      const expression = content.user_expressions.carry;
      asked.push({ code: content.code, silent: content.silent, store_history: content.store_history, expression });
      const a = answer(expression);
      let disposed = false;
      return {
        get isDisposed() {
          return disposed;
        },
        dispose: () => (disposed = true),
        done:
          a === 'silent'
            ? new Promise(() => undefined)
            : Promise.resolve({ content: { status: 'ok', user_expressions: { carry: a } } })
      };
    }
  };
}

const json = (value: unknown) => ({ status: 'ok', data: { 'application/json': value } });

/** A notebook on `old` whose kernel becomes `next` when it changes kernel. */
function notebook(label: string, old: ReturnType<typeof kernel>, next: ReturnType<typeof kernel>) {
  const session = { kernel: old as unknown };
  return {
    title: { label },
    sessionContext: {
      path: label,
      session,
      changeKernel: async () => {
        session.kernel = next;
      }
    }
  };
}

const deps = (widgets: unknown[]) => ({
  widgets: () => widgets,
  kernelspecs: {
    refreshSpecs: async () => undefined,
    specs: { default: '', kernelspecs: { [sessionKernelName('new')]: {} } }
  } as never,
  syncKernelspecs: async () => undefined,
  session: (id: string) => ({ id, kernels: [] }) as never,
  bind: async () => undefined
});

describe('carrying variables to the successor', () => {
  it('the old kernel writes within the caps before the change; the new one loads it; both say what did not move', async () => {
    const order: string[] = [];
    const old = kernel(sessionKernelName('old'), e => {
      order.push('dump');
      expect(e).toBe("__import__('jrc_carry').dump_for_successor(256, 20)");
      return json({
        path: '/home/alice/.cache/jupyterlab-remote-cluster/carry/ab.pickle',
        carried: ['answer', 'np', 'twice'],
        skipped: { lock: 'does not pickle (TypeError)' }
      });
    });
    const next = kernel(sessionKernelName('new'), e => {
      order.push('load');
      expect(e).toBe(
        '__import__(\'jrc_carry\').load_from_predecessor("/home/alice/.cache/jupyterlab-remote-cluster/carry/ab.pickle")'
      );
      return json({ loaded: ['answer', 'np'], failed: { twice: 'did not unpickle (ModuleNotFoundError)' } });
    });
    const nb = notebook('a.ipynb', old, next);
    const changeKernel = nb.sessionContext.changeKernel;
    nb.sessionContext.changeKernel = async () => {
      order.push('change');
      await changeKernel();
    };
    const r = await moveToSuccessor('old', 'new', {
      ...deps([nb]),
      carryCaps: { maxMegabytes: 256, maxSeconds: 20 }
    });
    expect(order).toEqual(['dump', 'change', 'load']);
    expect(r.moved).toEqual(['a.ipynb']);
    expect(r.carried).toEqual({
      'a.ipynb': {
        carried: ['answer', 'np'],
        notCarried: { lock: 'does not pickle (TypeError)', twice: 'did not unpickle (ModuleNotFoundError)' }
      }
    });
    // silent, out of the history: nothing of it shows in the notebook
    for (const a of [...old.asked, ...next.asked]) {
      expect([a.code, a.silent, a.store_history]).toEqual(['', true, false]);
    }
  });

  it('a kernel from an earlier release (no jrc_carry) still moves; the variables are said not to', async () => {
    const old = kernel(sessionKernelName('old'), () => ({
      status: 'error',
      ename: 'ModuleNotFoundError',
      evalue: "No module named 'jrc_carry'"
    }));
    const next = kernel(sessionKernelName('new'), () => {
      throw new Error('nothing to load: not asked');
    });
    const r = await moveToSuccessor('old', 'new', {
      ...deps([notebook('a.ipynb', old, next)]),
      carryCaps: { maxMegabytes: 256, maxSeconds: 20 }
    });
    expect(r.moved).toEqual(['a.ipynb']);
    expect(r.carried['a.ipynb'].error).toBe(
      'this kernel cannot carry variables (an earlier release or another kernelspec started it)'
    );
    expect(next.asked).toEqual([]);
  });

  it('nothing carried (all skipped): the new kernel is not asked, the reasons are kept', async () => {
    const old = kernel(sessionKernelName('old'), () =>
      json({ path: null, carried: [], skipped: { client: 'tied to the old job' } })
    );
    const next = kernel(sessionKernelName('new'), () => json({}));
    const r = await moveToSuccessor('old', 'new', {
      ...deps([notebook('a.ipynb', old, next)]),
      carryCaps: { maxMegabytes: 1, maxSeconds: 1 }
    });
    expect(r.carried['a.ipynb']).toEqual({ carried: [], notCarried: { client: 'tied to the old job' } });
    expect(next.asked).toEqual([]);
  });

  it('a kernel running a cell is not asked (its answer would wait for the cell); the notebook still moves', async () => {
    const old = { ...kernel(sessionKernelName('old'), () => json({})), status: 'busy' };
    const next = kernel(sessionKernelName('new'), () => json({}));
    const r = await moveToSuccessor('old', 'new', {
      ...deps([notebook('a.ipynb', old as never, next)]),
      carryCaps: { maxMegabytes: 256, maxSeconds: 20 }
    });
    expect(r.moved).toEqual(['a.ipynb']);
    expect(r.carried['a.ipynb']).toEqual({ carried: [], notCarried: {}, error: 'a cell was running in it' });
    expect([old.asked, next.asked]).toEqual([[], []]);
  });

  it('without caps (carrying off) no kernel is asked', async () => {
    const old = kernel(sessionKernelName('old'), () => json({}));
    const next = kernel(sessionKernelName('new'), () => json({}));
    const r = await moveToSuccessor('old', 'new', deps([notebook('a.ipynb', old, next)]));
    expect([r.moved, r.carried, old.asked, next.asked]).toEqual([['a.ipynb'], {}, [], []]);
  });

  it('a kernel that does not answer (a cell still running) times out; one without JSON or expressions is said', async () => {
    const busy = kernel('k', () => 'silent');
    await expect(userExpression(busy as never, '1', 50)).rejects.toThrow('the kernel did not answer in 0 s (busy?)');
    const noJson = kernel('k', () => ({ status: 'ok', data: { 'text/plain': '1' } }));
    await expect(userExpression(noJson as never, '1', 1000)).rejects.toThrow('without JSON');
    // a kernel that is not IPython answers without user expressions
    const bash = {
      requestExecute: () => ({
        isDisposed: false,
        dispose: () => undefined,
        done: Promise.resolve({ content: { status: 'ok', user_expressions: {} } })
      })
    };
    await expect(userExpression(bash as never, '1', 1000)).rejects.toThrow(
      'this kernel cannot carry variables (its answer: ok, no expressions)'
    );
  });

  it('says at most a few names, then how many', () => {
    const names = Array.from({ length: 10 }, (_, i) => `v${i}`);
    expect(describeCarried({ carried: names, notCarried: { big: 'over the size cap' } }, 3)).toEqual({
      carried: 'v0, v1, v2 … (10)',
      notCarried: 'big (over the size cap)'
    });
  });

  it('the notification fits its 140 characters; the lists and reasons are in Details', () => {
    const all = {
      carried: ['answer', 'df', 'np'],
      notCarried: {}
    };
    const some = { carried: ['answer'], notCarried: { lock: 'does not pickle (TypeError)' } };
    const none = { carried: [], notCarried: {}, error: 'the kernel did not answer in 90 s (busy?)' };
    expect(movedMessage('12', ['a.ipynb'], { 'a.ipynb': all }, trans)).toBe(
      'Moved to job 12: a.ipynb, with its 3 variables.'
    );
    expect(movedMessage('12', ['a.ipynb', 'b.ipynb'], { 'a.ipynb': all, 'b.ipynb': some }, trans)).toBe(
      'Moved to job 12: a.ipynb, b.ipynb. Carried 4 variables; some did not move (see Details).'
    );
    expect(movedMessage('12', ['a.ipynb'], { 'a.ipynb': none }, trans)).toBe(
      'Moved to job 12: a.ipynb. The variables did not move (see Details).'
    );
    const details = carriedDetails({ 'a.ipynb': some, 'b.ipynb': none }, trans).node;
    expect([...details.querySelectorAll('h3, p')].map(e => e.textContent)).toEqual([
      'a.ipynb',
      'Carried: answer.',
      'Not carried: lock (does not pickle (TypeError)).',
      'Running cells did not move: re-run what they were doing.',
      'b.ipynb',
      'Variables not carried: the kernel did not answer in 90 s (busy?).',
      'Running cells did not move: re-run what they were doing.'
    ]);
  });
});
