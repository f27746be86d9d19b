/**
 * The batch system's own accounting of a finished job, for the efficiency card: Slurm's
 * `sacct`, PBS's job history (`qstat -x -f`; Torque keeps completed jobs a while), LSF's
 * `bjobs` for a finished job, Grid Engine's `qacct -j`, HTCondor's `condor_history`. Where the site keeps none (no slurmdbd, no job history) the
 * parsers return undefined and the card shows only what the helper sampled.
 */
import type { IJobAccounting } from '../../common/api';
import type { ICommandResult } from './types';

const UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 };

/**
 * Bytes in a batch system's memory figure: Slurm `125440K` / `1.20G`, PBS `5620kb`, LSF
 * `5.2 Gbytes` / `233 Mbytes` (all counted in 1024s); a bare number is bytes.
 */
export function memoryBytes(s: unknown): number | undefined {
  const m = /^([\d.]+)\s*([KMGTP]?)(?:b|bytes?)?$/i.exec(String(s ?? '').trim());
  if (!m || !Number.isFinite(Number(m[1]))) {
    return undefined;
  }
  return Math.round(Number(m[1]) * UNITS[m[2].toLowerCase()]);
}

/**
 * Seconds in a duration as batch systems print them: Slurm's TotalCPU `MM:SS.mmm`,
 * `HH:MM:SS`, `D-HH:MM:SS`; PBS and LSF `HH:MM:SS`; LSF `20.4 second(s)`; plain seconds.
 */
export function durationSeconds(s: unknown): number | undefined {
  const text = String(s ?? '').trim();
  const secs = /^([\d.]+)(?:\s*second\(s\))?$/.exec(text);
  if (secs) {
    return Number(secs[1]);
  }
  const m = /^(?:(\d+)-)?(\d+):(\d+)(?::(\d+))?(\.\d+)?$/.exec(text);
  if (!m) {
    return undefined;
  }
  const [days, a, b, c, frac] = [Number(m[1] ?? 0), Number(m[2]), Number(m[3]), m[4], m[5] ?? ''];
  // two fields are MM:SS (Slurm without hours), three HH:MM:SS
  const seconds = c === undefined ? a * 60 + b : a * 3600 + b * 60 + Number(c);
  return days * 86400 + seconds + Number(`0${frac}`);
}

/** Keeps the fields that parsed. */
function figures(source: string, f: Omit<IJobAccounting, 'source'>): IJobAccounting {
  const out: IJobAccounting = { source };
  for (const [k, v] of Object.entries(f)) {
    if (v !== undefined && v !== '' && !(typeof v === 'number' && !Number.isFinite(v))) {
      (out as unknown as Record<string, unknown>)[k] = v;
    }
  }
  return out;
}

/** States of a job that has not finished (its figures are not final). */
const UNFINISHED = /^(PENDING|RUNNING|REQUEUED|RESIZING|SUSPENDED|COMPLETING)/;

/** The fields SACCT_FORMAT asks for, in order. */
export const SACCT_FIELDS = ['JobID', 'State', 'ExitCode', 'ElapsedRaw', 'TotalCPU', 'MaxRSS'] as const;

/**
 * `sacct -n -P -j <id> --format=<SACCT_FIELDS>`: one line for the allocation (its
 * TotalCPU covers every step), then one per step (batch, extern, srun steps), which
 * alone carry MaxRSS: the job's peak is the largest step's.
 */
export function parseSacct(jobId: string, r: ICommandResult): IJobAccounting | undefined {
  if (r.code !== 0) {
    return undefined; // e.g. "Slurm accounting storage is disabled"
  }
  const rows = r.stdout
    .split('\n')
    .map(l => l.split('|'))
    .filter(cells => cells.length >= SACCT_FIELDS.length);
  const job = rows.find(cells => cells[0] === jobId);
  if (!job || UNFINISHED.test(job[1])) {
    return undefined; // (the database has not recorded the end yet)
  }
  const steps = rows.filter(cells => cells[0].startsWith(`${jobId}.`));
  const rss = steps.map(cells => memoryBytes(cells[5])).filter((n): n is number => n !== undefined);
  return figures('sacct', {
    state: job[1].trim(),
    exitCode: job[2].trim(),
    elapsedSeconds: durationSeconds(job[3]),
    cpuSeconds: durationSeconds(job[4]),
    maxRssBytes: rss.length ? Math.max(...rss) : undefined
  });
}

/** A finished PBS job's flattened attributes (`qstat -x -f -F json`, Torque `qstat -f`). */
export function pbsAccounting(attrs: Record<string, unknown>, command: string): IJobAccounting | undefined {
  const state = String(attrs['job_state'] ?? '');
  if (!['F', 'C'].includes(state)) {
    return undefined; // not finished: its figures are not final
  }
  const exit = attrs['Exit_status'] ?? attrs['exit_status'];
  return figures(command, {
    state,
    exitCode: exit === undefined ? undefined : String(exit),
    elapsedSeconds: durationSeconds(attrs['resources_used.walltime']),
    cpuSeconds: durationSeconds(attrs['resources_used.cput']),
    maxRssBytes: memoryBytes(attrs['resources_used.mem'])
  });
}

