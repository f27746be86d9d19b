/**
 * IBM Spectrum LSF adapter: job script with #BSUB lines, bsub / bjobs / bkill commands, and
 * the mapping of LSF's job states to pending / running / ended / unknown.
 *
 * Pure: no I/O. Commands are POSIX sh; every interpolated value is validated first and
 * quoted where a shell reads it. Parsing is tested against outputs published in IBM's
 * documentation and in public repositories (src/agent/__tests__/fixtures/lsf/README.md).
 * See docs/schedulers/lsf.md.
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
  eachDirective,
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
import { BJOBS_ACCOUNTING_FIELDS, parseBjobsAccounting } from './accounting';
import { renderJobScript } from './job-script';

/** bjobs fields, in order. The two free-text fields come last (text mode splits on `^`). */
export const BJOBS_FIELDS = ['jobid', 'stat', 'exec_host', 'time_left', 'exit_code', 'exit_reason', 'pend_reason'];
/** Delimiter of the text (non-JSON) bjobs output; cannot occur in ids, states or host lists. */
export const TEXT_DELIMITER = '^';

export interface ILsfOptions {
  /**
   * Ask bjobs for JSON (`-o ... -json`, LSF 10.1.0.2 and later; default). Set false for
   * older LSF: the status command then uses `-noheader -o "... delimiter='^'"`.
   * parseStatus reads both forms whatever this says.
   */
  json?: boolean;
}

const JOB_ID_RE = /^\d{1,20}$/;
/**
 * `-option` or `-option value`; the value is one word of safe characters or one double-quoted
 * string of safe characters and spaces (e.g. `-R "select[mem>4000] order[r15s]"`). #BSUB lines
 * are read by bsub, not by a shell, but line breaks, quotes inside values, `$`, backticks and `\`
 * are refused anyway.
 */
const DIRECTIVE_RE =
  /^-([A-Za-z][A-Za-z0-9_]{0,31})(?: +([A-Za-z0-9._,:/@%+=*&|!~^[\]()<>-]{1,256}|"[A-Za-z0-9._,:/@%+=*&|!~^[\]()<> -]{1,256}"))?$/;

/** Options the adapter writes itself, or that would break a batch session (interactive, waiting, arrays via -J). */
const RESERVED_OPTIONS = [
  'J',
  'o',
  'oo',
  'e',
  'eo',
  'cwd',
  'outdir',
  'i',
  'is',
  'I',
  'Ip',
  'IS',
  'ISp',
  'ISs',
  'Is',
  'IX',
  'K',
  'Zs'
];
/** Options that have a field of their own. */
const FIELD_OPTIONS: Record<string, string> = {
  q: 'partition',
  P: 'account',
  W: 'walltime',
  n: 'cpus',
  M: 'memory',
  gpu: 'gpus'
};

/**
 * Minutes for `-W`, from the profile's walltime (minutes, `HH:MM:SS`, `D-HH`, `D-HH:MM`,
 * `D-HH:MM:SS`; seconds rounded up to a whole minute). `A:B` is refused: Slurm reads it as
 * MM:SS and LSF's own `-W` as HH:MM, so it is ambiguous in a profile.
 */
export function walltimeMinutes(value: unknown): number {
  if (typeof value === 'string' && /^\s*\d+:\d+\s*$/.test(value)) {
    throw invalid('walltime', value, 'ambiguous (HH:MM or MM:SS?): write HH:MM:SS, e.g. 4:00:00, or minutes');
  }
  return Math.ceil(parseWalltime(value) / 60);
}

/** `-W [HH:]MM` text for a number of minutes. */
export function formatRunLimit(minutes: number): string {
  const h = Math.floor(minutes / 60);
  const m = minutes % 60;
  return h ? `${h}:${String(m).padStart(2, '0')}` : String(m);
}

/** `4G` → `4GB`, `500M` → `500MB`, `4096` → `4096MB` (explicit units: LSF_UNIT_FOR_LIMITS does not matter). */
function memoryField(v: unknown): string {
  const { n, unit } = memoryAmount(v);
  return `${n}${unit || 'M'}B`;
}

