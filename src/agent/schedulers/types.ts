/**
 * One interface for every batch system. Adapters are pure: they turn resources into a
 * job script and commands, and scheduler output into states. The session manager runs
 * the commands over the cluster's SSH connection, so adapters are tested against real
 * command outputs (fixtures) and, for Slurm, against the testbed.
 */
import type { IJobAccounting, IResources } from '../../common/api';

/** A problem with user input: the message is shown as is, nothing is submitted. */
export class InvalidRequestError extends Error {
  constructor(
    message: string,
    readonly field?: string
  ) {
    super(message);
  }
}

/** What the request names does not exist (any more): HTTP 404, "gone for good". */
export class NotFoundError extends InvalidRequestError {}

/** What the request names exists but is not in a state for it (a session not running): 409. */
export class ConflictError extends InvalidRequestError {}

/**
 * The scheduler could not be reached or did not answer (controller down, timeout). Not the
 * user's fault, and the outcome is unknown: a submit that timed out may still have queued
 * the job (look it up by job name before submitting again).
 */
export class SchedulerUnavailableError extends Error {}

export interface IJobSpec {
  /** Job name as the scheduler shows it. */
  name: string;
  /** Absolute remote directory the job starts in (the session's private directory). */
  workdir: string;
  /** Absolute remote paths for the job's stdout and stderr. */
  stdoutPath: string;
  stderrPath: string;
  resources: IResources;
  /** Shell lines from the profile, run before `command` (module load, venv activation). */
  setup: string[];
  /** The command the job runs (already shell-quoted): the remote helper. */
  command: string;
  /**
   * The Python `command` runs directly (not through a container wrapper): the script looks
   * for it after the setup lines, so a wrong one is said in one sentence.
   */
  python?: string;
}

export type JobPhase = 'pending' | 'running' | 'ended' | 'unknown';

export interface IJobStatus {
  jobId: string;
  phase: JobPhase;
  /** The scheduler's own state name, e.g. PENDING, R, COMPLETED. */
  nativeState: string;
  /** Queue reason (pending) or end reason (ended), in words a user understands. */
  reason?: string;
  /** Node (first node) the job runs on. */
  node?: string;
  timeLeftSeconds?: number;
  /** ISO 8601 estimated start, where the scheduler gives one. */
  startEstimate?: string;
  /** The scheduler's own reason code (e.g. `Priority`, `PartitionTimeLimit`), for logs and details. */
  nativeReason?: string;
  /**
   * Pending, and the scheduler will never start it as submitted (walltime over the
   * partition's limit, a request no node can satisfy, an invalid account): cancel it and
   * tell the user `reason`.
   */
  blocked?: boolean;
}

/** What a remote command returned. */
export interface ICommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface ISchedulerAdapter {
  readonly name: string;
  /** The batch system's name as users know it, for messages ("Grid Engine"). */
  readonly title: string;
  /**
   * The host is its own login node (a plain SSH host): the helper listens on loopback
   * only, and is reached there (the host's own name may not resolve on it).
   */
  readonly helperOnLoopback?: boolean;
  /**
   * Sessions on several nodes (`nodes` > 1): `hosts`, a shell command the job runs on its
   * first node to list the allocation's hosts, and `launch`, the shell line that runs
   * `{command}` on `{host}` through the batch system's own launcher ({threads}: CPUs per
   * node, {name}: the worker's name). Absent: the adapter refuses `nodes` > 1.
   */
  readonly multiNode?: { hosts: string; launch: string };
  /**
   * Elastic Dask workers a notebook submits with dask-jobqueue (docs/scale-out.md):
   * `config`, the config name of the batch system's dask-jobqueue cluster class ("slurm"
   * for SLURMCluster), which the helper preconfigures in the kernels' environment;
   * `cancelTagged`, the shell line that cancels every job of this user named `{name}`
   * (the session's tag); `walltime`, the profile's walltime in the form dask-jobqueue
   * passes to this batch system (absent: as the profile has it); `extra`, more of the
   * class's config (`{name}`: the tag). Absent: not preconfigured for this batch system.
   */
  readonly elastic?: {
    config: string;
    cancelTagged: string;
    walltime?: (w: string) => string;
    extra?: Record<string, unknown>;
  };
  /** An instance for one cluster, for adapters that learn per cluster (Slurm: version, --me, JSON). */
  forCluster?(clusterKey: string): ISchedulerAdapter;
  /** Throws InvalidRequestError naming the field for any value it cannot use safely. */
  validate(resources: IResources): void;
  /** The complete job script (a POSIX sh script with the scheduler's directives). */
  renderScript(spec: IJobSpec): string;
  /** Shell command that submits the script at `scriptPath` and prints the job id. */
  submitCommand(scriptPath: string): string;
  /**
   * Job id from the submit command's result; throws InvalidRequestError with the
   * scheduler's message if it refused, SchedulerUnavailableError if it did not answer.
   */
  parseSubmit(result: ICommandResult): string;
  /** One command that reports the state of all `jobIds`. */
  statusCommand(jobIds: string[]): string;
  /**
   * States of `jobIds` from the status command's result. Jobs the scheduler no longer
   * lists are `ended` (reason: left the queue); a controller that cannot be reached
   * makes every job `unknown`, never `ended`.
   */
  parseStatus(jobIds: string[], result: ICommandResult): Map<string, IJobStatus>;
  cancelCommand(jobId: string): string;
  /**
   * Shell command that asks the batch system to give job `jobId` `addSeconds` more
   * walltime (`resources`: the session's, with the new total walltime). Users are
   * usually refused; the command's answer is shown as it is. Absent: not possible.
   */
  extendCommand?(jobId: string, resources: IResources, addSeconds: number): string;
  /**
   * A command that asks when a job with `resources` would start, submitting nothing
   * (Slurm: `sbatch --test-only`); its output (stdout and stderr) goes to
   * parseStartEstimate. Absent: the batch system gives no estimate.
   */
  startEstimateCommand?(resources: IResources): string;
  /** The expected start in the cluster's local time (`YYYY-MM-DDTHH:MM:SS`), or why there is none. */
  parseStartEstimate?(output: string): { start?: string; error?: string };
  /**
   * A command that reports a finished job's accounting (accounting.ts); parseAccounting
   * reads its result, undefined where the site keeps none. Absent: no accounting.
   */
  accountingCommand?(jobId: string): string;
  parseAccounting?(jobId: string, result: ICommandResult): IJobAccounting | undefined;
}
