/**
 * Slurm adapter: job script, sbatch / squeue / scancel commands, and the mapping of
 * Slurm's states and reasons to pending / running / ended / unknown.
 *
 * Pure: no I/O. Commands are POSIX sh; every interpolated value is validated first and
 * quoted where a shell reads it. Parsing is tested against outputs recorded on a real
 * Slurm 22.05 (src/agent/__tests__/fixtures/slurm/). See docs/schedulers/slurm.md.
 */
import type { IJobAccounting, IResources } from '../../common/api';
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
  eachDirective,
  endWarningLead,
  fieldNamedIn,
  firstLines,
  intField,
  invalid,
  isSet,
  memoryAmount,
  nameField,
  nodesField,
  parseWalltime,
  show,
  statusOf
} from './validate';
import { parseSacct, SACCT_FIELDS } from './accounting';
import { renderJobScript } from './job-script';
import { CONTROLLER_TROUBLE, firstNode, isInfinite, num, parseDuration, pendingReason, STATES } from './slurm-status';

export { firstNode, parseDuration } from './slurm-status';
export { parseWalltime } from './validate';

/** Resources as the Slurm adapter reads them (IResources has every Slurm field now). */
export type ISlurmResources = IResources;

/**
 * What the adapter learned about one cluster's Slurm (see SlurmAdapter.forCluster): its
 * version, from `squeue --version` in the first status query, and whether `--me` works.
 */
export interface ISlurmFeatures {
  /** [major, minor], e.g. [22, 5]. */
  version?: [number, number];
  /** false once squeue said "unrecognized option '--me'" (Slurm < 20.11). */
  me?: boolean;
  /** false once `squeue --json` failed (no JSON serializer plugin installed). */
  json?: boolean;
}

/** ASCII unit separator: cannot appear in job names, reasons or node lists. */
export const FIELD_SEPARATOR = '\x1f';
/** squeue fields, in order: job id, long state, reason, node list, time left, start time. */
const SQUEUE_FIELDS = ['%i', '%T', '%r', '%N', '%L', '%S'];

const JOB_ID_RE = /^\d{1,20}(_\d{1,10})?$/;
/** Slurm's constraint syntax: features joined by & | , with [ ] ( ) and *count. */
const CONSTRAINT_RE = /^[A-Za-z0-9._:*&|,()[\]-]{1,256}$/;
/** `--name` or `--name=value`; #SBATCH lines are not read by a shell, but keep them plain. */
const DIRECTIVE_RE = /^--([A-Za-z][A-Za-z0-9-]{0,63})(?:=([A-Za-z0-9._,:/@%+=*&|!~^[\]-]{1,256}))?$/;

/** Directives the adapter writes itself: the session depends on them. */
const RESERVED_DIRECTIVES = [
  'job-name',
  'output',
  'error',
  'input',
  'chdir',
  'array',
  'wrap',
  'parsable',
  'test-only',
  // the end-of-walltime warning the helper handles (SIGUSR1 to the batch shell, which is the helper)
  'signal',
  // one task per node: the helper starts the workers on the other nodes itself
  'ntasks',
  'ntasks-per-node'
];
/** Directives that have a field of their own. */
const FIELD_DIRECTIVES: Record<string, string> = {
  partition: 'partition',
  account: 'account',
  time: 'walltime',
  nodes: 'nodes',
  'cpus-per-task': 'cpus',
  mem: 'memory',
  'mem-per-cpu': 'memoryPerCpu',
  qos: 'qos',
  constraint: 'constraint',
  reservation: 'reservation'
};
/** Directives that would request GPUs a second time when the gpus field is set. */
const GPU_DIRECTIVES = ['gres', 'gpus', 'gpus-per-node', 'gpus-per-task'];

function memoryField(v: unknown, field = 'memory'): string {
  const { n, unit } = memoryAmount(v, field);
  return `${n}${unit}`;
}

