/**
 * The kernels of a job's environment besides its default Python (R, bash, another
 * conda env's Python...): its helper lists them (kernelspecs.py) once the session runs,
 * the agent writes a local kernelspec for each (../kernelspecs.ts), and a kernel of
 * that spec is started by its name in the job's environment.
 */
import type { IRemoteKernelspec } from '../../common/api';
import { HELPER_PROTOCOL } from './connectivity';
import type { HelperClient } from './helper-client';
import { helperError, type ISessionRecord } from './records';

/** The name of a kernelspec in the job's environment, as the helper accepts it. */
export const REMOTE_SPEC_NAME = /^[A-Za-z0-9._-]{1,64}$/;
/** A job environment with more is unusual; more would flood the kernel picker. */
const MAX_SPECS = 50;
/** The helper runs the session's Python to list them: allow for a slow shared filesystem. */
const LIST_TIMEOUT_MS = 45_000;

/** Asks a running session's helper for its job environment's kernelspecs, once per session. */
export class RemoteKernelspecs {
  private readonly asking = new Map<string, Promise<void>>();

  constructor(
    private readonly helper: HelperClient,
    private readonly log: (msg: string) => void,
    /** What the helper said (none, if it could not say). */
    private readonly said: (s: ISessionRecord, kernelspecs: IRemoteKernelspec[]) => void
  ) {}

  /** Resolves once the session's list is known (a kernel of one of them may wait for it). */
  listOnce(s: ISessionRecord): Promise<void> {
    if (s.kernelspecs !== undefined) {
      return Promise.resolve();
    }
    let asking = this.asking.get(s.id);
    if (!asking) {
      asking = listRemoteKernelspecs(this.helper, s)
        .catch(err => {
          this.log(`session ${s.id}: only its default kernel: ${(err as Error).message}`);
          return [];
        })
        .then(kernelspecs => {
          this.asking.delete(s.id);
          this.said(s, kernelspecs);
        });
      this.asking.set(s.id, asking);
    }
    return asking;
  }
}

/** The session's kernelspecs other than its default, as its helper lists them. */
export async function listRemoteKernelspecs(helper: HelperClient, s: ISessionRecord): Promise<IRemoteKernelspec[]> {
  if ((s.protocol ?? 1) < HELPER_PROTOCOL) {
    return []; // a helper of an earlier release starts only its Python
  }
  const r = await helper.request(s, 'GET', '/kernelspecs', undefined, LIST_TIMEOUT_MS);
  if (r.status !== 200) {
    throw new Error(`the helper could not list the job's kernelspecs: ${helperError(r.json)}`);
  }
  return remoteKernelspecsOf(r.json);
}

/** Checked, bounded and without the default (which the session's own kernelspec runs). */
export function remoteKernelspecsOf(json: unknown): IRemoteKernelspec[] {
  const body = json as { default?: unknown; kernelspecs?: unknown } | null;
  const list = Array.isArray(body?.kernelspecs) ? (body!.kernelspecs as Record<string, unknown>[]) : [];
  const text = (v: unknown, max: number): string => (typeof v === 'string' ? v.slice(0, max) : '');
  return list
    .filter(k => typeof k?.name === 'string' && REMOTE_SPEC_NAME.test(k.name) && k.name !== body?.default)
    .slice(0, MAX_SPECS)
    .map(k => ({
      name: k.name as string,
      displayName: text(k.displayName, 80) || (k.name as string),
      language: text(k.language, 40),
      interruptMode: k.interruptMode === 'message' ? 'message' : 'signal'
    }));
}
