/**
 * PBS adapter (OpenPBS / PBS Professional, and Torque with `flavour: 'torque'`): job
 * script, qsub / qstat / qdel commands, and the mapping of PBS job states and exit
 * statuses to pending / running / ended / unknown.
 *
 * Pure: no I/O. Values are validated first (same rules and messages as the Slurm adapter)
 * and quoted where a shell reads them. Parsing is tested against outputs published in
 * public repositories and documentation (src/agent/__tests__/fixtures/pbs/README.md).
 * See docs/schedulers/pbs.md.
 */
import type { IJobAccounting, IResources } from '../../common/api';
import { cancelTolerating } from './cancel';
import { checkedResources, queueAndAccount } from './unsupported';
import { shQuote } from './shell';
import {
  InvalidRequestError,
  SchedulerUnavailableError,
  type ICommandResult,
  type IJobSpec,
  type IJobStatus,
  type ISchedulerAdapter
} from './types';
import {
  checkOption,
  eachDirective,
  type IOptionRules,
  fieldNamedIn,
  firstLines,
  intField,
  invalid,
  isSet,
  memoryAmount,
  nodesField,
  show,
  parseWalltime,
  statusOf
} from './validate';
import { pbsAccounting } from './accounting';
import { renderJobScript } from './job-script';

export type PbsFlavour = 'pbspro' | 'torque';

export interface IPbsOptions {
  /** `pbspro` (OpenPBS, PBS Professional; default) or `torque` (Torque / Moab). */
  flavour?: PbsFlavour;
}

/** `1234`, `1234.server`, `1234[].server` (array parent), `1234[7].server` (subjob). */
const JOB_ID_RE = /^\d{1,20}(\[\d{0,10}\])?(\.[A-Za-z0-9._-]{1,253})?$/;
/** `-X` or `-X value`: one option letter, one value without blanks, quotes or shell syntax. */
const DIRECTIVE_RE = /^-([A-Za-z])(?:\s+([A-Za-z0-9._,:/@%+=*&|!~^[\]-]{1,256}))?$/;

/** Options the adapter writes itself or that would break the session. */
const RESERVED_OPTIONS: Record<string, string> = {
  N: 'the job name is set by jupyterlab-remote-cluster itself',
  o: 'the output path is set by jupyterlab-remote-cluster itself',
  e: 'the error path is set by jupyterlab-remote-cluster itself',
  j: 'output and error files are set by jupyterlab-remote-cluster itself',
  d: 'the working directory is set by jupyterlab-remote-cluster itself',
  w: 'the working directory is set by jupyterlab-remote-cluster itself',
  D: 'the working directory is set by jupyterlab-remote-cluster itself',
  J: 'array jobs cannot host a session',
  t: 'array jobs cannot host a session',
  I: 'interactive jobs cannot host a session',
  X: 'interactive jobs cannot host a session',
  z: 'qsub must print the job id',
  C: 'the directive prefix cannot be changed',
  h: 'a held job would never start',
  u: 'the job runs as you'
};
/** Options that have a field of their own. */
const FIELD_OPTIONS: Record<string, string> = { q: 'partition', A: 'account' };
/** `-l` resources that have a field of their own. */
const FIELD_RESOURCES: Record<string, string> = {
  walltime: 'walltime',
  select: 'cpus',
  nodes: 'cpus',
  ncpus: 'cpus',
  ppn: 'cpus',
  mem: 'memory',
  ngpus: 'gpus',
  gpus: 'gpus'
};

/** `4G` → `4gb`, `500M` → `500mb`, `500` → `500mb` (megabytes, as for Slurm). */
/** PBS's size (`4gb`), `times` the amount given. */
function memoryField(v: unknown, times = 1): string {
  const { n, unit } = memoryAmount(v);
  return `${n * times}${(unit || 'M').toLowerCase()}b`;
}

