/**
 * Slurm adapter: job script, sbatch / squeue / scancel commands, and the mapping of
 * Slurm's states and reasons to pending / running / ended / unknown.
 *
 * Pure: no I/O. Commands are POSIX sh; every interpolated value is validated first and
 * quoted where a shell reads it. Parsing is tested against outputs recorded on a real
 * Slurm 22.05 (src/agent/__tests__/fixtures/slurm/). See docs/schedulers/slurm.md.
 */
import type { IResources } from '../../common/api';
import { shQuote } from './shell';
import {
  InvalidRequestError,
  SchedulerUnavailableError,
  type ICommandResult,
  type IJobSpec,
  type IJobStatus,
  type ISchedulerAdapter
} from './types';
import { commandLine, eachDirective, intField, invalid, isSet, jobFiles, nameField, setupLines, show, statusOf } from './validate';

/** Resources as the Slurm adapter reads them: IResources plus Slurm's QOS. */
export interface ISlurmResources extends IResources {
  qos?: string;
}

/** ASCII unit separator: cannot appear in job names, reasons or node lists. */
export const FIELD_SEPARATOR = '\x1f';
/** squeue fields, in order: job id, long state, reason, node list, time left, start time. */
const SQUEUE_FIELDS = ['%i', '%T', '%r', '%N', '%L', '%S'];

const JOB_ID_RE = /^\d{1,20}(_\d{1,10})?$/;
const MEMORY_RE = /^(\d{1,12})([KMGT]?)$/;
/** `--name` or `--name=value`; #SBATCH lines are not read by a shell, but keep them plain. */
const DIRECTIVE_RE = /^--([A-Za-z][A-Za-z0-9-]{0,63})(?:=([A-Za-z0-9._,:/@%+=*&|!~^[\]-]{1,256}))?$/;

/** Directives the adapter writes itself: the session depends on them. */
const RESERVED_DIRECTIVES = ['job-name', 'output', 'error', 'input', 'chdir', 'array', 'wrap', 'parsable', 'test-only'];
/** Directives that have a field of their own (`--qos` stays allowed: IResources has no qos). */
const FIELD_DIRECTIVES: Record<string, string> = {
  partition: 'partition',
  account: 'account',
  time: 'walltime',
  'cpus-per-task': 'cpus',
  mem: 'memory'
};

/**
 * Seconds in a Slurm walltime: `minutes`, `MM:SS`, `HH:MM:SS`, `D-HH`, `D-HH:MM` or
 * `D-HH:MM:SS`. Throws InvalidRequestError (field `walltime`) for anything else.
 */
export function parseWalltime(value: unknown): number {
  const rule = 'use minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS, more than zero';
  if (typeof value !== 'string' && typeof value !== 'number') {
    throw invalid('walltime', value, rule);
  }
  const s = String(value).trim();
  let m: RegExpExecArray | null;
  let secs: number | undefined;
  const two = (x: string | undefined, max: number): number => {
    const n = x === undefined ? 0 : Number(x);
    if (n >= max) {
      throw invalid('walltime', value, rule);
    }
    return n;
  };
  if ((m = /^(\d{1,7})$/.exec(s))) {
    secs = Number(m[1]) * 60;
  } else if ((m = /^(\d{1,7}):(\d{1,2})$/.exec(s))) {
    secs = Number(m[1]) * 60 + two(m[2], 60);
  } else if ((m = /^(\d{1,5}):(\d{1,2}):(\d{1,2})$/.exec(s))) {
    secs = Number(m[1]) * 3600 + two(m[2], 60) * 60 + two(m[3], 60);
  } else if ((m = /^(\d{1,4})-(\d{1,2})(?::(\d{1,2})(?::(\d{1,2}))?)?$/.exec(s))) {
    secs = Number(m[1]) * 86400 + two(m[2], 24) * 3600 + two(m[3], 60) * 60 + two(m[4], 60);
  }
  if (secs === undefined || secs <= 0) {
    throw invalid('walltime', value, rule);
  }
  return secs;
}

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

