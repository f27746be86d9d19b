/**
 * HTCondor adapter. HTCondor submits a *submit description*, not a script with directives:
 *
 * - renderScript writes the job script (setup lines, then `exec` of the command) and, as
 *   `#CONDOR ` comment lines at its top, the submit description (validated values only).
 *   For sh they are comments; nothing else in the script may start with `#CONDOR`.
 * - submitCommand pipes those lines into `condor_submit -` and adds `executable = <script>`
 *   with `-append`: the description and the script travel as one file, and no value is
 *   ever interpolated into a shell command except the sh-quoted script path.
 * - statusCommand asks condor_q (JSON) once and, only when condor_q did not list every
 *   job, condor_history (JSON) for the ones that left the queue, in the same command;
 *   sections are separated by marker lines.
 *
 * Pure: no I/O. See docs/schedulers/htcondor.md; parsing is tested against the samples in
 * src/agent/__tests__/fixtures/htcondor/ (sources in its README.md).
 */
import type { IJobAccounting, IResources } from '../../common/api';
import { CONDOR_ACCOUNTING_ATTRIBUTES, condorAccounting } from './accounting';
import { cancelTolerating } from './cancel';
import { checkedResources } from './unsupported';
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
  fieldNamedIn,
  firstLines,
  intField,
  invalid,
  isSet,
  memoryAmount,
  nameField,
  oneNodeOnly,
  show,
  parseWalltime,
  statusOf
} from './validate';
import { renderJobScript } from './job-script';

/** Prefix of the submit-description lines in the job script. */
export const DIRECTIVE_PREFIX = '#CONDOR ';
/** Job ad attributes the status command asks for. */
export const ATTRIBUTES = [
  'ClusterId',
  'ProcId',
  'JobStatus',
  'RemoteHost',
  'LastRejMatchReason',
  'HoldReason',
  'HoldReasonCode',
  'RemoveReason',
  'ExitCode',
  'ExitBySignal',
  'ExitSignal',
  'JobCurrentStartDate',
  'MaxRuntime',
  'ServerTime'
];
export const QUEUE_MARKER = '@@jrc condor_q exit';
export const HISTORY_MARKER = '@@jrc condor_history exit';

const JOB_ID_RE = /^(\d{1,20})\.(\d{1,9})$/;
/** A script path as condor_submit reads it after `executable =` (absolute or relative, no blanks, no `$`). */
const SCRIPT_PATH_RE = /^[A-Za-z0-9._/+@%,:=~][A-Za-z0-9._/+@%,:=~-]{0,4095}$/;
/**
 * `name = value` for extra submit commands. `+Attr = value` sets a job ClassAd attribute.
 * No `$` (submit macros: `$(...)`, `$ENV(...)`), no backslash, no line breaks; quotes are
 * allowed (ClassAd strings: the line is read by condor_submit, never by a shell).
 */
const DIRECTIVE_RE = /^(\+?[A-Za-z_][A-Za-z0-9_.]{0,63})\s*=\s*([^\s$\\][^$\\\0\r\n]{0,511})$/;

/** Submit commands the adapter writes itself, or that would change what is run or how many jobs. */
const RESERVED = [
  'executable',
  'arguments',
  'args',
  'universe',
  'initialdir',
  'initial_dir',
  'output',
  'error',
  'input',
  'log',
  'batch_name',
  '+jobbatchname',
  'queue',
  'include',
  'if',
  'elif',
  'else',
  'endif',
  'use',
  'transfer_executable',
  'periodic_remove',
  'max_idle',
  'max_materialize',
  'hold',
  'cron_minute',
  'cron_hour',
  'cron_day_of_month',
  'cron_month',
  'cron_day_of_week',
  'deferral_time'
];
/** Submit commands that have a field of their own. */
const FIELD_DIRECTIVES: Record<string, string> = {
  request_cpus: 'cpus',
  request_memory: 'memory',
  request_gpus: 'gpus',
  '+maxruntime': 'walltime',
  accounting_group: 'account'
};

/** Megabytes for request_memory: `4G` → 4096, `500M` → 500, `1024K` → 1, no unit = megabytes. */
export function memoryMegabytes(v: unknown): number {
  const { n, unit } = memoryAmount(v);
  switch (unit) {
    case 'K':
      return Math.ceil(n / 1024);
    case 'G':
      return n * 1024;
    case 'T':
      return n * 1024 * 1024;
    default:
      return n;
  }
}