function directives(v: unknown, gpus: number): string[] {
  return eachDirective(
    v,
    'give a list of directives such as ["--qos=short"]',
    DIRECTIVE_RE,
    'each directive must look like --name or --name=value, without spaces, quotes, ;, $, ` or line breaks',
    (m, d) => {
      const name = m[1].toLowerCase();
      // sbatch accepts unambiguous prefixes of long options (--out = --output): check prefixes too
      const reserved = RESERVED_DIRECTIVES.find(r => r.startsWith(name));
      if (reserved) {
        throw invalid('extraDirectives', d, `--${reserved} is set by jupyterlab-remote-cluster itself`);
      }
      const field = Object.keys(FIELD_DIRECTIVES).find(f => f.startsWith(name));
      if (field) {
        throw invalid('extraDirectives', d, `use the ${FIELD_DIRECTIVES[field]} field instead`);
      }
      if (GPU_DIRECTIVES.includes(name) && gpus > 0) {
        throw invalid(
          'extraDirectives',
          d,
          `with a --${name} directive, leave the gpus field at 0 and request GPUs there`
        );
      }
      return d.trim();
    }
  );
}

/** Which resource field an sbatch error is about, from its words. */
function guessField(text: string): string | undefined {
  return fieldNamedIn(text, [
    [/feature|constraint/i, 'constraint'],
    [/reservation/i, 'reservation'],
    [/partition/i, 'partition'],
    [/time limit|time-min|--time|walltime/i, 'walltime'],
    [/account|association/i, 'account'],
    [/qos/i, 'qos'],
    [/memory|--mem/i, 'memory'],
    [/gres|gpu/i, 'gpus'],
    [/cpu/i, 'cpus']
  ]);
}

const ME_MIN: [number, number] = [20, 11];
const JSON_MIN: [number, number] = [23, 2];

function atLeast(v: [number, number], min: [number, number]): boolean {
  return v[0] > min[0] || (v[0] === min[0] && v[1] >= min[1]);
}

export class SlurmAdapter implements ISchedulerAdapter {
  readonly name = 'slurm';
  readonly title = 'Slurm';
  // --overlap: the step shares the allocation with the batch step (Slurm >= 20.11)
  readonly multiNode = {
    hosts: 'scontrol show hostnames "$SLURM_JOB_NODELIST"',
    launch:
      'srun --overlap --nodes=1 --ntasks=1 --nodelist={host} --cpus-per-task={threads} --kill-on-bad-exit=0 --job-name={name} {command}'
  };
  readonly elastic = { config: 'slurm', cancelTagged: 'scancel --name={name} --user="$(id -un)"' };
  private readonly clusters = new Map<string, SlurmAdapter>();

  /** `features`: what is known of the cluster's Slurm (learned by status queries when empty). */
  constructor(readonly features: ISlurmFeatures = {}) {}

  validate(resources: IResources): void {
    this.directiveLines(resources);
  }

