/**
 * Grid Engine adapter (Son of Grid Engine, Univa / Altair Grid Engine, Open Cluster
 * Scheduler): job script, qsub / qstat / qdel commands, and the mapping of Grid Engine's
 * state letters to pending / running / ended / unknown.
 *
 * Pure: no I/O. Values are validated first (same rules and messages as the Slurm adapter)
 * and quoted where a shell reads them. `qstat -xml` is read with a small tokenizer (no XML
 * dependency). Parsing is tested against outputs published in public repositories
 * (src/agent/__tests__/fixtures/sge/README.md). See docs/schedulers/sge.md.
 */
import type { IJobAccounting, IResources } from '../../common/api';
import { parseQacct } from './accounting';
import { cancelTolerating } from './cancel';
import { checkedResources, queueAndAccount } from './unsupported';
import { shQuote } from './shell';
import { formatHms } from './pbs';
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
  nameField,
  nodesField,
  show,
  parseWalltime,
  statusOf
} from './validate';
import { renderJobScript } from './job-script';

export interface ISgeOptions {
  /** Parallel environment for `cpus` (`-pe <pe> N`); default `smp`. */
  parallelEnvironment?: string;
  /** Consumable complex for `gpus` (`-l <name>=N`); default `gpu`. */
  gpuResource?: string;
}

/** Job ids are numbers (`qsub -terse` prints `1234`, or `1234.1-10:1` for arrays). */
const JOB_ID_RE = /^\d{1,20}$/;
/** `-opt` or `-opt value`: one option word, one value without blanks, quotes or shell syntax. */
const DIRECTIVE_RE = /^-([A-Za-z][A-Za-z_]{0,15})(?:\s+([A-Za-z0-9._,:/@%+=*&|!~^[\]-]{1,256}))?$/;

const RESERVED_OPTIONS: Record<string, string> = {
  N: 'the job name is set by jupyterlab-remote-cluster itself',
  o: 'the output path is set by jupyterlab-remote-cluster itself',
  e: 'the error path is set by jupyterlab-remote-cluster itself',
  j: 'output and error files are set by jupyterlab-remote-cluster itself',
  i: 'the job reads no input file',
  wd: 'the working directory is set by jupyterlab-remote-cluster itself',
  cwd: 'the working directory is set by jupyterlab-remote-cluster itself',
  S: 'the job shell is set by jupyterlab-remote-cluster itself',
  t: 'array jobs cannot host a session',
  terse: 'set by jupyterlab-remote-cluster itself',
  sync: 'qsub would wait until the job ends',
  now: 'immediate jobs are not supported',
  b: 'the job is a script',
  C: 'the directive prefix cannot be changed',
  h: 'a held job would never start',
  hold_jid: 'sessions do not wait for other jobs',
  verify: 'the job would not be submitted',
  w: 'verification modes (-w v, -w p) would not submit the job'
};
const FIELD_OPTIONS: Record<string, string> = { q: 'partition', A: 'account', pe: 'cpus' };
const FIELD_RESOURCES: Record<string, string> = {
  h_rt: 'walltime',
  s_rt: 'walltime',
  h_vmem: 'memory',
  mem_free: 'memory',
  gpu: 'gpus'
};

/** Megabytes in a memory value (`4G` → 4096; no unit = megabytes, as for Slurm). */
function memoryMegabytes(v: unknown): number {
  const { n, unit } = memoryAmount(v);
  const factor: Record<string, number> = { K: 1 / 1024, '': 1, M: 1, G: 1024, T: 1024 * 1024 };
  return n * factor[unit];
}

const OPTION_RULES: IOptionRules = {
  reserved: RESERVED_OPTIONS,
  fields: FIELD_OPTIONS,
  listOptions: ['l', 'hard', 'soft'],
  resources: FIELD_RESOURCES,
  resourceName: item => item.split('=')[0]
};

function directives(v: unknown): string[] {
  return eachDirective(
    v,
    'give a list of directives such as ["-P myproject"]',
    DIRECTIVE_RE,
    'each directive must look like -opt or -opt value (one value, without spaces, quotes, ;, $, ` or line breaks)',
    (m, d) => checkOption(OPTION_RULES, d, m[1], m[2])
  );
}

/* ------------------------------------------------------------------------------------ */

/** One `<job_list>` of `qstat -xml`: its `state` attribute and its simple child elements. */
export interface ISgeJob {
  listState: string;
  fields: Record<string, string>;
}

const XML_ENTITIES: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

function unescapeXml(s: string): string {
  return s.replace(/&(lt|gt|amp|quot|apos|#\d{1,7}|#x[0-9a-fA-F]{1,6});/g, (_, e: string) => {
    if (e[0] !== '#') {
      return XML_ENTITIES[e];
    }
    const code = e[1] === 'x' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10);
    return code <= 0x10ffff ? String.fromCodePoint(code) : '';
  });
}