function directives(v: unknown, gpus: number): string[] {
  return eachDirective(
    v,
    'give a list of submit commands such as ["requirements = (OpSysMajorVer == 9)"]',
    DIRECTIVE_RE,
    'each directive must look like name = value or +Attribute = value, without $, \\ or line breaks',
    (m, d) => {
      const name = m[1].toLowerCase();
      if (RESERVED.includes(name)) {
        throw invalid(
          'extraDirectives',
          d,
          `${m[1]} is set by jupyterlab-remote-cluster itself or cannot be used in a session`
        );
      }
      if (FIELD_DIRECTIVES[name]) {
        throw invalid('extraDirectives', d, `use the ${FIELD_DIRECTIVES[name]} field instead`);
      }
      if (gpus > 0 && /^(request_gpus|require_gpus|gpus_minimum_)/.test(name)) {
        throw invalid('extraDirectives', d, 'with a GPU directive, leave the gpus field at 0');
      }
      return `${m[1]} = ${m[2].trim()}`;
    }
  );
}

/* ------------------------------------------------------------------------------------ */

/** HTCondor's own words in condor_submit / condor_q output when the schedd cannot be reached. */
const SCHEDD_TROUBLE =
  /Failed to connect to (local )?queue manager|Failed to fetch ads from|Can't find address (for|of) (local )?schedd|Unable to locate local daemon|CEDAR:6001|SECMAN:2007|Connection refused|Connection timed out|timed out|No route to host/i;

/** Fields of the submit commands the adapter writes; any other command came from extraDirectives. */
const COMMAND_FIELDS: Record<string, string> = {
  request_memory: 'memory',
  requestmemory: 'memory',
  request_cpus: 'cpus',
  requestcpus: 'cpus',
  request_gpus: 'gpus',
  requestgpus: 'gpus',
  accounting_group: 'account',
  '+maxruntime': 'walltime',
  maxruntime: 'walltime',
  periodic_remove: 'walltime'
};

function guessField(text: string): string | undefined {
  // a parse error names the offending command: "Parse error in expression: requirements = (..."
  const bad = /Parse error in expression:\s*(\+?[A-Za-z_][A-Za-z0-9_.]*)\s*=/i.exec(text);
  if (bad) {
    return COMMAND_FIELDS[bad[1].toLowerCase()] ?? 'extraDirectives';
  }
  return fieldNamedIn(text, [
    [/request_memory|memory/i, 'memory'],
    [/request_cpus|cpus/i, 'cpus'],
    [/request_gpus|gpu/i, 'gpus'],
    [/accounting_group/i, 'account'],
    [/requirements|expression|\+[A-Za-z]/i, 'extraDirectives']
  ]);
}

/** Node name from RemoteHost: `slot1@node.example.org` → `node.example.org`, `slot1_2@n` → `n`. */
export function remoteNode(remoteHost: unknown): string | undefined {
  if (typeof remoteHost !== 'string' || !remoteHost.trim()) {
    return undefined;
  }
  const host = remoteHost.trim();
  return host.includes('@') ? host.slice(host.lastIndexOf('@') + 1) : host;
}

/** condor_q / condor_history -json output: an array of ads, or nothing at all when none matched. */
export function parseAds(text: string): Record<string, unknown>[] | undefined {
  const start = text.indexOf('[');
  if (!text.trim()) {
    return [];
  }
  if (start < 0) {
    return undefined;
  }
  try {
    const v = JSON.parse(text.slice(start, text.lastIndexOf(']') + 1)) as unknown;
    return Array.isArray(v) ? (v as Record<string, unknown>[]) : undefined;
  } catch {
    return undefined;
  }
}

function num(v: unknown): number | undefined {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^-?\d+(\.\d+)?$/.test(v) ? Number(v) : NaN;
  return Number.isFinite(n) ? n : undefined;
}

/** HoldReasonCode 16: input files are being spooled (condor_submit -spool); not stuck. */
const TRANSIENT_HOLD_CODES = new Set([16]);

export class HtcondorAdapter implements ISchedulerAdapter {
  readonly name = 'htcondor';
  readonly title = 'HTCondor';

  validate(resources: IResources): void {
    this.descriptionLines(resources);
  }