  /** The #SBATCH lines for the resources (validating every value on the way). */
  private directiveLines(resources: IResources): string[] {
    if (typeof resources !== 'object' || resources === null) {
      throw new InvalidRequestError('Resources must be an object.', 'resources');
    }
    const r = resources as ISlurmResources;
    if (isSet(r.parallelEnvironment)) {
      throw invalid('parallelEnvironment', r.parallelEnvironment, 'Slurm has no parallel environments: leave it empty');
    }
    const nodes = nodesField(r);
    // one task per node, with the node's CPUs: the batch step on the first node runs the
    // helper, `srun --overlap` one worker on each of the others
    const lines: string[] = [`--nodes=${nodes}`, nodes === 1 ? '--ntasks=1' : '--ntasks-per-node=1'];
    if (isSet(r.partition)) {
      lines.push(`--partition=${nameField('partition', r.partition)}`);
    }
    if (isSet(r.account)) {
      lines.push(`--account=${nameField('account', r.account)}`);
    }
    if (isSet(r.qos)) {
      lines.push(`--qos=${nameField('qos', r.qos)}`);
    }
    if (isSet(r.walltime)) {
      parseWalltime(r.walltime);
      lines.push(`--time=${String(r.walltime).trim()}`);
    }
    if (isSet(r.cpus)) {
      lines.push(`--cpus-per-task=${intField('cpus', r.cpus, 1, 4096)}`);
    }
    if (isSet(r.memory) && isSet(r.memoryPerCpu)) {
      throw new InvalidRequestError(
        'Set either memory (per node) or memoryPerCpu, not both: Slurm refuses --mem together with --mem-per-cpu.',
        'memoryPerCpu'
      );
    }
    if (isSet(r.memory)) {
      lines.push(`--mem=${memoryField(r.memory)}`);
    }
    if (isSet(r.memoryPerCpu)) {
      lines.push(`--mem-per-cpu=${memoryField(r.memoryPerCpu, 'memoryPerCpu')}`);
    }
    // --gres=gpu:N rather than --gpus=N: both work with select/cons_tres (22.05 testbed), but
    // --gres also works with select/cons_res and Slurm before 19.05.
    const gpus = isSet(r.gpus) ? intField('gpus', r.gpus, 0, 64) : 0;
    if (gpus > 0) {
      lines.push(`--gres=gpu:${gpus}`);
    }
    if (isSet(r.constraint)) {
      if (typeof r.constraint !== 'string' || !CONSTRAINT_RE.test(r.constraint.trim())) {
        throw invalid(
          'constraint',
          r.constraint,
          'use node features joined by & (and), | (or) or , e.g. bigmem or haswell&ib'
        );
      }
      lines.push(`--constraint=${r.constraint.trim()}`);
    }
    if (isSet(r.reservation)) {
      lines.push(`--reservation=${nameField('reservation', r.reservation)}`);
    }
    lines.push(...directives(r.extraDirectives, gpus));
    return lines;
  }

  renderScript(spec: IJobSpec): string {
    return renderJobScript(spec, {
      title: 'Slurm',
      // sbatch reads #SBATCH lines up to the first command
      directive: /^\s*#\s*SBATCH/i,
      directiveHint: 'put Slurm directives in extraDirectives, not in setup lines',
      header: ({ name, stdout, stderr, workdir }) =>
        [
          `--job-name=${name}`,
          `--output=${stdout}`,
          `--error=${stderr}`,
          `--chdir=${workdir}`,
          `--signal=B:USR1@${endWarningLead(spec.resources?.walltime)}`,
          ...this.directiveLines(spec.resources ?? {})
        ].map(d => `#SBATCH ${d}`)
    });
  }

  submitCommand(scriptPath: string): string {
    if (typeof scriptPath !== 'string' || !scriptPath || /[\0\r\n]/.test(scriptPath)) {
      throw invalid('scriptPath', scriptPath, 'must be a path on one line');
    }
    return `sbatch --parsable ${shQuote(scriptPath)}`;
  }

  parseSubmit(result: ICommandResult): string {
    const stdout = result.stdout ?? '';
    const stderr = result.stderr ?? '';
    if (result.code === 0) {
      // --parsable prints `id` or `id;cluster`; warnings go to stderr
      const lines = stdout
        .split('\n')
        .map(l => l.trim())
        .filter(Boolean);
      const m = /^(\d+)(?:;[A-Za-z0-9._-]+)?$/.exec(lines[lines.length - 1] ?? '');
      if (m) {
        return m[1];
      }
      throw new Error(`sbatch printed no job id: ${firstLines(stdout + '\n' + stderr, 3) || '(nothing)'}`);
    }
    if (result.code === null || CONTROLLER_TROUBLE.test(stderr)) {
      throw new SchedulerUnavailableError(
        `Slurm did not answer the submission (${firstLines(stderr) || 'no output'}).`
      );
    }
    const lines = stderr
      .split('\n')
      .map(l => l.trim())
      .filter(Boolean);
    const isError = (l: string) => /^sbatch:\s*(error|fatal):/i.test(l);
    // errors only (sbatch may also print warnings), without sbatch's prefix
    const errors = (lines.some(isError) ? lines.filter(isError) : lines).map(l =>
      l.replace(/^sbatch:\s*(error|fatal):\s*/i, '')
    );
    const failed = errors.find(l => /^Batch job submission failed:/i.test(l));
    const main = failed ? failed.replace(/^Batch job submission failed:\s*/i, '') : errors[errors.length - 1];
    const details = errors.filter(l => l !== failed && l !== main);
    const text = [main, ...details].join(' ');
    let message = `Slurm refused the job: ${main ?? `sbatch exited with code ${result.code}`}`;
    if (details.length) {
      message += ` (${details.join('; ')})`;
    }
    if (!/[.!?]$/.test(message)) {
      message += '.';
    }
    if (/node configuration is not available/i.test(text)) {
      message += ' No node of the partition has that many CPUs, that much memory or those GPUs.';
    }
    throw new InvalidRequestError(message, guessField(text));
  }