/**
 * The `<job_list>` entries of `qstat -xml` output, in order. Returns undefined when the
 * text is not qstat XML (no `<job_info` root), so that noise is never read as "no jobs".
 */
export function parseQstatXml(xml: string): ISgeJob[] | undefined {
  if (!/<job_info[\s>]/.test(xml) || !/<\/job_info>\s*$/.test(xml.trim() + '\n')) {
    return undefined;
  }
  const jobs: ISgeJob[] = [];
  const listRe = /<job_list\b([^>]*)>([\s\S]*?)<\/job_list>/g;
  let m: RegExpExecArray | null;
  while ((m = listRe.exec(xml))) {
    const stateAttr = /\bstate\s*=\s*["']([^"']*)["']/.exec(m[1]);
    const fields: Record<string, string> = {};
    const fieldRe = /<([A-Za-z_][A-Za-z0-9_]*)\b[^>]*?(?:\/>|>([^<]*)<\/\1>)/g;
    let f: RegExpExecArray | null;
    while ((f = fieldRe.exec(m[2]))) {
      if (!(f[1] in fields)) {
        fields[f[1]] = unescapeXml((f[2] ?? '').trim());
      }
    }
    if (fields['queue_name'] === undefined) {
      // `qstat -f -xml` nests running jobs in their queue instance instead
      const before = xml.slice(0, m.index);
      const open = before.lastIndexOf('<Queue-List>');
      if (open >= 0 && before.indexOf('</Queue-List>', open) < 0) {
        const name = /<name>([^<]*)<\/name>/.exec(before.slice(open));
        if (name) {
          fields['queue_name'] = unescapeXml(name[1].trim());
        }
      }
    }
    jobs.push({ listState: stateAttr ? stateAttr[1] : '', fields });
  }
  return jobs;
}

/** Host of a queue instance: `all.q@node1.cluster` → `node1.cluster`. */
export function queueHost(queueName: string | undefined): string | undefined {
  const at = (queueName ?? '').indexOf('@');
  const host = at >= 0 ? (queueName ?? '').slice(at + 1).trim() : '';
  return host || undefined;
}

/** qstat's / qsub's words when sge_qmaster cannot be reached: the job's fate is unknown. */
const QMASTER_TROUBLE =
  /unable to contact qmaster|commlib error|Connection refused|can't connect|cannot connect|Connection timed out|No route to host|unable to send message|failed receiving gdi request|timeout/i;

function guessField(text: string): string | undefined {
  return fieldNamedIn(text, [
    [/queue/i, 'partition'],
    [/h_rt|runtime|time limit/i, 'walltime'],
    [/project|account/i, 'account'],
    [/h_vmem|memory/i, 'memory'],
    [/parallel environment|\bpe\b|slots/i, 'cpus'],
    [/gpu/i, 'gpus']
  ]);
}

/* ------------------------------------------------------------------------------------ */

export class SgeAdapter implements ISchedulerAdapter {
  readonly name = 'sge';
  readonly title = 'Grid Engine';
  // qrsh -inherit: a task of this job on one of its hosts (the PE needs control_slaves TRUE)
  readonly multiNode = {
    hosts: 'awk \'{print $1}\' "$PE_HOSTFILE"',
    // qrsh of the job's own cell: $SGE_ROOT/bin/$ARC (set in every job), else the
    // documented $SGE_BINARY_PATH, else PATH's (a packaged wrapper may pick another cell)
    launch:
      'q=qrsh; for d in "$SGE_ROOT/bin/$ARC" "$SGE_BINARY_PATH"; do if [ -x "$d/qrsh" ]; then q="$d/qrsh"; break; fi; done; ' +
      'exec "$q" -inherit -nostdin {host} {command}'
  };
  // (qdel takes job names too: every job of this user with that name)
  readonly elastic = { config: 'sge', cancelTagged: 'qdel {name}' };
  readonly parallelEnvironment: string;
  readonly gpuResource: string;

  constructor(options: ISgeOptions = {}) {
    this.parallelEnvironment = nameField('parallelEnvironment', options.parallelEnvironment ?? 'smp');
    this.gpuResource = nameField('gpuResource', options.gpuResource ?? 'gpu');
  }

  validate(resources: IResources): void {
    this.directiveLines(resources);
  }

