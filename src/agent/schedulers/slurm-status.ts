/**
 * What Slurm's answers mean: job states and pending reasons in words a user understands,
 * squeue's durations, host lists and JSON numbers, and the messages of a controller that
 * is down. Pure data and parsing, used by the Slurm adapter (slurm.ts).
 */
import type { IJobStatus } from './types';

/** Seconds in a squeue duration (`D-HH:MM:SS`, `HH:MM:SS`, `MM:SS`); undefined for UNLIMITED etc. */
export function parseDuration(s: string): number | undefined {
  const m = /^(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+)$/.exec(s.trim());
  if (!m) {
    return undefined;
  }
  const [, d, h, mi, se] = m;
  return Number(d ?? 0) * 86400 + Number(h ?? 0) * 3600 + Number(mi) * 60 + Number(se);
}

/** First host of a Slurm host list: `node[1-3,5]` → `node1`, `gpu[01-02],cpu1` → `gpu01`. */
export function firstNode(nodeList: string): string | undefined {
  const list = nodeList.trim();
  if (!list || list === '(null)' || list === 'None assigned') {
    return undefined;
  }
  // the first top-level item (commas inside brackets belong to a range)
  let depth = 0;
  let end = list.length;
  for (let i = 0; i < list.length; i++) {
    const c = list[i];
    if (c === '[') {
      depth++;
    } else if (c === ']') {
      depth--;
    } else if (c === ',' && depth === 0) {
      end = i;
      break;
    }
  }
  // each bracket group contributes its first value (`01-03` → `01`, padding kept)
  return list.slice(0, end).replace(/\[([^\]]*)\]/g, (_, inner: string) => inner.split(',')[0].split('-')[0]);
}

export interface IStateInfo {
  phase: IJobStatus['phase'];
  /** For ended jobs: why, in words a user understands. */
  reason?: string;
}

export const STATES: Record<string, IStateInfo> = {
  PENDING: { phase: 'pending' },
  CONFIGURING: { phase: 'pending' },
  REQUEUED: { phase: 'pending' },
  REQUEUE_FED: { phase: 'pending' },
  REQUEUE_HOLD: { phase: 'pending' },
  RESV_DEL_HOLD: { phase: 'pending' },
  SPECIAL_EXIT: { phase: 'pending' },
  RUNNING: { phase: 'running' },
  COMPLETING: { phase: 'running' },
  SIGNALING: { phase: 'running' },
  STAGE_OUT: { phase: 'running' },
  RESIZING: { phase: 'running' },
  SUSPENDED: { phase: 'running', reason: 'suspended by the scheduler' },
  STOPPED: { phase: 'running', reason: 'stopped by the scheduler' },
  COMPLETED: { phase: 'ended', reason: 'completed' },
  CANCELLED: { phase: 'ended', reason: 'cancelled' },
  FAILED: { phase: 'ended', reason: 'failed (the job exited with an error)' },
  TIMEOUT: { phase: 'ended', reason: 'walltime reached' },
  NODE_FAIL: { phase: 'ended', reason: 'node failure' },
  OUT_OF_MEMORY: { phase: 'ended', reason: 'out of memory' },
  PREEMPTED: { phase: 'ended', reason: 'preempted by another job' },
  BOOT_FAIL: { phase: 'ended', reason: 'the node failed to boot' },
  DEADLINE: { phase: 'ended', reason: 'deadline reached' },
  REVOKED: { phase: 'ended', reason: 'revoked (started on another cluster)' }
};

/** Pending reasons in words; `blocked`: the job cannot start as submitted. */
const PENDING_REASONS: Record<string, { text: string; blocked?: boolean }> = {
  None: { text: 'waiting to be scheduled' },
  Priority: { text: 'waiting for jobs with higher priority' },
  Resources: { text: 'waiting for free resources' },
  BeginTime: { text: 'waiting for its start time' },
  Dependency: { text: 'waiting for another job to finish' },
  DependencyNeverSatisfied: { text: 'its dependency can never be satisfied', blocked: true },
  JobHeldUser: { text: 'held by you (scontrol release to start it)' },
  JobHeldAdmin: { text: 'held by an administrator' },
  ReqNodeNotAvail: { text: 'the requested nodes are not available' },
  NodeDown: { text: 'a node it needs is down' },
  Reservation: { text: 'waiting for its reservation' },
  Licenses: { text: 'waiting for licenses' },
  Prolog: { text: 'running the prolog' },
  PartitionDown: { text: 'the partition is down' },
  PartitionInactive: { text: 'the partition is inactive' },
  PartitionTimeLimit: { text: "the walltime exceeds the partition's limit: the job will not start", blocked: true },
  PartitionNodeLimit: { text: 'the partition does not allow that many nodes: the job will not start', blocked: true },
  PartitionConfig: {
    text: 'no node of the partition has that many CPUs, that much memory or those GPUs: the job will not start',
    blocked: true
  },
  BadConstraints: { text: 'no node satisfies the constraints: the job will not start', blocked: true },
  InvalidAccount: { text: 'invalid account: the job will not start', blocked: true },
  InvalidQOS: { text: 'invalid QOS: the job will not start', blocked: true },
  AccountNotAllowed: { text: 'the account may not use this partition: the job will not start', blocked: true },
  QOSNotAllowed: { text: 'the QOS may not use this partition: the job will not start', blocked: true }
};

export function pendingReason(raw: string): { text?: string; blocked?: boolean } {
  const key = raw.split(/[,\s]/)[0];
  const known = PENDING_REASONS[key];
  if (known) {
    return known;
  }
  if (/^(QOS|Assoc)/.test(key)) {
    return { text: `a limit of your account or QOS is reached (${raw})` };
  }
  return { text: raw || undefined };
}

/** squeue's messages when slurmctld is down, slow or unreachable: the job's fate is unknown. */
export const CONTROLLER_TROUBLE =
  /Unable to contact slurm controller|Socket timed out|Connection refused|Connection timed out|Transport endpoint|Zero Bytes were transmitted|Communication connection failure|Slurm backup controller in standby|No route to host|Name or service not known|slurm_receive_msg|Resource temporarily unavailable|Insane message length|Protocol authentication error/i;

/** A number of squeue --json: plain (22.05) or `{set, infinite, number}` (23.02+); 0 and unset → undefined. */
export function num(v: unknown): number | undefined {
  if (typeof v === 'number') {
    return v || undefined;
  }
  if (v && typeof v === 'object') {
    const o = v as { set?: boolean; infinite?: boolean; number?: unknown };
    return o.set && !o.infinite && typeof o.number === 'number' ? o.number || undefined : undefined;
  }
  return undefined;
}

/** A time limit of UNLIMITED: `{infinite: true}` (23.02+) or Slurm's INFINITE (0xffffffff) and NO_VAL. */
export function isInfinite(v: unknown): boolean {
  return typeof v === 'number'
    ? v >= 0xfffffffe
    : Boolean(v && typeof v === 'object' && (v as { infinite?: boolean }).infinite);
}

/* ------------------------------------------------------------------------------------ */