/** The fields BJOBS_ACCOUNTING asks for (bjobs -o ... -json). */
export const BJOBS_ACCOUNTING_FIELDS = 'jobid stat exit_code cpu_used max_mem run_time';

/** `bjobs -o "<BJOBS_ACCOUNTING_FIELDS>" -json <id>` for a job that is DONE or EXIT. */
export function parseBjobsAccounting(jobId: string, r: ICommandResult): IJobAccounting | undefined {
  let records: Record<string, string>[];
  try {
    records = (JSON.parse(r.stdout) as { RECORDS?: Record<string, string>[] }).RECORDS ?? [];
  } catch {
    return undefined;
  }
  const job = records.find(x => x.JOBID === jobId);
  if (!job || !['DONE', 'EXIT'].includes(job.STAT)) {
    return undefined;
  }
  return figures('bjobs', {
    state: job.STAT,
    exitCode: job.EXIT_CODE || (job.STAT === 'DONE' ? '0' : undefined),
    elapsedSeconds: durationSeconds(job.RUN_TIME),
    cpuSeconds: durationSeconds(job.CPU_USED),
    maxRssBytes: memoryBytes(job.MAX_MEM)
  });
}

/** Grid Engine's figures with a unit suffix (`0.926s`, `78.949MBs`, `207.758KB`). */
function qacctNumber(text: string | undefined): { value: number; scale: string } | undefined {
  const m = /^([\d.]+)([KMGT]?)/.exec((text ?? '').trim());
  return m && Number.isFinite(Number(m[1])) ? { value: Number(m[1]), scale: m[2] } : undefined;
}

/**
 * `qacct -j <id>`: the finished job's record, "name value" lines (the last record when a
 * job id was reused). Grid Engine writes it when the job ends; before, qacct says "job id
 * N not found". Its `ru_maxrss` is the peak in KiB printed with a thousands scale: a job
 * holding 200 MiB shows `207.758KB` (207,758 KiB; fixtures/sge/README.md).
 */
export function parseQacct(r: ICommandResult): IJobAccounting | undefined {
  if (r.code !== 0) {
    return undefined;
  }
  const records = r.stdout.split(/^=+$/m).filter(block => /^jobnumber\s/m.test(block));
  if (!records.length) {
    return undefined;
  }
  const fields = new Map<string, string>();
  for (const line of records[records.length - 1].split('\n')) {
    const m = /^(\w+)\s+(.*?)\s*$/.exec(line);
    if (m) {
      fields.set(m[1], m[2]);
    }
  }
  const seconds = (key: string): number | undefined => qacctNumber(fields.get(key))?.value;
  const rss = qacctNumber(fields.get('ru_maxrss'));
  const thousands: Record<string, number> = { '': 1, K: 1e3, M: 1e6, G: 1e9, T: 1e12 };
  const failed = fields.get('failed') ?? '0';
  return figures('qacct', {
    // `failed` is Grid Engine's own reason code (e.g. "100 : assumedly after job"): 0 is none
    state: failed.startsWith('0') ? 'finished' : `failed ${failed}`,
    exitCode: fields.get('exit_status'),
    elapsedSeconds: seconds('ru_wallclock'),
    cpuSeconds: seconds('cpu'),
    maxRssBytes: rss ? Math.round(rss.value * thousands[rss.scale] * 1024) : undefined
  });
}

/** The attributes HTCondor's accounting asks condor_history for. */
export const CONDOR_ACCOUNTING_ATTRIBUTES = [
  'ClusterId',
  'ProcId',
  'JobStatus',
  'ExitCode',
  'ExitBySignal',
  'ExitSignal',
  'RemoteUserCpu',
  'RemoteSysCpu',
  'RemoteWallClockTime',
  'ResidentSetSize'
];

/**
 * A job ad from `condor_history` of a job that left the queue: Completed (4) or Removed
 * (3). CPU time is user + system; ResidentSetSize is the peak in KiB.
 */
export function condorAccounting(ad: Record<string, unknown>): IJobAccounting | undefined {
  const status = Number(ad['JobStatus']);
  if (status !== 4 && status !== 3) {
    return undefined;
  }
  const num = (k: string): number | undefined => (typeof ad[k] === 'number' ? (ad[k] as number) : undefined);
  const user = num('RemoteUserCpu');
  const sys = num('RemoteSysCpu');
  const rss = num('ResidentSetSize');
  return figures('condor_history', {
    state: status === 4 ? 'Completed' : 'Removed',
    exitCode: ad['ExitBySignal'] === true ? `signal ${String(ad['ExitSignal'] ?? '?')}` : num('ExitCode')?.toString(),
    elapsedSeconds: num('RemoteWallClockTime'),
    cpuSeconds: user === undefined && sys === undefined ? undefined : (user ?? 0) + (sys ?? 0),
    maxRssBytes: rss === undefined ? undefined : rss * 1024
  });
}
