/**
 * Carrying a notebook's variables to its successor job (docs/allocation.md, "Continue in
 * a new job"): the old kernel pickles what it can to a private file in the user's home on
 * the cluster (remote/jrc_carry.py, which jrc_kernel.py makes importable), the new one
 * loads it. Both are asked as user expressions of a silent execute: nothing shows in the
 * notebook, its outputs or its history.
 */
import type { Kernel, KernelMessage } from '@jupyterlab/services';
import type { TranslationBundle } from '@jupyterlab/translation';
import { Widget } from '@lumino/widgets';

/** The caps (the sessions settings' `carryVariables`); 0 MB: carry nothing. */
export interface ICarryCaps {
  maxMegabytes: number;
  maxSeconds: number;
}

export const DEFAULT_CARRY_CAPS: ICarryCaps = { maxMegabytes: 512, maxSeconds: 60 };

/** What the old kernel wrote (jrc_carry.dump). */
interface IDumped {
  path: string | null;
  carried: string[];
  skipped: Record<string, string>;
}

/** What moved with one notebook, and what did not (name → why). */
export interface ICarried {
  carried: string[];
  notCarried: Record<string, string>;
  /** Why nothing was carried at all (the kernel could not be asked). */
  error?: string;
}

/** How long a kernel may take to answer beyond the time cap (startup, a queue). */
const ANSWER_GRACE_MS = 30_000;

/**
 * The JSON value of `expression` in `kernel` (a user expression, so not in the history),
 * or an error naming what went wrong.
 */
export async function userExpression(
  kernel: Kernel.IKernelConnection,
  expression: string,
  timeoutMs: number
): Promise<unknown> {
  const future = kernel.requestExecute({
    code: '',
    silent: true,
    store_history: false,
    allow_stdin: false,
    stop_on_error: false,
    user_expressions: { carry: expression }
  });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`the kernel did not answer in ${Math.round(timeoutMs / 1000)} s (busy?)`)),
      timeoutMs
    );
  });
  try {
    const reply = (await Promise.race([future.done, timeout])) as KernelMessage.IExecuteReplyMsg;
    const content = reply.content as KernelMessage.IExecuteReply & { user_expressions?: Record<string, any> };
    const answer = content.user_expressions?.carry;
    if (!answer) {
      // (bash, R…: user expressions are IPython's)
      throw new Error(`this kernel cannot carry variables (its answer: ${content.status}, no expressions)`);
    }
    if (answer.status !== 'ok') {
      throw new Error(
        answer.ename === 'ModuleNotFoundError'
          ? 'this kernel cannot carry variables (an earlier release or another kernelspec started it)'
          : `${answer.ename}: ${answer.evalue}`
      );
    }
    const json = answer.data?.['application/json'];
    if (json === undefined) {
      throw new Error('the kernel answered without JSON');
    }
    return json;
  } finally {
    clearTimeout(timer);
    if (!future.isDisposed) {
      future.dispose();
    }
  }
}

/** Ask the old kernel to write what it can; null: carrying is off. */
export async function dumpVariables(
  kernel: Kernel.IKernelConnection,
  caps: ICarryCaps
): Promise<IDumped | { error: string } | null> {
  if (caps.maxMegabytes <= 0) {
    return null;
  }
  if (kernel.status === 'busy') {
    // its answer would wait for the cell, and the walltime does not
    return { error: 'a cell was running in it' };
  }
  try {
    return (await userExpression(
      kernel,
      `__import__('jrc_carry').dump_for_successor(${Number(caps.maxMegabytes)}, ${Number(caps.maxSeconds)})`,
      caps.maxSeconds * 1000 + ANSWER_GRACE_MS
    )) as IDumped;
  } catch (err) {
    return { error: (err as Error).message };
  }
}

/** Have the new kernel load what the old one wrote; says what came and what did not. */
export async function loadVariables(
  kernel: Kernel.IKernelConnection,
  dumped: IDumped | { error: string }
): Promise<ICarried> {
  if ('error' in dumped) {
    return { carried: [], notCarried: {}, error: dumped.error };
  }
  const notCarried = { ...dumped.skipped };
  if (!dumped.path) {
    return { carried: [], notCarried };
  }
  try {
    const loaded = (await userExpression(
      kernel,
      `__import__('jrc_carry').load_from_predecessor(${JSON.stringify(dumped.path)})`,
      ANSWER_GRACE_MS * 2
    )) as { loaded: string[]; failed: Record<string, string> };
    return { carried: loaded.loaded, notCarried: { ...notCarried, ...loaded.failed } };
  } catch (err) {
    return { carried: [], notCarried, error: (err as Error).message };
  }
}

/** Counts over the moved notebooks: variables carried, not carried, notebooks that could not carry. */
export function countCarried(all: Record<string, ICarried>): { carried: number; notCarried: number; failed: number } {
  const cs = Object.values(all);
  return {
    carried: cs.reduce((n, c) => n + c.carried.length, 0),
    notCarried: cs.reduce((n, c) => n + Object.keys(c.notCarried).length, 0),
    failed: cs.filter(c => c.error).length
  };
}

/** The Details of a move: per notebook, what was carried and what not, with why. */
export function carriedDetails(all: Record<string, ICarried>, trans: TranslationBundle): Widget {
  const node = document.createElement('div');
  node.className = 'jp-RemoteCluster-carried';
  for (const [label, c] of Object.entries(all)) {
    const d = describeCarried(c, Infinity);
    node.appendChild(document.createElement('h3')).textContent = label;
    const lines = [
      c.error
        ? trans.__('Variables not carried: %1.', c.error)
        : trans.__('Carried: %1.', d.carried || trans.__('none'))
    ];
    if (d.notCarried) {
      lines.push(trans.__('Not carried: %1.', d.notCarried));
    }
    lines.push(trans.__('Running cells did not move: re-run what they were doing.'));
    for (const line of lines) {
      node.appendChild(document.createElement('p')).textContent = line;
    }
  }
  return new Widget({ node });
}

/** "answer, df, np (3); not: lock (does not pickle), big (over the size cap)". */
export function describeCarried(c: ICarried, max = 8): { carried: string; notCarried: string } {
  const list = (names: string[]) =>
    names.length > max ? `${names.slice(0, max).join(', ')} … (${names.length})` : names.join(', ');
  const not = Object.entries(c.notCarried).map(([name, why]) => `${name} (${why})`);
  return { carried: list(c.carried), notCarried: list(not) };
}