  /** Submit-description lines for the resources (validating every value on the way). */
  private descriptionLines(resources: IResources): string[] {
    const r = checkedResources(resources, 'HTCondor', {
      qos: 'leave it empty (priorities come from accounting groups: account)',
      constraint: 'leave it empty and select machines with a requirements directive',
      reservation: 'leave it empty',
      memoryPerCpu: 'leave it empty and give the memory for the whole job in memory'
    });
    oneNodeOnly(r, 'HTCondor');
    const lines: string[] = [];
    if (isSet(r.partition)) {
      throw invalid(
        'partition',
        r.partition,
        'HTCondor has no partitions or queues: leave it empty and select machines with a requirements directive'
      );
    }
    if (isSet(r.account)) {
      lines.push(`accounting_group = ${nameField('account', r.account)}`);
    }
    if (isSet(r.cpus)) {
      lines.push(`request_cpus = ${intField('cpus', r.cpus, 1, 4096)}`);
    }
    if (isSet(r.memory)) {
      lines.push(`request_memory = ${memoryMegabytes(r.memory)}`);
    }
    const gpus = isSet(r.gpus) ? intField('gpus', r.gpus, 0, 64) : 0;
    if (gpus > 0) {
      lines.push(`request_gpus = ${gpus}`);
    }
    if (isSet(r.walltime)) {
      const secs = parseWalltime(r.walltime);
      // +MaxRuntime: honoured by pools that define it; periodic_remove: enforced by every schedd
      lines.push(
        `+MaxRuntime = ${secs}`,
        `periodic_remove = (JobStatus == 2) && (time() - JobCurrentStartDate > ${secs})`
      );
    }
    lines.push(...directives(r.extraDirectives, gpus));
    return lines;
  }

  renderScript(spec: IJobSpec): string {
    return renderJobScript(spec, {
      title: 'HTCondor',
      // submitCommand feeds every #CONDOR line to condor_submit
      directive: /^\s*#\s*CONDOR/i,
      directiveHint: 'put HTCondor submit commands in extraDirectives, not in setup lines',
      header: ({ name, stdout, stderr, workdir }) => [
        '# submit description (condor_submit reads the #CONDOR lines; executable = this script):',
        ...[
          'universe = vanilla',
          `batch_name = ${name}`,
          `initialdir = ${workdir}`,
          `output = ${stdout}`,
          `error = ${stderr}`,
          ...this.descriptionLines(spec.resources ?? {}),
          'queue 1'
        ].map(l => `${DIRECTIVE_PREFIX}${l}`)
      ]
    });
  }

  submitCommand(scriptPath: string): string {
    if (typeof scriptPath !== 'string' || !SCRIPT_PATH_RE.test(scriptPath)) {
      // the path is also written into the submit description, where blanks and $ have meanings
      throw invalid('scriptPath', scriptPath, 'must be a path of letters, digits and ._/+@%,:=~- (no spaces)');
    }
    const p = shQuote(scriptPath);
    return `sed -n 's/^${DIRECTIVE_PREFIX}//p' ${p} | condor_submit -append ${shQuote(`executable = ${scriptPath}`)} -`;
  }

  parseSubmit(result: ICommandResult): string {
    const stdout = result.stdout ?? '';
    const stderr = result.stderr ?? '';
    const m =
      /(\d+) job\(s\) submitted to cluster (\d+)\./.exec(stdout) ?? /^\s*(\d+)\.(\d+) - \d+\.\d+\s*$/m.exec(stdout);
    if (m && result.code === 0) {
      return /submitted to cluster/.test(m[0]) ? `${m[2]}.0` : `${m[1]}.${m[2]}`;
    }
    const all = `${stdout}\n${stderr}`;
    if (result.code === null || SCHEDD_TROUBLE.test(all)) {
      throw new SchedulerUnavailableError(
        `HTCondor did not answer the submission (${firstLines(stderr) || firstLines(stdout) || 'no output'}).`
      );
    }
    if (result.code === 0) {
      throw new Error(`condor_submit printed no job id: ${firstLines(all, 3) || '(nothing)'}`);
    }
    const errors = all
      .split('\n')
      .map(l => l.trim())
      .filter(l => l && !/^Submitting job\(s\)/.test(l));
    const main = errors.find(l => /^ERROR/i.test(l)) ?? errors[0] ?? `condor_submit exited with code ${result.code}`;
    const details = errors.filter(l => l !== main).slice(0, 3);
    let message = `HTCondor refused the job: ${main.replace(/^ERROR:\s*/i, '')}`;
    if (details.length) {
      message += ` (${details.join('; ')})`;
    }
    throw new InvalidRequestError(message, guessField(errors.join(' ')));
  }