/** Seconds as PBS's `HH:MM:SS` (hours may exceed 24). */
export function formatHms(secs: number): string {
  const two = (n: number) => String(n).padStart(2, '0');
  return `${two(Math.floor(secs / 3600))}:${two(Math.floor((secs % 3600) / 60))}:${two(secs % 60)}`;
}

/** Seconds in a PBS duration: `HH:MM:SS`, `MM:SS` or plain seconds; undefined otherwise. */
export function parsePbsDuration(s: unknown): number | undefined {
  if (typeof s === 'number' && Number.isFinite(s) && s >= 0) {
    return Math.floor(s);
  }
  if (typeof s !== 'string') {
    return undefined;
  }
  const m = /^(?:(?:(\d+):)?(\d+):)?(\d+)$/.exec(s.trim());
  if (!m) {
    return undefined;
  }
  return Number(m[1] ?? 0) * 3600 + Number(m[2] ?? 0) * 60 + Number(m[3]);
}

/** First host of an `exec_host` list: `node1/0*4+node2/0*4` → `node1`. */
export function firstExecHost(execHost: unknown): string | undefined {
  if (typeof execHost !== 'string') {
    return undefined;
  }
  const host = execHost.trim().split('+')[0].split('/')[0].trim();
  return host || undefined;
}

const OPTION_RULES: IOptionRules = {
  reserved: RESERVED_OPTIONS,
  fields: FIELD_OPTIONS,
  listOptions: ['l'],
  resources: FIELD_RESOURCES,
  resourceName: item => item.split(/[=:]/)[0].toLowerCase()
};

function directives(v: unknown): string[] {
  return eachDirective(
    v,
    'give a list of directives such as ["-l place=excl"]',
    DIRECTIVE_RE,
    'each directive must look like -X or -X value (one value, without spaces, quotes, ;, $, ` or line breaks)',
    (m, d) => {
      const [, opt, value] = m;
      const directive = checkOption(OPTION_RULES, d, opt, value);
      if (opt === 'W' && value && /^block=/i.test(value)) {
        throw invalid('extraDirectives', d, '-W block would keep qsub waiting until the job ends');
      }
      return directive;
    }
  );
}

/* ------------------------------------------------------------------------------------ */

/** Why a finished job ended, from `Exit_status` (PBS Pro and Torque share the signal rule). */
export function exitReason(flavour: PbsFlavour, status: number | undefined): string {
  if (status === undefined) {
    return 'ended before it ran (deleted while queued?)';
  }
  if (status === 0) {
    return 'completed';
  }
  if (status === 271) {
    return 'cancelled (killed by SIGTERM, e.g. qdel)';
  }
  if (status > 256) {
    const sig = status - 256;
    return sig === 9 ? 'killed (SIGKILL: qdel, or a limit enforced by the scheduler)' : `killed by signal ${sig}`;
  }
  if (status > 0) {
    return `failed (the job exited with code ${status})`;
  }
  const named: Record<number, string> =
    flavour === 'torque'
      ? {
          [-1]: 'could not be started (job execution failed before files were staged)',
          [-3]: 'could not be started (execution retry)',
          [-10]: 'memory limit exceeded',
          [-11]: 'walltime reached',
          [-12]: 'CPU time limit exceeded'
        }
      : {
          [-1]: 'could not be started (job execution failed before files were staged)',
          [-3]: 'could not be started (execution retry)',
          [-10]: 'could not be started (invalid user on the execution host)',
          [-26]: 'virtual memory limit exceeded',
          [-27]: 'memory limit exceeded',
          [-28]: 'CPU time limit exceeded',
          [-29]: 'walltime reached'
        };
  return named[status] ?? `failed to run (PBS execution error ${status})`;
}

interface IStateInfo {
  phase: IJobStatus['phase'];
  reason?: string;
}