  /**
   * The adapter for one cluster (by the manager's cluster key): it remembers what it learned
   * about that cluster's Slurm (version, `--me`, JSON) so the probe runs once per cluster.
   */
  forCluster(key: string): SlurmAdapter {
    let a = this.clusters.get(key);
    if (!a) {
      a = new SlurmAdapter();
      this.clusters.set(key, a);
    }
    return a;
  }

  /**
   * How the next status query is made: `json` on Slurm >= 23.02 (its `squeue --json` honours
   * --jobs and --me; 22.05's ignores every filter and dumps the whole cluster's queue, too
   * heavy for a poll), else the text format. The first query of a cluster also prints
   * `squeue --version` (a local call, no controller RPC).
   */
  get statusFormat(): 'json' | 'text' {
    const v = this.features.version;
    return v && atLeast(v, JSON_MIN) && this.features.json !== false ? 'json' : 'text';
  }

  statusCommand(jobIds: string[]): string {
    const ids = [...new Set(jobIds)];
    if (!ids.length) {
      throw new InvalidRequestError('No job ids to query.', 'jobIds');
    }
    for (const id of ids) {
      if (typeof id !== 'string' || !JOB_ID_RE.test(id)) {
        throw invalid('jobId', id, 'Slurm job ids are digits (or digits_digits)');
      }
    }
    // Only our own jobs (an id reused by someone else is not ours), and with one user,
    // squeue asks slurmctld for that user's jobs only (REQUEST_JOB_USER_INFO), not all jobs.
    // `--me` needs Slurm 20.11.
    const user = this.features.me === false ? '--user="${USER:-$(id -un)}"' : '--me';
    const probe = this.features.version ? '' : 'squeue --version; ';
    if (this.statusFormat === 'json') {
      return `${probe}squeue --json ${user} --states=all --jobs=${ids.join(',')}`;
    }
    // The separator is made by printf in the remote shell: no control byte travels in the
    // command. TZ=UTC + SLURM_TIME_FORMAT=standard: start times we can label as UTC, whatever
    // the user's environment says. --states=all: finished jobs too (until MinJobAge).
    const format = SQUEUE_FIELDS.join('$s');
    return (
      `s=$(printf '\\037'); ${probe}TZ=UTC SLURM_TIME_FORMAT=standard squeue ${user} --noheader --states=all ` +
      `--jobs=${ids.join(',')} --format="${format}"`
    );
  }

