/**
 * Plain SSH host adapter (`scheduler: "ssh"`): no batch system, for workstations and cloud
 * VMs. The "job" is the job script started detached on the SSH host itself.
 *
 * - submit: `setsid` starts a small sh wrapper in its own session (stdin from /dev/null,
 *   the script sends its output to the spec's stdout/stderr paths). The wrapper prints the
 *   job id `<host>:<pid>:<start>`, where `<start>` is the process start time from
 *   /proc/<pid>/stat (clock ticks since boot): a recycled pid never matches it, and a job
 *   asked about on another host (a round-robin alias) is "unknown", never "ended".
 * - records: `~/.jupyter-remote-cluster/ssh-jobs/<id>` holds `walltime=S`, then `exit=N`
 *   when the script ends and `cancelled=1` when it is cancelled, so an ended job has a reason.
 * - status: one command for every id (/proc and ps), with an end marker so that a cut-off
 *   answer is "unknown".
 * - cancel: SIGTERM to every process of the job's session and its descendants (the
 *   helper's kernels have sessions of their own), SIGKILL to what is left after a grace.
 * - walltime: enforced with GNU `timeout` (SIGTERM at the limit, SIGKILL 30 s later).
 * - every other resource (partition, account, CPUs, memory, GPUs, ...) is refused, naming
 *   the field: a plain host allocates nothing, and silently ignoring a request is worse.
 *
 * Needs Linux (/proc, util-linux setsid, procps ps, GNU coreutils timeout). Pure: no I/O;
 * the commands are tested with real sh/ps in src/agent/__tests__/ssh-host.spec.ts.
 * See docs/schedulers/ssh.md.
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
import {
  commandLine,
  firstLines,
  invalid,
  isSet,
  jobFiles,
  setupBlock,
  setupLines,
  statusOf,
  parseWalltime,
  pythonCheck,
  oneNodeOnly
} from './validate';

/** `<host>:<pid>:<start time in clock ticks>`, host as `uname -n` prints it. */
const JOB_ID_RE = /^([A-Za-z0-9._-]{1,253}):(\d{1,10}):(\d{1,20})$/;
/** Where the wrapper keeps one small record per job (relative to the remote home). */
export const RECORD_DIR = '.jupyter-remote-cluster/ssh-jobs';
/** Marker line of the job script that carries the walltime, read by the wrapper. */
export const WALLTIME_MARKER = '# jrc-walltime-seconds:';
/** Last line of the status command's output: anything cut short before it is "unknown". */
export const STATUS_END = '@@jrc-ssh-status-end@@';
/** Seconds between SIGTERM and SIGKILL, on cancel and (after `timeout`) at the walltime. */
export const KILL_GRACE_S = 10;
const TIMEOUT_KILL_AFTER_S = 30;
/** Exit status of GNU timeout when the limit was reached. */
const TIMEOUT_EXIT = 124;

/** Resources a plain host cannot provide, with what the user should do instead. */
const REFUSED: [keyof IResources, string][] = [
  ['partition', 'a plain SSH host has no partitions or queues: leave it empty'],
  ['account', 'a plain SSH host has no accounts to charge: leave it empty'],
  ['qos', 'a plain SSH host has no QoS: leave it empty'],
  ['reservation', 'a plain SSH host has no reservations: leave it empty'],
  ['constraint', 'a plain SSH host has no node features to select: leave it empty'],
  ['cpus', 'a plain SSH host allocates no CPUs (the session may use the whole host): leave it empty'],
  ['memory', 'a plain SSH host allocates no memory (the session may use the whole host): leave it empty'],
  ['memoryPerCpu', 'a plain SSH host allocates no memory: leave it empty'],
  ['extraDirectives', 'a plain SSH host has no batch system to pass directives to: leave it empty'],
  ['parallelEnvironment', 'a plain SSH host has no parallel environments: leave it empty']
];

/** sh function: the start time of live (not zombie) process $1, or failure. */
const START_FN =
  'jrc_start() { s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1; s=${s##*) }; set -- $s; ' +
  '[ "$1" != Z ] || return 1; printf \'%s\\n\' "${20}"; }';
const RECORDS = `R="$HOME/${RECORD_DIR}"`;

/**
 * The wrapper, run by `setsid sh -c WRAPPER jrc-ssh-job SCRIPT HANDSHAKE RECORDS`: it is the
 * session leader (its pid is the job id's), writes the record and the id, runs the script
 * and records its exit status. It survives SIGTERM (trap) to record how the script ended;
 * the trap is reset for the script itself.
 */