const STATES: Record<string, IStateInfo> = {
  Q: { phase: 'pending', reason: 'waiting to be scheduled' },
  H: { phase: 'pending', reason: 'held' },
  W: { phase: 'pending', reason: 'waiting for its start time' },
  T: { phase: 'pending', reason: 'being moved to its execution queue' },
  M: { phase: 'pending', reason: 'moved to another server' },
  B: { phase: 'running' },
  R: { phase: 'running' },
  E: { phase: 'running', reason: 'exiting' },
  S: { phase: 'running', reason: 'suspended by the scheduler' },
  U: { phase: 'running', reason: 'suspended (the node is busy)' },
  F: { phase: 'ended' },
  C: { phase: 'ended' },
  X: { phase: 'ended' }
};

/** qstat's words when pbs_server cannot be reached: the job's fate is unknown. */
const SERVER_TROUBLE =
  /Connection refused|cannot connect to server|cannot connect to host|Connection timed out|No route to host|Name or service not known|communication failure|pbs_iff|premature end of message|Server shutting down|Cannot resolve|timed out/i;
/** qstat's words for an id it does not know (any more). */
const UNKNOWN_ID = /Unknown Job Id|Job has finished, use -x/i;

function guessField(text: string): string | undefined {
  return fieldNamedIn(text, [
    [/walltime/i, 'walltime'],
    [/\bmem\b|memory/i, 'memory'],
    [/gpu/i, 'gpus'],
    [/ncpus|ppn|cpu/i, 'cpus'],
    [/account|project/i, 'account'],
    [/queue/i, 'partition']
  ]);
}

/** A job's attributes, flat: `Resource_List.walltime` etc. (JSON nests them, text does not). */
type Attrs = Record<string, unknown>;

function flatten(obj: Record<string, unknown>): Attrs {
  const out: Attrs = {};
  for (const [k, v] of Object.entries(obj)) {
    if (v && typeof v === 'object' && !Array.isArray(v) && k !== 'Variable_List') {
      for (const [k2, v2] of Object.entries(v as Record<string, unknown>)) {
        out[`${k}.${k2}`] = v2;
      }
    } else {
      out[k] = v;
    }
  }
  return out;
}

/** Blocks of `qstat -f` text (`Job Id: X` then `    key = value`, tab-indented continuations). */
export function parseQstatText(text: string): Map<string, Attrs> {
  const jobs = new Map<string, Attrs>();
  let current: Attrs | undefined;
  let lastKey: string | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\r$/, '');
    const head = /^Job Id:\s*(\S+)\s*$/.exec(line);
    if (head) {
      current = {};
      jobs.set(head[1], current);
      lastKey = undefined;
      continue;
    }
    if (!current) {
      continue;
    }
    // attributes are indented by 4 spaces; a wrapped value continues on lines indented
    // by a tab (Torque) or by more spaces (some builds); `qstat -f -1` does not wrap
    const kv = /^ {4}([A-Za-z_][A-Za-z0-9_.]*) = ?(.*)$/.exec(line);
    if (kv) {
      lastKey = kv[1];
      current[lastKey] = kv[2];
    } else if (lastKey && /^(\t| {5,})\S/.test(line)) {
      current[lastKey] = `${String(current[lastKey])}${line.trim()}`;
    }
  }
  return jobs;
}

/** The numeric part of a job id (`1234.server.domain` → `1234`), to match short and long server names. */
function idKey(id: string): string {
  return id.split('.')[0];
}

/* ------------------------------------------------------------------------------------ */

export class PbsAdapter implements ISchedulerAdapter {
  readonly name: string;
  readonly title: string;
  // pbsdsh: a task of this job on one of its hosts (PBS Pro and Torque alike)
  readonly multiNode = {
    hosts: 'awk \'!seen[$0]++\' "$PBS_NODEFILE"',
    launch: 'pbsdsh -h {host} {command}'
  };
  readonly elastic = { config: 'pbs', cancelTagged: 'qselect -N {name} -u "$(id -un)" | xargs -r qdel' };
  readonly flavour: PbsFlavour;