  /** The `#$` options for the resources (validating every value on the way). */
  private directiveLines(resources: IResources): string[] {
    const r = checkedResources(resources, 'Grid Engine', {
      qos: 'leave it empty and choose a queue (partition) or a project (extraDirectives -P)',
      constraint: 'leave it empty and request a host resource in extraDirectives (-l name=value)',
      reservation: 'leave it empty and give the advance reservation in extraDirectives (-ar ID)',
      memoryPerCpu: 'leave it empty and give the memory for the whole job in memory (the adapter divides it per slot)',
      parallelEnvironment: null // Grid Engine's own
    });
    const lines = queueAndAccount(r, '-A');
    if (isSet(r.walltime)) {
      lines.push(`-l h_rt=${formatHms(parseWalltime(r.walltime))}`);
    }
    const nodes = nodesField(r);
    const cpus = isSet(r.cpus) ? intField('cpus', r.cpus, 1, 4096) : 1;
    const pe = isSet(r.parallelEnvironment) ? nameField('parallelEnvironment', r.parallelEnvironment) : undefined;
    if (nodes > 1 && !pe) {
      throw invalid(
        'parallelEnvironment',
        r.parallelEnvironment,
        `Grid Engine spreads a job over hosts by a parallel environment: name one whose allocation rule is ${cpus} slot${cpus === 1 ? '' : 's'} per host (the CPUs per node), e.g. one made for this with allocation_rule ${cpus} and control_slaves TRUE`
      );
    }
    // slots = nodes × CPUs per node; the PE's allocation rule decides how many land on each host
    if (nodes * cpus > 1 || pe) {
      lines.push(`-pe ${pe ?? this.parallelEnvironment} ${nodes * cpus}`);
    }
    if (isSet(r.memory)) {
      // h_vmem is per slot: Grid Engine multiplies it by the slots of the parallel environment
      const perSlot = Math.max(1, Math.ceil(memoryMegabytes(r.memory) / cpus));
      lines.push(`-l h_vmem=${perSlot}M`);
    }
    const gpus = isSet(r.gpus) ? intField('gpus', r.gpus, 0, 64) : 0;
    if (gpus > 0) {
      lines.push(`-l ${this.gpuResource}=${gpus}`);
    }
    const extra = directives(r.extraDirectives);
    if (gpus > 0 && extra.some(d => new RegExp(`^-l (.*,)?${this.gpuResource}=`).test(d))) {
      throw invalid('extraDirectives', r.extraDirectives, `use the gpus field instead of -l ${this.gpuResource}`);
    }
    lines.push(...extra);
    return lines;
  }

  renderScript(spec: IJobSpec): string {
    return renderJobScript(spec, {
      title: 'Grid Engine',
      // qsub reads #$ lines anywhere in the script
      directive: /^\s*#\s*\$/,
      directiveHint: 'put Grid Engine directives in extraDirectives, not in setup lines',
      header: ({ name, stdout, stderr, workdir }) =>
        [
          `-N ${name}`,
          `-o ${stdout}`,
          `-e ${stderr}`,
          '-j n',
          `-wd ${workdir}`,
          '-S /bin/sh',
          ...this.directiveLines(spec.resources ?? {})
        ].map(d => `#$ ${d}`)
    });
  }

  submitCommand(scriptPath: string): string {
    if (typeof scriptPath !== 'string' || !scriptPath || /[\0\r\n]/.test(scriptPath)) {
      throw invalid('scriptPath', scriptPath, 'must be a path on one line');
    }
    return `qsub -terse ${shQuote(scriptPath)}`;
  }

