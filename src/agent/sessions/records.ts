/**
 * What the agent keeps about sessions and kernels beyond what the frontend sees, shared
 * by the manager (the state machine) and the parts it delegates to.
 */
import type { IClusterProfile, IServedPort, ISession, IUsage } from '../../common/api';
import type { ISchedulerAdapter } from '../schedulers/types';
import type { IHelperEndpoints } from './connectivity';

/** Remote layout, under the user's home on the cluster (shared with the nodes). */
export const REMOTE_ROOT = '.jupyter-remote-cluster';

/** A helper heartbeat older than this while the job runs means the helper is gone. */
export const HEARTBEAT_STALE_S = 90;

/** The helper's state.json, as of its last heartbeat. */
export interface IHelperState extends IHelperEndpoints {
  status: 'starting' | 'ready' | 'stopping' | 'failed';
  heartbeat: number;
  error?: string;
  dask?: {
    status?: string;
    error?: string;
    schedulerAddress?: string;
    workerThreads?: number;
    workers?: { name: string; host: string }[];
  };
  httpPorts?: IServedPort[];
  /** Worker jobs may join the session's Dask (the agent gave it elastic workers). */
  elastic?: boolean;
  /** Worker jobs the kernels' dask-jobqueue clusters submitted and have not closed. */
  workerJobs?: string[];
  /** The session's terminals (terminals.py), oldest first. */
  terminals?: string[];
  /** The session's end by the node's clock (epoch seconds): its start plus the walltime. */
  endsAt?: number;
  /** What the session's processes use on its node (usage.py). */
  usage?: IUsage;
  /** The batch system warned that the walltime ends soon (Slurm's --signal), when. */
  endWarning?: { signal: string; at: number };
  /** Idle reclaim (the helper's idle.py; epoch seconds). */
  idle?: { timeoutSeconds: number; lastUse: number; lastUseWhy: string; reclaimAt?: number; keptAt?: number };
  /** The helper ended the session for being idle: for how long, what it released. */
  idleEnded?: { idleSeconds: number; coreHoursReleased?: number | null; at: number };
  /** Every kernel the helper runs, as of the heartbeat. */
  kernels?: Record<string, { pid: number; alive: boolean }>;
}

/** What the agent keeps about a session beyond what the frontend sees. */
export interface ISessionRecord extends ISession {
  clusterKey: string;
  remoteDir: string;
  /** Session started by a profile kernelspec: cancelled when its kernel shuts down. */
  owner: 'user' | 'kernel';
  /** The agent-helper protocol of the helper it was started with (absent: 1, an earlier release). */
  protocol?: number;
  /**
   * The capability in the session's proxied URLs (`remote-cluster/proxied/<key>/...`):
   * whoever has it reaches what the session serves, nothing else (docs/security.md).
   * Absent in sessions of an earlier release, whose dashboards are not proxied any more.
   */
  proxyKey?: string;
  /**
   * The profile as it was when the job was submitted: the job keeps it whatever happens
   * to the profile later (renamed, edited, deleted), so it is still polled and can be
   * cancelled. Absent in sessions of an earlier release: looked up by name.
   */
  submittedProfile?: IClusterProfile;
  /** What the login node's checks missed before queuing (login-checks.ts): said until it runs. */
  loginWarnings?: string[];
}

/** A kernel's connection info as Jupyter sees it: local forwards to the kernel on the node. */
export interface IKernelConnection {
  kernelId: string;
  sessionId: string;
  ip: '127.0.0.1';
  transport: 'tcp';
  signature_scheme: string;
  key: string;
  shell_port: number;
  iopub_port: number;
  stdin_port: number;
  control_port: number;
  hb_port: number;
  /**
   * IOPub goes to the kernel's keeper on the node, not to its PUB socket: the client must
   * speak the keeper's protocol (the provisioner's bridge, iopub_bridge.py).
   */
  iopub_kept: boolean;
}

export function now(): string {
  return new Date().toISOString();
}

/** Seconds since the helper last wrote its state (by the node's clock). */
export function heartbeatAge(state: IHelperState): number {
  return Date.now() / 1000 - state.heartbeat;
}

/** The helper answers errors as {"error": {"code", "message"}}. */
export function helperError(json: any): string {
  const e = json?.error;
  return typeof e === 'string' ? e : (e?.message ?? JSON.stringify(json));
}

/** Where the helper on `node` is reached (see ISchedulerAdapter.helperOnLoopback). */
export function hostToReach(adapter: ISchedulerAdapter, node: string): string {
  return adapter.helperOnLoopback ? '127.0.0.1' : node;
}

/** A scheduler command preceded by the profile's login-node setup lines (each must succeed). */
export function onLogin(profile: IClusterProfile, command: string): string {
  const lines = profile.loginSetup ?? [];
  return lines.length === 0 ? command : `${lines.map(l => `{ ${l}\n}`).join(' && ')} && ${command}`;
}