  constructor(options: IPbsOptions = {}) {
    const flavour = options.flavour ?? 'pbspro';
    if (flavour !== 'pbspro' && flavour !== 'torque') {
      throw new InvalidRequestError(`Invalid PBS flavour ${show(flavour)}: use "pbspro" or "torque".`, 'flavour');
    }
    this.flavour = flavour;
    this.name = flavour === 'torque' ? 'torque' : 'pbs';
    this.title = flavour === 'torque' ? 'Torque' : 'PBS';
  }

  validate(resources: IResources): void {
    this.directiveLines(resources);
  }

  /** The `#PBS` options for the resources (validating every value on the way). */
  private directiveLines(resources: IResources): string[] {
    const r = checkedResources(resources, this.flavour === 'torque' ? 'Torque' : 'PBS', {
      qos: 'leave it empty and choose a queue (partition)',
      constraint: 'leave it empty (node properties need -l nodes/select, which the cpus field writes)',
      reservation: "leave it empty and put the reservation's queue (e.g. R123) in partition",
      memoryPerCpu: 'leave it empty and give the memory for the whole job in memory'
    });
    const lines = queueAndAccount(r, '-A');
    if (isSet(r.walltime)) {
      lines.push(`-l walltime=${formatHms(parseWalltime(r.walltime))}`);
    }
    const nodes = nodesField(r);
    const cpus = isSet(r.cpus) ? intField('cpus', r.cpus, 1, 4096) : 1;
    const mem = isSet(r.memory) ? memoryField(r.memory) : undefined;
    const gpus = isSet(r.gpus) ? intField('gpus', r.gpus, 0, 64) : 0;
    if (this.flavour === 'torque') {
      lines.push(`-l nodes=${nodes}:ppn=${cpus}${gpus > 0 ? `:gpus=${gpus}` : ''}`);
      if (mem) {
        // Torque's mem is for the whole job: the memory field is per node
        lines.push(`-l mem=${nodes === 1 ? mem : memoryField(r.memory, nodes)}`);
      }
    } else {
      // one chunk per node, each with the node's resources; scatter: never two on one host
      lines.push(`-l select=${nodes}:ncpus=${cpus}${mem ? `:mem=${mem}` : ''}${gpus > 0 ? `:ngpus=${gpus}` : ''}`);
      if (nodes > 1) {
        lines.push('-l place=scatter');
      }
    }
    lines.push(...directives(r.extraDirectives));
    return lines;
  }

  renderScript(spec: IJobSpec): string {
    return renderJobScript(spec, {
      title: 'PBS',
      // qsub reads #PBS lines up to the first command
      directive: /^\s*#\s*PBS/i,
      directiveHint: 'put PBS directives in extraDirectives, not in setup lines',
      header: ({ name, stdout, stderr, workdir }) => [
        ...[
          `-N ${name}`,
          `-o ${stdout}`,
          `-e ${stderr}`,
          '-j n',
          '-S /bin/sh',
          ...this.directiveLines(spec.resources ?? {})
        ].map(d => `#PBS ${d}`),
        '',
        '# PBS has no working-directory directive (jobs start in $HOME)',
        `cd ${shQuote(workdir)} || exit 1`
      ]
    });
  }

  submitCommand(scriptPath: string): string {
    if (typeof scriptPath !== 'string' || !scriptPath || /[\0\r\n]/.test(scriptPath)) {
      throw invalid('scriptPath', scriptPath, 'must be a path on one line');
    }
    return `qsub ${shQuote(scriptPath)}`;
  }