const WRAPPER = [
  START_FN,
  'st=$(jrc_start $$) || { echo "cannot read /proc/$$/stat: plain SSH hosts must run Linux" >&2; exit 1; }',
  // the id must parse (JOB_ID_RE): refuse to start rather than run a job nobody can track
  'h=$(uname -n); case $h in \'\'|*[!A-Za-z0-9._-]*) echo "unsupported host name: $h" >&2; exit 1 ;; esac',
  'id="$h:$$:$st"',
  `lim=$(sed -n 's/^${WALLTIME_MARKER} \\([0-9][0-9]*\\)$/\\1/p' "$1" | head -n 1)`,
  'printf \'walltime=%s\\n\' "${lim:-0}" > "$3/$id" || exit 1',
  'printf \'%s\\n\' "$id" > "$2.tmp" && mv "$2.tmp" "$2" || exit 1',
  'JRC_SSH_JOB_ID=$id; export JRC_SSH_JOB_ID',
  'trap : TERM INT HUP',
  'sh "$1"',
  'printf \'exit=%s\\n\' "$?" >> "$3/$id"'
].join('\n');

function parseId(jobId: string): { host: string; pid: string; start: string } {
  const m = typeof jobId === 'string' ? JOB_ID_RE.exec(jobId) : null;
  if (!m) {
    throw invalid('jobId', jobId, 'plain SSH host job ids look like host:pid:start');
  }
  return { host: m[1], pid: m[2], start: m[3] };
}

/** Why a job that is no longer running ended, from its record (`walltime=S exit=N cancelled=1`). */
export function endReason(record: Record<string, string>): string {
  if (record.cancelled) {
    return 'cancelled';
  }
  const code = record.exit;
  if (code === undefined) {
    return 'the process is gone (killed, or the host restarted)';
  }
  const n = Number(code);
  if (n === 0) {
    return 'completed';
  }
  if (n === TIMEOUT_EXIT && Number(record.walltime ?? 0) > 0) {
    return 'walltime reached';
  }
  if (n > 128 && n < 160) {
    return `killed by signal ${n - 128}`;
  }
  return `failed (the job exited with code ${n})`;
}

export interface ISshHostOptions {
  /** Seconds between SIGTERM and SIGKILL on cancel (default KILL_GRACE_S). */
  killGraceSeconds?: number;
}

export class SshHostAdapter implements ISchedulerAdapter {
  readonly name = 'ssh';
  readonly title = 'SSH host';
  readonly helperOnLoopback = true;
  private readonly killGrace: number;

  constructor(options: ISshHostOptions = {}) {
    const grace = options.killGraceSeconds ?? KILL_GRACE_S;
    if (!Number.isInteger(grace) || grace < 0 || grace > 600) {
      throw new InvalidRequestError(
        `Invalid killGraceSeconds ${String(grace)}: use a whole number from 0 to 600.`,
        'killGraceSeconds'
      );
    }
    this.killGrace = grace;
  }

  validate(resources: IResources): void {
    this.walltimeSeconds(resources);
  }

  /** The walltime in seconds (0: none), after refusing every resource a plain host cannot honour. */
  private walltimeSeconds(resources: IResources): number {
    if (typeof resources !== 'object' || resources === null) {
      throw new InvalidRequestError('Resources must be an object.', 'resources');
    }
    oneNodeOnly(resources, 'A plain SSH host');
    for (const [field, rule] of REFUSED) {
      const v = resources[field];
      if (isSet(v) && !(Array.isArray(v) && v.length === 0)) {
        throw invalid(field, v, rule);
      }
    }
    if (isSet(resources.gpus) && resources.gpus !== 0 && resources.gpus !== ('0' as unknown)) {
      throw invalid(
        'gpus',
        resources.gpus,
        'a plain SSH host allocates no GPUs (the session sees every GPU of the host): leave it at 0'
      );
    }
    return isSet(resources.walltime) ? parseWalltime(resources.walltime) : 0;
  }