function directives(v: unknown, gpus: number): string[] {
  return eachDirective(
    v,
    'give a list of bsub options such as ["-app gpu_app"]',
    DIRECTIVE_RE,
    "each directive must look like -option or -option value (a value with spaces in double quotes), without ', $, `, \\, ; or line breaks",
    (m, d) => {
      const name = m[1];
      if (RESERVED_OPTIONS.includes(name)) {
        throw invalid(
          'extraDirectives',
          d,
          `-${name} is set by jupyterlab-remote-cluster itself or cannot be used in a session`
        );
      }
      if (FIELD_OPTIONS[name]) {
        throw invalid('extraDirectives', d, `use the ${FIELD_OPTIONS[name]} field instead`);
      }
      if (name === 'R' && gpus > 0 && /ngpus|gpu/i.test(m[2] ?? '')) {
        throw invalid('extraDirectives', d, 'with a GPU resource requirement, leave the gpus field at 0');
      }
      return d.trim();
    }
  );
}

/* ------------------------------------------------------------------------------------ */

interface IStateInfo {
  phase: IJobStatus['phase'];
  reason?: string;
}

const STATES: Record<string, IStateInfo> = {
  PEND: { phase: 'pending' },
  WAIT: { phase: 'pending', reason: 'waiting (chunk job)' },
  PROV: { phase: 'pending', reason: 'the host is being provisioned' },
  PSUSP: { phase: 'pending', reason: 'held while pending (bresume to release it)' },
  RUN: { phase: 'running' },
  USUSP: { phase: 'running', reason: 'suspended by you or an administrator' },
  SSUSP: { phase: 'running', reason: 'suspended by LSF' },
  DONE: { phase: 'ended', reason: 'completed' },
  EXIT: { phase: 'ended', reason: 'failed (the job exited with an error)' }
};

/** LSF exit reasons (`TERM_*`) in words. */
const EXIT_REASONS: [RegExp, string][] = [
  [/TERM_RUNLIMIT/, 'walltime reached'],
  [/TERM_MEMLIMIT/, 'out of memory'],
  [/TERM_OWNER|TERM_ADMIN|TERM_FORCE_OWNER|TERM_FORCE_ADMIN/, 'cancelled'],
  [/TERM_REQUEUE/, 'requeued'],
  [/TERM_PREEMPT/, 'preempted by another job'],
  [/TERM_CPULIMIT/, 'CPU time limit reached'],
  [/TERM_HOST|TERM_LOAD|TERM_UNKNOWN/, 'host failure']
];

/** Messages of an LSF that is down, busy or unreachable: the jobs' fate is unknown. */
const LSF_TROUBLE =
  /LSF is down|Cannot connect to LSF|batch system daemon not responding|LIM is down|Failed in an LSF library call|lsb_init|Master LIM is down|Communication time out|Unable to contact|Connection refused|Connection timed out|Request from non-LSF host rejected/i;

function guessField(text: string): string | undefined {
  return fieldNamedIn(text, [
    // before "queue": "RUNLIMIT: Cannot exceed queue's hard limit(s)" is about the walltime
    [/run ?limit|run time|-W\b/i, 'walltime'],
    [/queue/i, 'partition'],
    [/project/i, 'account'],
    [/memory|mem\b|rusage/i, 'memory'],
    [/gpu/i, 'gpus'],
    [/processor|slot|span/i, 'cpus']
  ]);
}

/** First host of an LSF exec_host: `4*hostA:2*hostB` → `hostA`, `hostA:hostA` → `hostA`. */
export function firstExecHost(execHost: string | undefined): string | undefined {
  const first = (execHost ?? '')
    .trim()
    .split(/[:\s]/)[0]
    .replace(/^\d+\*/, '');
  return first && first !== '-' ? first : undefined;
}

/**
 * Seconds in a bjobs `time_left`: `H:MM` followed by L (run limit) or E (estimate), or
 * `H:MM:SS` with -hms / LSB_HMS_TIME_FORMAT. `-`, empty, or X (estimate exceeded) → undefined.
 */
export function parseTimeLeft(s: string | undefined): number | undefined {
  const m = /^(\d+):(\d{2})(?::(\d{2}))?(?:\s+([LEX]))?$/.exec((s ?? '').trim());
  if (!m || m[4] === 'X') {
    return undefined;
  }
  return m[3] === undefined
    ? Number(m[1]) * 3600 + Number(m[2]) * 60
    : Number(m[1]) * 3600 + Number(m[2]) * 60 + Number(m[3]);
}