  statusCommand(jobIds: string[]): string {
    const ids = [...new Set(jobIds)];
    if (!ids.length) {
      throw new InvalidRequestError('No job ids to query.', 'jobIds');
    }
    const parts = ids.map(id => {
      const m = typeof id === 'string' ? JOB_ID_RE.exec(id) : null;
      if (!m) {
        throw invalid('jobId', id, 'HTCondor job ids are cluster.proc, e.g. 123.0');
      }
      return `(ClusterId == ${m[1]} && ProcId == ${m[2]})`;
    });
    const attrs = ATTRIBUTES.join(',');
    const n = ids.length;
    // condor_history reads the schedd's history file: only when condor_q missed a job, and
    // -limit stops the scan once all of them are found. Every ad has one "ClusterId" line.
    return (
      `q=$(condor_q -json -attributes ${attrs} ${ids.join(' ')}); c=$?; printf '%s\\n' "$q"; ` +
      `echo "${QUEUE_MARKER} $c@@"; ` +
      `if [ "$c" -eq 0 ] && [ "$(printf '%s\\n' "$q" | grep -c '"ClusterId"')" -lt ${n} ]; then ` +
      `condor_history -json -limit ${n} -attributes ${attrs} -constraint ${shQuote(parts.join(' || '))} 2>&1; ` +
      `echo "${HISTORY_MARKER} $?@@"; fi`
    );
  }

  parseStatus(jobIds: string[], result: ICommandResult): Map<string, IJobStatus> {
    const { all, unknown } = statusOf(jobIds);
    const stdout = result.stdout ?? '';
    const stderr = result.stderr ?? '';
    if (result.code === null) {
      return unknown('condor_q did not finish (slow schedd?)');
    }
    const qm = new RegExp(`^${QUEUE_MARKER} (\\d+)@@$`, 'm').exec(stdout);
    if (!qm) {
      return unknown(`unexpected status output: ${firstLines(stderr) || firstLines(stdout) || 'no output'}`);
    }
    const queueCode = Number(qm[1]);
    if (queueCode !== 0 || (SCHEDD_TROUBLE.test(stderr) && !stdout.slice(0, qm.index).trim())) {
      const why = firstLines(stderr) || firstLines(stdout.slice(0, qm.index));
      return unknown(
        SCHEDD_TROUBLE.test(stderr)
          ? `HTCondor schedd not reachable: ${why}`
          : `condor_q failed (exit code ${queueCode}): ${why || 'no output'}`
      );
    }
    const queueAds = parseAds(stdout.slice(0, qm.index));
    if (!queueAds) {
      return unknown(`unexpected condor_q output: ${show(firstLines(stdout.slice(0, qm.index)))}`);
    }
    const rest = stdout.slice(qm.index + qm[0].length);
    const hm = new RegExp(`^${HISTORY_MARKER} (\\d+)@@$`, 'm').exec(rest);
    // history is best effort: a failing condor_history leaves "left the queue" without details
    const historyAds = hm && hm[1] === '0' ? (parseAds(rest.slice(0, hm.index)) ?? []) : [];

    const key = (ad: Record<string, unknown>) => `${num(ad.ClusterId)}.${num(ad.ProcId)}`;
    const queue = new Map(queueAds.map(ad => [key(ad), ad]));
    const history = new Map(historyAds.map(ad => [key(ad), ad]));
    return all(jobId => {
      const ad = queue.get(jobId) ?? history.get(jobId);
      return ad ? this.adStatus(jobId, ad) : { jobId, phase: 'ended', nativeState: '', reason: 'left the queue' };
    });
  }