  renderScript(spec: IJobSpec): string {
    const { stdout, stderr, workdir } = jobFiles(spec);
    const walltime = this.walltimeSeconds(spec.resources ?? {});
    const setup = setupLines(
      spec.setup,
      /^\s*#\s*jrc-/i,
      'lines starting with "# jrc-" are reserved for jupyterlab-remote-cluster'
    );
    commandLine(spec.command);
    const lines = [
      '#!/bin/sh',
      '# jupyterlab-remote-cluster session on a plain SSH host (no batch system; generated, edits are overwritten)',
      ...(walltime > 0 ? [`${WALLTIME_MARKER} ${walltime}`] : []),
      `exec >>${shQuote(stdout)} 2>>${shQuote(stderr)} </dev/null`,
      `cd ${shQuote(workdir)} || exit 1`,
      ''
    ];
    lines.push(...setupBlock(setup), ...pythonCheck(spec.python));
    if (walltime > 0) {
      // --foreground: timeout stays in the job's process group, so a cancel reaches it
      lines.push(
        `# walltime: SIGTERM to the helper at ${walltime} s, SIGKILL ${TIMEOUT_KILL_AFTER_S} s later`,
        `exec timeout --foreground --kill-after=${TIMEOUT_KILL_AFTER_S} ${walltime} ${spec.command}`,
        ''
      );
    } else {
      lines.push('# no walltime: the session runs until it is cancelled', `exec ${spec.command}`, '');
    }
    return lines.join('\n');
  }

  submitCommand(scriptPath: string): string {
    if (typeof scriptPath !== 'string' || !scriptPath || /[\0\r\n]/.test(scriptPath)) {
      throw invalid('scriptPath', scriptPath, 'must be a path on one line');
    }
    const script = shQuote(scriptPath);
    return [
      `${RECORDS}`,
      'umask 077 && mkdir -p "$R" || exit 2',
      // records of jobs that ended a month ago are of no use any more
      'find "$R" -type f -mtime +30 -exec rm -f {} + 2>/dev/null',
      "command -v setsid >/dev/null 2>&1 || { echo 'setsid not found: plain SSH hosts need Linux with util-linux' >&2; exit 2; }",
      `[ -r ${script} ] || { printf 'cannot read the job script %s\\n' ${script} >&2; exit 2; }`,
      'f=$(mktemp "$R/.start.XXXXXX") || exit 2',
      `setsid sh -c ${shQuote(WRAPPER)} jrc-ssh-job ${script} "$f" "$R" </dev/null >/dev/null 2>"$f.err" &`,
      // the wrapper writes to $f.err only when it gives up before the handshake
      'i=0; while [ ! -s "$f" ] && [ ! -s "$f.err" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done',
      'id=$(cat "$f"); err=$(cat "$f.err" 2>/dev/null); rm -f "$f" "$f.err"',
      'if [ -n "$id" ]; then printf \'%s\\n\' "$id"; else printf \'the job did not start: %s\\n\' "${err:-no answer within 10 s}" >&2; exit 1; fi'
    ].join('\n');
  }

  parseSubmit(result: ICommandResult): string {
    const stdout = result.stdout ?? '';
    const stderr = result.stderr ?? '';
    if (result.code === null) {
      throw new SchedulerUnavailableError('The SSH host did not answer the submission.');
    }
    const lines = stdout
      .split('\n')
      .map(l => l.trim())
      .filter(Boolean);
    const last = lines[lines.length - 1] ?? '';
    if (result.code === 0 && JOB_ID_RE.test(last)) {
      return last;
    }
    throw new Error(
      `The session could not be started on the SSH host: ${firstLines(stderr) || firstLines(stdout) || `exit code ${result.code}`}`
    );
  }

  statusCommand(jobIds: string[]): string {
    const ids = [...new Set(jobIds)];
    if (!ids.length) {
      throw new InvalidRequestError('No job ids to query.', 'jobIds');
    }
    ids.forEach(parseId);
    return [
      `${RECORDS}; h=$(uname -n)`,
      START_FN,
      `for id in ${ids.join(' ')}; do`,
      '  host=${id%%:*}; rest=${id#*:}; pid=${rest%%:*}; st=${rest#*:}',
      "  rec=$(tr '\\n' ' ' < \"$R/$id\" 2>/dev/null)",
      '  if [ "$host" != "$h" ]; then echo "$id otherhost $h"',
      '  elif [ "$(jrc_start "$pid")" = "$st" ]; then echo "$id running etimes=$(ps -o etimes= -p "$pid" | tr -d \' \') $rec"',
      '  else echo "$id ended $rec"; fi',
      'done',
      `echo ${STATUS_END}`
    ].join('\n');
  }