/* ------------------------------------------------------------------------------------ */

type Row = Record<string, string>;

export class LsfAdapter implements ISchedulerAdapter {
  // (bkill's 0: every job of this user with that name; LSFCluster writes `-W` as given)
  readonly elastic = {
    config: 'lsf',
    cancelTagged: 'bkill -J {name} 0',
    walltime: (w: string) => formatRunLimit(walltimeMinutes(w))
  };
  readonly name = 'lsf';
  readonly title = 'LSF';
  readonly multiNode = {
    hosts: 'for h in $LSB_HOSTS; do echo "$h"; done',
    launch: 'blaunch {host} {command}'
  };
  private readonly json: boolean;

  constructor(options: ILsfOptions = {}) {
    this.json = options.json !== false;
  }

  validate(resources: IResources): void {
    this.directiveLines(resources);
  }

  /** The #BSUB options for the resources (validating every value on the way). */
  private directiveLines(resources: IResources): string[] {
    const r = checkedResources(resources, 'LSF', {
      qos: 'leave it empty and choose a queue (partition), or a service class in extraDirectives (-sla name)',
      constraint: 'leave it empty and select hosts in extraDirectives (-R "select[name]")',
      reservation: 'leave it empty and give the advance reservation in extraDirectives (-U name)',
      memoryPerCpu: 'leave it empty and give the memory for the whole job in memory'
    });
    const lines = queueAndAccount(r, '-P');
    if (isSet(r.walltime)) {
      lines.push(`-W ${formatRunLimit(walltimeMinutes(r.walltime))}`);
    }
    const nodes = nodesField(r);
    if (nodes > 1) {
      // N hosts with the node's CPUs each: ptile fixes the slots per host
      const cpus = isSet(r.cpus) ? intField('cpus', r.cpus, 1, 4096) : 1;
      lines.push(`-n ${nodes * cpus}`, `-R "span[ptile=${cpus}]"`);
    } else if (isSet(r.cpus)) {
      lines.push(`-n ${intField('cpus', r.cpus, 1, 4096)}`, '-R "span[hosts=1]"');
    }
    if (isSet(r.memory)) {
      const mem = memoryField(r.memory);
      lines.push(`-R "rusage[mem=${mem}]"`, `-M ${mem}`);
    }
    const gpus = isSet(r.gpus) ? intField('gpus', r.gpus, 0, 64) : 0;
    if (gpus > 0) {
      lines.push(`-gpu "num=${gpus}"`);
    }
    lines.push(...directives(r.extraDirectives, gpus));
    return lines;
  }

  renderScript(spec: IJobSpec): string {
    return renderJobScript(spec, {
      title: 'LSF',
      // bsub reads #BSUB lines up to the first command
      directive: /^\s*#\s*BSUB/i,
      directiveHint: 'put LSF options in extraDirectives, not in setup lines',
      header: ({ name, stdout, stderr, workdir }) =>
        [
          `-J ${name}`,
          `-o ${stdout}`,
          `-e ${stderr}`,
          `-cwd ${workdir}`,
          ...this.directiveLines(spec.resources ?? {})
        ].map(d => `#BSUB ${d}`)
    });
  }

  /** bsub reads #BSUB lines only from a script on stdin (`bsub script` would run it as a command). */
  submitCommand(scriptPath: string): string {
    if (typeof scriptPath !== 'string' || !scriptPath || /[\0\r\n]/.test(scriptPath)) {
      throw invalid('scriptPath', scriptPath, 'must be a path on one line');
    }
    return `bsub < ${shQuote(scriptPath)}`;
  }