  parseStatus(jobIds: string[], result: ICommandResult): Map<string, IJobStatus> {
    const { all, unknown } = statusOf(jobIds);
    let stdout = result.stdout ?? '';
    const stderr = result.stderr ?? '';

    // The version probe of a cluster's first query: `slurm 23.02.6` (`slurm-wlm` on Debian).
    const v = /^slurm(?:-wlm)? (\d+)\.(\d+)\S*\r?\n/.exec(stdout);
    if (v) {
      stdout = stdout.slice(v[0].length);
      this.features.version = [Number(v[1]), Number(v[2])];
      if (!atLeast(this.features.version, ME_MIN)) {
        this.features.me = false;
      }
    }
    if (result.code === null) {
      return unknown('squeue did not finish (slow Slurm controller?)');
    }
    if (CONTROLLER_TROUBLE.test(stderr) && (result.code !== 0 || !stdout.trim())) {
      return unknown(`Slurm controller not reachable: ${firstLines(stderr)}`);
    }
    if (/unrecognized option '--me'|invalid option -- '?me/i.test(stderr) && this.features.me !== false) {
      this.features.me = false; // Slurm < 20.11: --user from the next query on
      return unknown('squeue has no --me option (Slurm < 20.11): asking with --user next time');
    }
    if (result.code !== 0) {
      // All ids purged from slurmctld's memory: squeue refuses the whole request.
      if (/Invalid job id specified/i.test(stderr) && !stdout.trim()) {
        return all(jobId => ({ jobId, phase: 'ended', nativeState: '', reason: 'left the queue' }));
      }
      if (/--json/.test(stderr) || (/json|serializer|data_parser/i.test(stderr) && this.statusFormat === 'json')) {
        this.features.json = false; // no JSON plugin: the text format from the next query on
      }
      return unknown(
        `squeue failed (exit code ${result.code}): ${firstLines(stderr) || firstLines(stdout) || 'no output'}`
      );
    }
    if (stdout.trimStart().startsWith('{')) {
      return this.parseStatusJson(jobIds, stdout);
    }

    const rows = new Map<string, string[]>();
    for (const raw of stdout.split('\n')) {
      const line = raw.replace(/\r$/, '');
      if (!line.trim() || /^CLUSTER: /.test(line)) {
        continue; // blank, or a multi-cluster header (SLURM_CLUSTERS set in the environment)
      }
      const f = line.split(FIELD_SEPARATOR);
      if (f.length !== SQUEUE_FIELDS.length || !JOB_ID_RE.test(f[0].trim())) {
        return unknown(`unexpected squeue output: ${show(line)}`);
      }
      const id = f[0].trim();
      if (!rows.has(id)) {
        rows.set(
          id,
          f.map(x => x.trim())
        );
      }
    }
    return all(jobId => {
      const row = rows.get(jobId);
      if (!row) {
        return { jobId, phase: 'ended', nativeState: '', reason: 'left the queue' };
      }
      const [, state, reason, nodes, timeLeft, start] = row;
      return this.rowStatus(jobId, {
        state,
        reason,
        nodes,
        timeLeftSeconds: parseDuration(timeLeft),
        // squeue printed it in UTC (TZ=UTC)
        startEstimate: /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$/.test(start) ? `${start}Z` : undefined
      });
    });
  }