  parseSubmit(result: ICommandResult): string {
    const stdout = result.stdout ?? '';
    const stderr = result.stderr ?? '';
    if (result.code === 0) {
      const lines = stdout
        .split('\n')
        .map(l => l.trim())
        .filter(Boolean);
      const last = lines[lines.length - 1] ?? '';
      if (JOB_ID_RE.test(last)) {
        return last;
      }
      throw new Error(`qsub printed no job id: ${firstLines(stdout + '\n' + stderr, 3) || '(nothing)'}`);
    }
    if (result.code === null || SERVER_TROUBLE.test(stderr)) {
      throw new SchedulerUnavailableError(`PBS did not answer the submission (${firstLines(stderr) || 'no output'}).`);
    }
    const errors = stderr
      .split('\n')
      .map(l => l.trim())
      .filter(Boolean)
      .map(l => l.replace(/^qsub:\s*/i, '').replace(/^(error|fatal):\s*/i, ''));
    const text = errors.join(' ');
    let message = `PBS refused the job: ${text || `qsub exited with code ${result.code}`}`;
    if (!/[.!?]$/.test(message)) {
      message += '.';
    }
    throw new InvalidRequestError(message, guessField(text));
  }

  private checkIds(jobIds: string[]): string[] {
    const ids = [...new Set(jobIds)];
    if (!ids.length) {
      throw new InvalidRequestError('No job ids to query.', 'jobIds');
    }
    for (const id of ids) {
      if (typeof id !== 'string' || !JOB_ID_RE.test(id)) {
        throw invalid('jobId', id, 'PBS job ids look like 1234 or 1234.server');
      }
    }
    return ids;
  }

  statusCommand(jobIds: string[]): string {
    const ids = this.checkIds(jobIds);
    // -x: finished jobs too (job history, PBS Pro); Torque keeps completed jobs (state C)
    // for keep_completed seconds. -1 (Torque): no line wrapping.
    // ids are quoted: `1234[].server` would be a glob pattern to the shell
    const list = ids.map(shQuote).join(' ');
    return this.flavour === 'torque' ? `qstat -f -1 ${list}` : `qstat -f -F json -x ${list}`;
  }

  parseStatus(jobIds: string[], result: ICommandResult): Map<string, IJobStatus> {
    const { all, unknown } = statusOf(jobIds);
    const stdout = result.stdout ?? '';
    const stderr = result.stderr ?? '';

    if (result.code === null) {
      return unknown('qstat did not finish (slow PBS server?)');
    }
    if (SERVER_TROUBLE.test(stderr)) {
      return unknown(`PBS server not reachable: ${firstLines(stderr)}`);
    }
    const otherErrors = stderr
      .split('\n')
      .map(l => l.trim())
      .filter(l => l && !UNKNOWN_ID.test(l));
    if (result.code !== 0 && otherErrors.length && !stdout.trim()) {
      return unknown(`qstat failed (exit code ${result.code}): ${firstLines(otherErrors.join('\n'))}`);
    }

    let jobs: Map<string, Attrs>;
    try {
      jobs = this.qstatJobs(stdout);
    } catch (err) {
      return unknown((err as Error).message);
    }
    if (result.code !== 0 && !jobs.size && otherErrors.length) {
      return unknown(`qstat failed (exit code ${result.code}): ${firstLines(otherErrors.join('\n'))}`);
    }
    const byKey = new Map<string, Attrs>();
    for (const [id, attrs] of jobs) {
      byKey.set(idKey(id), attrs);
    }
    return all(jobId => {
      const attrs = jobs.get(jobId) ?? byKey.get(idKey(jobId));
      return attrs
        ? this.jobStatus(jobId, attrs)
        : { jobId, phase: 'ended', nativeState: '', reason: 'left the queue' };
    });
  }