  parseSubmit(result: ICommandResult): string {
    const stdout = result.stdout ?? '';
    const stderr = result.stderr ?? '';
    const all = `${stdout}\n${stderr}`;
    const refused = all
      .split('\n')
      .map(l => l.trim())
      .find(l => /Job not submitted\.?$/i.test(l));
    // bsub may print "Job not submitted" and still exit 0 (argonne-lcf/balsam#34)
    if (refused) {
      const text = refused.replace(/\s*Job not submitted\.?$/i, '').replace(/^bsub:\s*/i, '');
      let message = `LSF refused the job: ${text || refused}`;
      if (!/[.!?]$/.test(message)) {
        message += '.';
      }
      throw new InvalidRequestError(message, guessField(text));
    }
    const m = /Job <(\d+)> is submitted to (?:default )?queue/.exec(stdout);
    if (m && result.code === 0) {
      return m[1];
    }
    if (result.code === null || LSF_TROUBLE.test(all)) {
      throw new SchedulerUnavailableError(
        `LSF did not answer the submission (${firstLines(stderr) || firstLines(stdout) || 'no output'}).`
      );
    }
    if (result.code === 0) {
      throw new Error(`bsub printed no job id: ${firstLines(all, 3) || '(nothing)'}`);
    }
    const text = firstLines(stderr, 3) || firstLines(stdout, 3) || `bsub exited with code ${result.code}`;
    throw new InvalidRequestError(`LSF refused the job: ${text.replace(/^bsub:\s*/i, '')}`, guessField(text));
  }

  statusCommand(jobIds: string[]): string {
    const ids = [...new Set(jobIds)];
    if (!ids.length) {
      throw new InvalidRequestError('No job ids to query.', 'jobIds');
    }
    for (const id of ids) {
      if (typeof id !== 'string' || !JOB_ID_RE.test(id)) {
        throw invalid('jobId', id, 'LSF job ids are digits');
      }
    }
    const fields = BJOBS_FIELDS.join(' ');
    return this.json
      ? `bjobs -o "${fields}" -json ${ids.join(' ')}`
      : `bjobs -noheader -o "${fields} delimiter='${TEXT_DELIMITER}'" ${ids.join(' ')}`;
  }