  parseSubmit(result: ICommandResult): string {
    const stdout = result.stdout ?? '';
    const stderr = result.stderr ?? '';
    if (result.code === 0) {
      const lines = stdout
        .split('\n')
        .map(l => l.trim())
        .filter(Boolean);
      // `1234`, or `1234.1-10:1` for an array job
      const m = /^(\d{1,20})(?:\.\d+-\d+:\d+)?$/.exec(lines[lines.length - 1] ?? '');
      if (m) {
        return m[1];
      }
      throw new Error(`qsub printed no job id: ${firstLines(stdout + '\n' + stderr, 3) || '(nothing)'}`);
    }
    if (result.code === null || QMASTER_TROUBLE.test(stderr)) {
      throw new SchedulerUnavailableError(
        `Grid Engine did not answer the submission (${firstLines(stderr) || 'no output'}).`
      );
    }
    const text = stderr
      .split('\n')
      .map(l => l.trim())
      .filter(Boolean)
      .map(l => l.replace(/^qsub:\s*/i, '').replace(/^(error|Unable to run job):\s*/i, ''))
      .join(' ');
    let message = `Grid Engine refused the job: ${text || `qsub exited with code ${result.code}`}`;
    if (!/[.!?]$/.test(message)) {
      message += '.';
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
        throw invalid('jobId', id, 'Grid Engine job ids are digits');
      }
    }
    // qstat -xml cannot select job ids (-j prints another format): list the user's own
    // jobs (explicit -u: a site's sge_qstat file may say -u '*') and pick ours.
    return 'qstat -xml -u "$(id -un)"';
  }

  parseStatus(jobIds: string[], result: ICommandResult): Map<string, IJobStatus> {
    const { all, unknown } = statusOf(jobIds);
    const stdout = result.stdout ?? '';
    const stderr = result.stderr ?? '';

    if (result.code === null) {
      return unknown('qstat did not finish (slow qmaster?)');
    }
    if (QMASTER_TROUBLE.test(stderr)) {
      return unknown(`Grid Engine qmaster not reachable: ${firstLines(stderr)}`);
    }
    if (result.code !== 0) {
      return unknown(
        `qstat failed (exit code ${result.code}): ${firstLines(stderr) || firstLines(stdout) || 'no output'}`
      );
    }
    const jobs = parseQstatXml(stdout);
    if (!jobs) {
      return unknown(`unexpected qstat output: ${show(firstLines(stdout, 1) || '(nothing)')}`);
    }
    // an array or parallel job appears once per task / queue instance: the first entry wins,
    // except that a running entry beats a pending one (some tasks started)
    const byId = new Map<string, ISgeJob>();
    for (const job of jobs) {
      const id = job.fields['JB_job_number'];
      const seen = id ? byId.get(id) : undefined;
      if (id && (!seen || (seen.listState !== 'running' && job.listState === 'running'))) {
        byId.set(id, job);
      }
    }
    return all(jobId => {
      const job = byId.get(jobId);
      return job ? this.jobStatus(jobId, job) : { jobId, phase: 'ended', nativeState: '', reason: 'left the queue' };
    });
  }

  private jobStatus(jobId: string, job: ISgeJob): IJobStatus {
    const state = (job.fields['state'] ?? '').trim();
    const st: IJobStatus = { jobId, phase: 'unknown', nativeState: state };
    if (!/^[A-Za-z]{1,8}$/.test(state)) {
      st.reason = `unrecognised Grid Engine state ${show(state)}`;
      return st;
    }
    const node = queueHost(job.fields['queue_name']);
    if (state.includes('d')) {
      st.phase = 'ended';
      st.reason = 'cancelled (being deleted)';
    } else if (state.includes('z')) {
      st.phase = 'ended';
      st.reason = 'ended';
    } else if (state.includes('E')) {
      // Eqw: the job failed to start and stays queued in error until cleared or deleted
      st.phase = 'pending';
      st.blocked = true;
      st.reason = `the job is in error state and will not start (see qstat -j ${jobId} for the reason)`;
      st.nativeReason = 'error';
    } else if (/[rt]/.test(state)) {
      st.phase = 'running';
      if (node) {
        st.node = node;
      }
      if (/[sST]/.test(state)) {
        st.reason = 'suspended by the scheduler';
      } else if (state.includes('t')) {
        st.reason = 'starting (being transferred to the node)';
      } else if (state.includes('R')) {
        st.reason = 'restarted';
      }
    } else if (state.includes('q') || state.includes('w')) {
      st.phase = 'pending';
      st.reason = state.includes('h')
        ? 'held (qrls to release it)'
        : state.includes('R')
          ? 'rescheduled, waiting to be scheduled again'
          : 'waiting to be scheduled';
    } else if (/[sST]/.test(state)) {
      st.phase = 'running';
      st.reason = 'suspended by the scheduler';
      if (node) {
        st.node = node;
      }
    } else {
      st.reason = `unrecognised Grid Engine state ${state}`;
    }
    return st;
  }

  cancelCommand(jobId: string): string {
    if (typeof jobId !== 'string' || !JOB_ID_RE.test(jobId)) {
      throw invalid('jobId', jobId, 'Grid Engine job ids are digits');
    }
    // a job that left the queue: denied: job "123" does not exist
    return cancelTolerating(`qdel ${jobId}`, 'does not exist');
  }

  /** A finished job's record in Grid Engine's accounting file (written as the job ends). */
  accountingCommand(jobId: string): string {
    this.cancelCommand(jobId); // (the same check of the id)
    return `qacct -j ${jobId}`;
  }

  parseAccounting(_jobId: string, result: ICommandResult): IJobAccounting | undefined {
    return parseQacct(result);
  }

  /** `qalter -l` replaces the job's whole hard resource list: every `-l` of the job again. */
  extendCommand(jobId: string, r: IResources): string {
    this.cancelCommand(jobId);
    const limits = this.directiveLines(r).filter(l => l.startsWith('-l '));
    return `qalter ${limits.join(' ')} ${jobId}`;
  }
}