  private jobStatus(jobId: string, a: Attrs): IJobStatus {
    const state = String(a['job_state'] ?? '')
      .trim()
      .toUpperCase();
    const info = STATES[state];
    const comment = typeof a['comment'] === 'string' && a['comment'].trim() ? a['comment'].trim() : undefined;
    if (!info) {
      return { jobId, phase: 'unknown', nativeState: state, reason: `unrecognised PBS state ${state || '(none)'}` };
    }
    const st: IJobStatus = { jobId, phase: info.phase, nativeState: state };
    if (comment) {
      st.nativeReason = comment;
    }
    if (info.phase === 'pending') {
      // the scheduler's comment says why (`Not Running: Insufficient amount of resource: ncpus`)
      st.reason = comment ? comment.replace(/^Not Running:\s*/i, '') : info.reason;
      if (comment && /Can Never Run/i.test(comment)) {
        st.blocked = true;
      }
    } else if (info.phase === 'running') {
      st.node = firstExecHost(a['exec_host']);
      const remaining = parsePbsDuration(a['Walltime.Remaining']);
      const limit = parsePbsDuration(a['Resource_List.walltime']);
      const used = parsePbsDuration(a['resources_used.walltime']);
      if (remaining !== undefined) {
        st.timeLeftSeconds = remaining;
      } else if (limit !== undefined) {
        st.timeLeftSeconds = Math.max(0, limit - (used ?? 0));
      }
      if (info.reason) {
        st.reason = info.reason;
      }
    } else {
      // PBS Pro and old Torque: Exit_status; Torque 4+: exit_status
      const raw = a['Exit_status'] ?? a['exit_status'];
      const status = typeof raw === 'number' ? raw : /^-?\d+$/.test(String(raw ?? '').trim()) ? Number(raw) : undefined;
      st.reason = exitReason(this.flavour, status);
      if (status !== undefined) {
        st.nativeReason = `Exit_status=${status}`;
      }
    }
    return st;
  }

  cancelCommand(jobId: string): string {
    if (typeof jobId !== 'string' || !JOB_ID_RE.test(jobId)) {
      throw invalid('jobId', jobId, 'PBS job ids look like 1234 or 1234.server');
    }
    // a job that ended meanwhile: PBS Pro "Job has finished", Torque "Invalid state for job - COMPLETE"
    return cancelTolerating(
      `qdel ${shQuote(jobId)}`,
      'Job has finished|Unknown Job Id|Invalid state for job - COMPLETE'
    );
  }

  extendCommand(jobId: string, r: IResources): string {
    this.cancelCommand(jobId);
    return `qalter -l walltime=${formatHms(parseWalltime(r.walltime))} ${shQuote(jobId)}`;
  }

  /** The status command's job history (PBS Pro `-x`; Torque keeps completed jobs a while). */
  accountingCommand(jobId: string): string {
    return this.statusCommand([jobId]);
  }

  parseAccounting(jobId: string, result: ICommandResult): IJobAccounting | undefined {
    let jobs: Map<string, Attrs>;
    try {
      jobs = this.qstatJobs(result.stdout ?? '');
    } catch {
      return undefined;
    }
    const attrs = jobs.get(jobId) ?? [...jobs].find(([id]) => idKey(id) === idKey(jobId))?.[1];
    return attrs ? pbsAccounting(attrs, 'qstat') : undefined;
  }

  /** Each job's attributes (flattened: `resources_used.mem`) in qstat -f's output; throws when unreadable. */
  private qstatJobs(stdout: string): Map<string, Attrs> {
    if (this.flavour === 'torque') {
      return parseQstatText(stdout);
    }
    const jobs = new Map<string, Attrs>();
    if (!stdout.trim()) {
      return jobs;
    }
    let doc: unknown;
    try {
      doc = JSON.parse(stdout);
    } catch {
      throw new Error(`unexpected qstat output (not JSON): ${show(firstLines(stdout, 1))}`);
    }
    const list = (doc as { Jobs?: unknown } | null)?.Jobs;
    if (list !== undefined && (typeof list !== 'object' || list === null)) {
      throw new Error('unexpected qstat output: "Jobs" is not an object');
    }
    for (const [id, attrs] of Object.entries((list ?? {}) as Record<string, unknown>)) {
      if (attrs && typeof attrs === 'object') {
        jobs.set(id, flatten(attrs as Record<string, unknown>));
      }
    }
    return jobs;
  }
}