  /**
   * `squeue --json`: openapi v0.0.38 (22.05: plain numbers, `job_state` a string) and the
   * data_parser format of 23.02+ (`{set, infinite, number}` objects, `job_state` a list).
   * Jobs not asked for are ignored (22.05 lists every job of the cluster).
   */
  parseStatusJson(jobIds: string[], text: string, nowMs = Date.now()): Map<string, IJobStatus> {
    const { all, unknown } = statusOf(jobIds);
    let doc: { jobs?: unknown; errors?: unknown };
    try {
      doc = JSON.parse(text) as typeof doc;
    } catch {
      this.features.json = false;
      return unknown(`unexpected squeue --json output: ${show(text.trim().slice(0, 60))}`);
    }
    const errors = Array.isArray(doc.errors)
      ? doc.errors.map(e => String((e as { error?: unknown })?.error ?? JSON.stringify(e)))
      : [];
    if (!Array.isArray(doc.jobs)) {
      return unknown(`squeue --json listed no jobs: ${errors.join(' | ') || show(text.trim().slice(0, 60))}`);
    }
    const jobs = new Map<string, Record<string, unknown>>();
    for (const j of doc.jobs as Record<string, unknown>[]) {
      const arrayTask = num(j['array_task_id']);
      const arrayJob = num(j['array_job_id']);
      const id = arrayJob && arrayTask !== undefined ? `${arrayJob}_${arrayTask}` : String(num(j['job_id']) ?? '');
      if (!jobs.has(id)) {
        jobs.set(id, j);
      }
    }
    return all(jobId => {
      const j = jobs.get(jobId);
      if (!j) {
        return { jobId, phase: 'ended', nativeState: '', reason: 'left the queue' };
      }
      const states = Array.isArray(j['job_state'])
        ? (j['job_state'] as unknown[]).map(String)
        : [String(j['job_state'] ?? '')];
      // 23.02+: the base state and flags (e.g. ["RUNNING", "COMPLETING"]); the first known one counts
      const state = states.find(x => STATES[x.toUpperCase()]) ?? states[0] ?? '';
      const start = num(j['start_time']);
      const end = num(j['end_time']);
      return this.rowStatus(jobId, {
        state,
        reason: String(j['state_reason'] ?? ''),
        nodes: String(j['nodes'] ?? ''),
        timeLeftSeconds: end && !isInfinite(j['time_limit']) ? Math.max(0, Math.round(end - nowMs / 1000)) : undefined,
        startEstimate: start ? new Date(start * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z') : undefined
      });
    });
  }

  private rowStatus(
    jobId: string,
    row: { state: string; reason: string; nodes: string; timeLeftSeconds?: number; startEstimate?: string }
  ): IJobStatus {
    const { reason, nodes } = row;
    // `CANCELLED by 1001` in some versions and tools: the first word is the state
    const state = row.state.split(/[\s+]/)[0].toUpperCase();
    const info = STATES[state];
    const nativeReason = reason && reason !== 'None' ? reason : undefined;
    if (!info) {
      return { jobId, phase: 'unknown', nativeState: state, reason: `unrecognised Slurm state ${state}`, nativeReason };
    }
    const st: IJobStatus = { jobId, phase: info.phase, nativeState: state, nativeReason };
    if (info.phase === 'pending') {
      const p = pendingReason(reason);
      st.reason = p.text;
      if (p.blocked) {
        st.blocked = true;
      }
      // %S of a pending job is the backfill scheduler's estimate (what `squeue --start` shows)
      if (row.startEstimate) {
        st.startEstimate = row.startEstimate;
      }
      const node = firstNode(nodes);
      if (node) {
        st.node = node; // CONFIGURING: allocated, node booting
      }
    } else if (info.phase === 'running') {
      st.node = firstNode(nodes);
      st.timeLeftSeconds = row.timeLeftSeconds;
      if (info.reason) {
        st.reason = info.reason;
      }
    } else {
      const p = pendingReason(reason);
      // FAILED at once with BadConstraints etc.: why it could not start, not "exited with an error"
      st.reason =
        p.blocked && p.text ? `could not start: ${p.text.replace(/: the job will not start$/, '')}` : info.reason;
    }
    return st;
  }

  cancelCommand(jobId: string): string {
    if (typeof jobId !== 'string' || !JOB_ID_RE.test(jobId)) {
      throw invalid('jobId', jobId, 'Slurm job ids are digits (or digits_digits)');
    }
    return `scancel ${jobId}`;
  }

  /** `sbatch --test-only` with the session's directives: Slurm's own estimate, nothing queued. */
  startEstimateCommand(r: IResources): string {
    this.validate(r);
    return `sbatch --test-only ${this.directiveLines(r).map(shQuote).join(' ')} --wrap=true`;
  }

  /** `sbatch: Job 1234 to start at 2026-12-06T09:50:01 using 1 processors on nodes node1 in partition debug` */
  parseStartEstimate(output: string): { start?: string; error?: string } {
    const m = /to start at (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)/.exec(output);
    if (m) {
      return { start: m[1] };
    }
    return { error: firstLines(output.replace(/^sbatch: (error: )?/gm, '').trim()) || 'sbatch gave no estimate' };
  }

  extendCommand(jobId: string, _r: IResources, addSeconds: number): string {
    this.cancelCommand(jobId); // (the same check of the id)
    return `scontrol update JobId=${jobId} TimeLimit=+${Math.ceil(addSeconds / 60)}`;
  }

  /** Slurm's accounting database (slurmdbd); a site without one answers an error. */
  accountingCommand(jobId: string): string {
    this.cancelCommand(jobId); // (the same check of the id)
    return `sacct -n -P -j ${jobId} --format=${SACCT_FIELDS.join(',')}`;
  }

  parseAccounting(jobId: string, result: ICommandResult): IJobAccounting | undefined {
    return parseSacct(jobId, result);
  }
}