  private adStatus(jobId: string, ad: Record<string, unknown>): IJobStatus {
    const code = num(ad.JobStatus);
    const text = (v: unknown) => (typeof v === 'string' && v.trim() ? v.trim() : undefined);
    switch (code) {
      case 0:
      case 1: {
        const rej = text(ad.LastRejMatchReason);
        return {
          jobId,
          phase: 'pending',
          nativeState: code === 0 ? 'Unexpanded' : 'Idle',
          reason: rej ? `waiting for a matching machine (${rej})` : 'waiting for a matching machine',
          ...(rej ? { nativeReason: rej } : {})
        };
      }
      case 2:
      case 6:
      case 7: {
        const st: IJobStatus = {
          jobId,
          phase: 'running',
          nativeState: code === 2 ? 'Running' : code === 6 ? 'TransferringOutput' : 'Suspended'
        };
        const node = remoteNode(ad.RemoteHost);
        if (node) {
          st.node = node;
        }
        const max = num(ad.MaxRuntime);
        const now = num(ad.ServerTime);
        const start = num(ad.JobCurrentStartDate);
        if (max !== undefined && now !== undefined && start !== undefined && max > 0) {
          st.timeLeftSeconds = Math.max(0, Math.round(max - (now - start)));
        }
        if (code === 6) {
          st.reason = 'transferring output';
        } else if (code === 7) {
          st.reason = 'suspended by HTCondor';
        }
        return st;
      }
      case 3: {
        const why = text(ad.RemoveReason);
        return {
          jobId,
          phase: 'ended',
          nativeState: 'Removed',
          reason: why && /PeriodicRemove|periodic_remove/i.test(why) ? 'walltime reached' : 'cancelled',
          ...(why ? { nativeReason: why } : {})
        };
      }
      case 4: {
        const exit = num(ad.ExitCode);
        const bySignal = ad.ExitBySignal === true || ad.ExitBySignal === 'true';
        const reason = bySignal
          ? `killed by signal ${num(ad.ExitSignal) ?? ''}`.trim()
          : exit === undefined || exit === 0
            ? 'completed'
            : `failed (exit code ${exit})`;
        return { jobId, phase: 'ended', nativeState: 'Completed', reason };
      }
      case 5: {
        const why = text(ad.HoldReason);
        const holdCode = num(ad.HoldReasonCode);
        const st: IJobStatus = {
          jobId,
          phase: 'pending',
          nativeState: 'Held',
          reason: `held${why ? `: ${why}` : ''} (it will not start until released)`,
          ...(why ? { nativeReason: why } : {})
        };
        // a held job never starts by itself: report it as blocked so the session is not left waiting
        if (holdCode === undefined || !TRANSIENT_HOLD_CODES.has(holdCode)) {
          st.blocked = true;
        }
        return st;
      }
      default:
        return {
          jobId,
          phase: 'unknown',
          nativeState: String(ad.JobStatus ?? ''),
          reason: `unrecognised HTCondor JobStatus ${show(ad.JobStatus)}`
        };
    }
  }

  /**
   * HTCondorCluster names each job after its worker: the tag goes into `batch_name`
   * (JobBatchName) through its extra directives, as our own submit files write it; it
   * needs a disk request, which profiles do not have (1 GB).
   */
  readonly elastic = {
    config: 'htcondor',
    cancelTagged: 'condor_rm -constraint \'JobBatchName == "{name}"\'',
    extra: { 'job-extra-directives': { batch_name: '{name}' }, disk: '1GB' }
  };

  cancelCommand(jobId: string): string {
    if (typeof jobId !== 'string' || !JOB_ID_RE.test(jobId)) {
      throw invalid('jobId', jobId, 'HTCondor job ids are cluster.proc, e.g. 123.0');
    }
    // a job that left the queue: "Couldn't find/remove all jobs matching constraint ..."
    return cancelTolerating(`condor_rm ${jobId}`, "Couldn't find/remove all jobs|already marked for removal");
  }

  /** A finished job's ad in the schedd's history (-limit 1: the scan stops at it). */
  accountingCommand(jobId: string): string {
    this.cancelCommand(jobId); // (the same check of the id)
    const [cluster, proc] = jobId.split('.');
    const constraint = `ClusterId == ${cluster} && ProcId == ${proc}`;
    return `condor_history -json -limit 1 -attributes ${CONDOR_ACCOUNTING_ATTRIBUTES.join(',')} -constraint ${shQuote(constraint)}`;
  }

  parseAccounting(jobId: string, result: ICommandResult): IJobAccounting | undefined {
    const [cluster, proc] = jobId.split('.').map(Number);
    const ad = (result.code === 0 ? parseAds(result.stdout) : undefined)?.find(
      a => a['ClusterId'] === cluster && a['ProcId'] === proc
    );
    return ad ? condorAccounting(ad) : undefined;
  }
}