function memoryField(v: unknown): string {
  const m = typeof v === 'string' ? MEMORY_RE.exec(v.trim()) : null;
  if (!m || Number(m[1]) === 0) {
    throw invalid('memory', v, 'use a number with an optional unit K, M, G or T, e.g. 4G or 500M (no unit: megabytes)');
  }
  return `${Number(m[1])}${m[2]}`;
}

function directives(v: unknown, gpus: number): string[] {
  return eachDirective(v, 'give a list of directives such as ["--qos=short"]', DIRECTIVE_RE, 'each directive must look like --name or --name=value, without spaces, quotes, ;, $, ` or line breaks', (m, d) => {
    const name = m[1].toLowerCase();
    // sbatch accepts unambiguous prefixes of long options (--out = --output): check prefixes too
    const reserved = RESERVED_DIRECTIVES.find(r => r.startsWith(name));
    if (reserved) {
      throw invalid('extraDirectives', d, `--${reserved} is set by jupyterlab-remote-cluster itself`);
    }
    const field = Object.keys(FIELD_DIRECTIVES).find(f => f === name);
    if (field) {
      throw invalid('extraDirectives', d, `use the ${FIELD_DIRECTIVES[field]} field instead`);
    }
    if (name === 'gres' && gpus > 0) {
      throw invalid('extraDirectives', d, 'with a --gres directive, leave the gpus field at 0 and request GPUs in --gres');
    }
    return d.trim();
  });
}

/* ------------------------------------------------------------------------------------ */

interface IStateInfo {
  phase: IJobStatus['phase'];
  /** For ended jobs: why, in words a user understands. */
  reason?: string;
}

