/**
 * What the frontend sees of a session: the record without the agent's secrets and
 * internals, with what its helper says now (kernels that lost their Jupyter server, the
 * Dask workers) and what the user should know (an unprotected earlier release, Dask
 * that did not start).
 */
import type { ISession } from '../../common/api';
import { idleView } from './allocation';
import { HELPER_PROTOCOL } from './connectivity';
import type { IHelperState, ISessionRecord } from './records';

export interface IViewSources {
  /** The session's kernels connected through this agent. */
  kernels: string[];
  /** Whether this agent knows (has forwards for) kernel `id`. */
  knows: (id: string) => boolean;
  /** The helper's state as last read (running and starting sessions). */
  helper?: IHelperState;
}

export function publicView(s: ISessionRecord, from: IViewSources): ISession {
  const {
    clusterKey: _c,
    remoteDir: _r,
    owner: _o,
    protocol: _p,
    proxyKey: _k,
    submittedProfile: _sp,
    loginWarnings: _lw,
    ...pub
  } = s;
  const running = s.state === 'running';
  // Alive in the helper but without our forwards: their Jupyter server is gone.
  const detached = Object.entries((running && from.helper?.kernels) || {})
    .filter(([id, k]) => k.alive && !from.knows(id))
    .map(([id]) => id);
  const warnings = sessionWarnings(s, from.helper);
  const idle = running ? idleView(from.helper) : undefined;
  const dask = running ? from.helper?.dask : undefined;
  const daskWorkers =
    dask?.status === 'running' && Array.isArray(dask.workers)
      ? dask.workers.map(w => ({ name: String(w.name), host: String(w.host), threads: Number(dask.workerThreads) }))
      : undefined;
  return {
    ...pub,
    kernels: from.kernels,
    ...(daskWorkers && daskWorkers.length > 0 && { daskWorkers }),
    ...(dask?.status === 'running' && from.helper?.elastic && { canAddWorkers: true }),
    ...(running &&
      typeof from.helper?.endWarning?.at === 'number' && { endWarnedAt: from.helper.endWarning.at * 1000 }),
    // running: as the helper sampled it last; ended: what the record kept
    ...(running && from.helper?.usage && { usage: from.helper.usage }),
    ...(idle && { idle }),
    ...(detached.length > 0 && { detachedKernels: detached }),
    ...(warnings.length > 0 && { warnings })
  };
}

/** What the user should know about a live session that is not its state. */
function sessionWarnings(s: ISessionRecord, helper: IHelperState | undefined): string[] {
  if (s.state === 'ended') {
    return [];
  }
  // a running job found its Python and directory: the login node's doubts are over
  const out = s.state === 'running' ? [] : [...(s.loginWarnings ?? [])];
  if ((s.protocol ?? 1) < HELPER_PROTOCOL) {
    out.push(
      'Started by an earlier version of jupyterlab-remote-cluster: its kernels, control channel and Dask ' +
        'dashboard listen on TCP ports of the node that other users of the cluster can connect to. Its kernels ' +
        'keep working, its dashboard is not shown any more; start a new session to get the protections.'
    );
  }
  const dask = helper?.dask;
  if (dask?.status === 'failed' && dask.error) {
    out.push(dask.error);
  }
  return out;
}