  parseStatus(jobIds: string[], result: ICommandResult): Map<string, IJobStatus> {
    const { all, unknown } = statusOf(jobIds);
    const stdout = result.stdout ?? '';
    const stderr = result.stderr ?? '';

    if (result.code === null) {
      return unknown('bjobs did not finish (slow LSF master?)');
    }
    const rows = new Map<string, Row>();
    const gone = new Set<string>();
    // "Job <12> is not found": on stderr (text mode, and JSON mode of some versions) or as an ERROR record
    const notFound = (text: string) => {
      for (const m of text.matchAll(/Job <(\d+)> is not found/g)) {
        gone.add(m[1]);
      }
    };
    notFound(stderr);

    const brace = stdout.indexOf('{');
    if (brace >= 0 && /^\s*\{/m.test(stdout)) {
      // JSON; bjobs may print "Cannot connect to LSF. Please wait ..." lines before it and then succeed
      let doc: { RECORDS?: unknown };
      try {
        doc = JSON.parse(stdout.slice(brace)) as { RECORDS?: unknown };
      } catch {
        return unknown(`unexpected bjobs output: ${show(firstLines(stdout))}`);
      }
      if (!Array.isArray(doc.RECORDS)) {
        return unknown(`unexpected bjobs output: ${show(firstLines(stdout))}`);
      }
      for (const rec of doc.RECORDS as Record<string, unknown>[]) {
        const row: Row = {};
        for (const [k, v] of Object.entries(rec ?? {})) {
          row[k.toLowerCase()] = typeof v === 'string' ? v : String(v ?? '');
        }
        if (row.error) {
          notFound(row.error);
          continue;
        }
        if (JOB_ID_RE.test(row.jobid ?? '') && !rows.has(row.jobid)) {
          rows.set(row.jobid, row);
        }
      }
    } else {
      for (const raw of stdout.split('\n')) {
        const line = raw.replace(/\r$/, '').trim();
        if (!line) {
          continue;
        }
        if (/Job <\d+> is not found/.test(line)) {
          notFound(line);
          continue;
        }
        const f = line.split(TEXT_DELIMITER);
        if (f.length < BJOBS_FIELDS.length || !JOB_ID_RE.test(f[0].trim())) {
          if (LSF_TROUBLE.test(line) || /^No (unfinished |matching )?job found/i.test(line)) {
            continue;
          }
          if (/-json|illegal option|usage:/i.test(`${line}\n${stderr}`)) {
            return unknown('bjobs does not know -json (LSF before 10.1.0.2): use LsfAdapter({ json: false })');
          }
          return unknown(`unexpected bjobs output: ${show(line)}`);
        }
        // a `^` inside the last (free-text) field: join the rest back
        const row: Row = {};
        BJOBS_FIELDS.forEach((name, i) => {
          const v = i === BJOBS_FIELDS.length - 1 ? f.slice(i).join(TEXT_DELIMITER) : f[i];
          row[name] = v.trim() === '-' ? '' : v.trim();
        });
        if (!rows.has(row.jobid)) {
          rows.set(row.jobid, row);
        }
      }
    }

    if (!rows.size && !jobIds.some(id => gone.has(id))) {
      if (LSF_TROUBLE.test(`${stderr}\n${stdout}`)) {
        return unknown(`LSF not reachable: ${firstLines(stderr) || firstLines(stdout)}`);
      }
      if (/-json|illegal option|usage:/i.test(stderr)) {
        return unknown('bjobs does not know -json (LSF before 10.1.0.2): use LsfAdapter({ json: false })');
      }
      if (result.code !== 0 || stderr.trim()) {
        return unknown(
          `bjobs failed (exit code ${result.code}): ${firstLines(stderr) || firstLines(stdout) || 'no output'}`
        );
      }
    }
    return all(jobId => {
      const row = rows.get(jobId);
      if (row) {
        return this.rowStatus(jobId, row);
      }
      if (gone.has(jobId) || (result.code === 0 && !LSF_TROUBLE.test(stderr))) {
        return { jobId, phase: 'ended', nativeState: '', reason: 'left the queue' };
      }
      return {
        jobId,
        phase: 'unknown',
        nativeState: '',
        reason: `bjobs did not report it: ${firstLines(stderr) || 'no output'}`
      };
    });
  }

  private rowStatus(jobId: string, row: Row): IJobStatus {
    const state = (row.stat ?? '').toUpperCase();
    const info = STATES[state];
    if (!info) {
      return { jobId, phase: 'unknown', nativeState: state, reason: `unrecognised LSF state ${state || '(empty)'}` };
    }
    const st: IJobStatus = { jobId, phase: info.phase, nativeState: state };
    if (info.phase === 'pending') {
      const pend = (row.pend_reason ?? '').trim().replace(/;$/, '');
      if (pend) {
        st.nativeReason = pend;
      }
      st.reason = info.reason ? (pend ? `${info.reason}: ${pend}` : info.reason) : pend || 'waiting to be scheduled';
    } else if (info.phase === 'running') {
      st.node = firstExecHost(row.exec_host);
      const left = parseTimeLeft(row.time_left);
      if (left !== undefined) {
        st.timeLeftSeconds = left;
      }
      if (info.reason) {
        st.reason = info.reason;
      }
    } else {
      const exitReason = (row.exit_reason ?? '').trim();
      const code = (row.exit_code ?? '').trim();
      if (exitReason) {
        st.nativeReason = exitReason;
      }
      const known = EXIT_REASONS.find(([re]) => re.test(exitReason));
      if (state === 'EXIT') {
        st.reason = known ? known[1] : code && code !== '0' ? `failed (exit code ${code})` : info.reason;
      } else {
        st.reason = info.reason;
      }
    }
    return st;
  }

  cancelCommand(jobId: string): string {
    if (typeof jobId !== 'string' || !JOB_ID_RE.test(jobId)) {
      throw invalid('jobId', jobId, 'LSF job ids are digits');
    }
    return cancelTolerating(`bkill ${jobId}`, 'Job has already finished|No matching job found|is not found');
  }

  extendCommand(jobId: string, r: IResources): string {
    this.cancelCommand(jobId);
    return `bmod -W ${formatRunLimit(walltimeMinutes(r.walltime))} ${jobId}`;
  }

  /** A finished job's figures, while LSF still lists it (CLEAN_PERIOD, an hour by default). */
  accountingCommand(jobId: string): string {
    this.cancelCommand(jobId); // (the same check of the id)
    return `bjobs -o "${BJOBS_ACCOUNTING_FIELDS}" -json ${jobId}`;
  }

  parseAccounting(jobId: string, result: ICommandResult): IJobAccounting | undefined {
    return parseBjobsAccounting(jobId, result);
  }
}