const STATES: Record<string, IStateInfo> = {
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

function pendingReason(raw: string): { text?: string; blocked?: boolean } {
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
const CONTROLLER_TROUBLE =
  /Unable to contact slurm controller|Socket timed out|Connection refused|Connection timed out|Transport endpoint|Zero Bytes were transmitted|Communication connection failure|Slurm backup controller in standby|No route to host|Name or service not known|slurm_receive_msg|Resource temporarily unavailable|Insane message length|Protocol authentication error/i;

function firstLines(text: string, n = 2): string {
  return text
    .split('\n')
    .map(l => l.trim())
    .filter(Boolean)
    .slice(0, n)
    .join(' | ');
}

/** Which resource field an sbatch error is about, from its words. */
function guessField(text: string): string | undefined {
  const fields: [RegExp, string][] = [
    [/partition/i, 'partition'],
    [/time limit|time-min|--time|walltime/i, 'walltime'],
    [/account|association/i, 'account'],
    [/qos/i, 'qos'],
    [/memory|--mem/i, 'memory'],
    [/gres|gpu/i, 'gpus'],
    [/cpu/i, 'cpus']
  ];
  return fields.find(([re]) => re.test(text))?.[1];
}

/* ------------------------------------------------------------------------------------ */

export class SlurmAdapter implements ISchedulerAdapter {
  readonly name = 'slurm';

  validate(resources: IResources): void {
    this.directiveLines(resources);
  }

  /** The #SBATCH lines for the resources (validating every value on the way). */
  private directiveLines(resources: IResources): string[] {
    if (typeof resources !== 'object' || resources === null) {
      throw new InvalidRequestError('Resources must be an object.', 'resources');
    }
    const r = resources as ISlurmResources;
    const lines: string[] = [];
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
    if (isSet(r.memory)) {
      lines.push(`--mem=${memoryField(r.memory)}`);
    }
    const gpus = isSet(r.gpus) ? intField('gpus', r.gpus, 0, 64) : 0;
    if (gpus > 0) {
      lines.push(`--gres=gpu:${gpus}`);
    }
    lines.push(...directives(r.extraDirectives, gpus));
    return lines;
  }

  renderScript(spec: IJobSpec): string {
    const { name, stdout, stderr, workdir } = jobFiles(spec);
    const resourceLines = this.directiveLines(spec.resources ?? {});
    // sbatch reads #SBATCH lines up to the first command: these would bypass validation
    const setup = setupLines(spec.setup, /^\s*#\s*SBATCH/i, 'put Slurm directives in extraDirectives, not in setup lines');
    commandLine(spec.command);
    const lines = [
      '#!/bin/sh',
      '# jupyterlab-remote-cluster session (generated; edits are overwritten)',
      ...[
        `--job-name=${name}`,
        `--output=${stdout}`,
        `--error=${stderr}`,
        `--chdir=${workdir}`,
        '--nodes=1',
        '--ntasks=1',
        ...resourceLines
      ].map(d => `#SBATCH ${d}`),
      ''
    ];
    if (setup.length) {
      lines.push('# environment setup from the profile', ...setup, '');
    }
    lines.push('# the remote helper replaces this shell: Slurm signals reach it directly', `exec ${spec.command}`, '');
    return lines.join('\n');
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
      const lines = stdout.split('\n').map(l => l.trim()).filter(Boolean);
      const m = /^(\d+)(?:;[A-Za-z0-9._-]+)?$/.exec(lines[lines.length - 1] ?? '');
      if (m) {
        return m[1];
      }
      throw new Error(`sbatch printed no job id: ${firstLines(stdout + '\n' + stderr, 3) || '(nothing)'}`);
    }
    if (result.code === null || CONTROLLER_TROUBLE.test(stderr)) {
      throw new SchedulerUnavailableError(
        `Slurm did not answer the submission (${firstLines(stderr) || 'no output'}); the job may or may not be queued.`
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
    // The separator is made by printf in the remote shell: no control byte travels in the
    // command. TZ=UTC + SLURM_TIME_FORMAT=standard: start times we can label as UTC, whatever
    // the user's environment says. --states=all: finished jobs too (until MinJobAge).
    const format = SQUEUE_FIELDS.join('$s');
    return (
      `s=$(printf '\\037'); TZ=UTC SLURM_TIME_FORMAT=standard squeue --noheader --states=all ` +
      `--jobs=${ids.join(',')} --format="${format}"`
    );
  }

  parseStatus(jobIds: string[], result: ICommandResult): Map<string, IJobStatus> {
    const { all, unknown } = statusOf(jobIds);
    const stdout = result.stdout ?? '';
    const stderr = result.stderr ?? '';

    if (result.code === null) {
      return unknown('squeue did not finish (slow Slurm controller?)');
    }
    if (CONTROLLER_TROUBLE.test(stderr) && (result.code !== 0 || !stdout.trim())) {
      return unknown(`Slurm controller not reachable: ${firstLines(stderr)}`);
    }
    if (result.code !== 0) {
      // All ids purged from slurmctld's memory: squeue refuses the whole request.
      if (/Invalid job id specified/i.test(stderr) && !stdout.trim()) {
        return all(jobId => ({ jobId, phase: 'ended', nativeState: '', reason: 'left the queue' }));
      }
      return unknown(`squeue failed (exit code ${result.code}): ${firstLines(stderr) || firstLines(stdout) || 'no output'}`);
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
        rows.set(id, f.map(x => x.trim()));
      }
    }
    return all(jobId => {
      const row = rows.get(jobId);
      return row
        ? this.rowStatus(jobId, row)
        : { jobId, phase: 'ended', nativeState: '', reason: 'left the queue' };
    });
  }

  private rowStatus(jobId: string, [, stateField, reason, nodes, timeLeft, start]: string[]): IJobStatus {
    // `CANCELLED by 1001` in some versions and tools: the first word is the state
    const state = stateField.split(/[\s+]/)[0].toUpperCase();
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
      if (/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$/.test(start)) {
        st.startEstimate = `${start}Z`; // squeue printed it in UTC (TZ=UTC)
      }
      const node = firstNode(nodes);
      if (node) {
        st.node = node; // CONFIGURING: allocated, node booting
      }
    } else if (info.phase === 'running') {
      st.node = firstNode(nodes);
      st.timeLeftSeconds = parseDuration(timeLeft);
      if (info.reason) {
        st.reason = info.reason;
      }
    } else {
      st.reason = info.reason;
    }
    return st;
  }

  cancelCommand(jobId: string): string {
    if (typeof jobId !== 'string' || !JOB_ID_RE.test(jobId)) {
      throw invalid('jobId', jobId, 'Slurm job ids are digits (or digits_digits)');
    }
    return `scancel ${jobId}`;
  }
}