  parseStatus(jobIds: string[], result: ICommandResult): Map<string, IJobStatus> {
    const { all, unknown } = statusOf(jobIds);
    const stdout = result.stdout ?? '';
    if (result.code === null) {
      return unknown('the status command did not finish (the SSH host is slow?)');
    }
    if (result.code !== 0 || !stdout.split('\n').some(l => l.trim() === STATUS_END)) {
      return unknown(
        `the status command failed (exit code ${result.code}): ${firstLines(result.stderr ?? '') || firstLines(stdout) || 'no output'}`
      );
    }
    const rows = new Map<string, { what: string; rest: string[] }>();
    for (const line of stdout.split('\n')) {
      const [id, what, ...rest] = line.trim().split(/\s+/);
      if (id && what && JOB_ID_RE.test(id)) {
        rows.set(id, { what, rest });
      }
    }
    return all(jobId => {
      const row = rows.get(jobId);
      if (!row) {
        return { jobId, phase: 'unknown', nativeState: '', reason: 'the status command did not report this job' };
      }
      const host = jobId.split(':')[0];
      if (row.what === 'otherhost') {
        return {
          jobId,
          phase: 'unknown',
          nativeState: 'otherhost',
          reason: `the job runs on ${host} but the connection reached ${row.rest[0] ?? 'another host'} (does the host name point to several machines?)`
        };
      }
      const record: Record<string, string> = {};
      for (const kv of row.rest) {
        const eq = kv.indexOf('=');
        if (eq > 0) {
          record[kv.slice(0, eq)] = kv.slice(eq + 1);
        }
      }
      if (row.what === 'running') {
        const st: IJobStatus = { jobId, phase: 'running', nativeState: 'running', node: host };
        const limit = Number(record.walltime ?? 0);
        const elapsed = Number(record.etimes);
        if (limit > 0 && Number.isFinite(elapsed) && record.etimes !== '') {
          st.timeLeftSeconds = Math.max(0, limit - elapsed);
        }
        return st;
      }
      if (row.what === 'ended') {
        const st: IJobStatus = { jobId, phase: 'ended', nativeState: 'ended', reason: endReason(record) };
        if (record.exit !== undefined) {
          st.nativeReason = `exit=${record.exit}`;
        }
        return st;
      }
      return { jobId, phase: 'unknown', nativeState: row.what, reason: `unexpected status ${row.what}` };
    });
  }

  cancelCommand(jobId: string): string {
    const { host, pid, start } = parseId(jobId);
    const tries = this.killGrace * 10;
    return [
      `${RECORDS}; pid=${pid}; st=${start}`,
      START_FN,
      `[ "$(uname -n)" = ${host} ] || { echo "job ${jobId} runs on ${host}, but this connection reached $(uname -n)" >&2; exit 1; }`,
      // gone already: nothing to cancel (its record keeps how it ended)
      '[ "$(jrc_start $pid)" = "$st" ] || exit 0',
      `echo cancelled=1 >> "$R/${jobId}"`,
      // the job's session and every descendant (kernels start sessions of their own)
      'jrc_tree() { ps -e -o pid= -o ppid= -o sid= | awk -v r="$pid" \'{ p[NR]=$1; pp[NR]=$2; s[NR]=$3 } ' +
        'END { m[r]=1; for (i=1;i<=NR;i++) if (s[i]==r) m[p[i]]=1; ' +
        "do { n=0; for (i=1;i<=NR;i++) if (!(p[i] in m) && (pp[i] in m)) { m[p[i]]=1; n++ } } while (n); for (k in m) print k }'; }",
      'list=; for p in $(jrc_tree); do s=$(jrc_start "$p") && list="$list $p:$s"; done',
      'for e in $list; do kill -TERM "${e%%:*}" 2>/dev/null; done',
      'alive() { for e in $list; do [ "$(jrc_start "${e%%:*}")" = "${e#*:}" ] && return 0; done; return 1; }',
      `i=0; while alive && [ $i -lt ${tries} ]; do sleep 0.1; i=$((i+1)); done`,
      'if alive; then',
      '  for e in $list; do [ "$(jrc_start "${e%%:*}")" = "${e#*:}" ] && kill -KILL "${e%%:*}" 2>/dev/null; done',
      // descendants started meanwhile, while the session leader is still the same process
      '  if [ "$(jrc_start $pid)" = "$st" ]; then for p in $(jrc_tree); do kill -KILL "$p" 2>/dev/null; done; fi',
      'fi',
      'exit 0'
    ].join('\n');
  }
}
