/**
 * What ending a session does on the cluster besides its state: cancelling its job and its
 * worker jobs, removing what a killed helper left on the login node, and finding out from
 * the job's stderr why a session ended before it was usable.
 */
import type { IClusterProfile, IJobAccounting } from '../../common/api';
import type { IClusterLink } from '../cluster/link';
import { shQuote } from '../schedulers/shell';
import { FAILURE_MARKER } from '../schedulers/validate';
import type { ISchedulerAdapter } from '../schedulers/types';
import { onLogin, REMOTE_ROOT, type IHelperState, type ISessionRecord } from './records';
import { cancelElasticCommand } from './scale-out';

/** Cancel the session's job; throws with the scheduler's words when it refuses. */
export async function cancelJob(
  s: ISessionRecord,
  profile: IClusterProfile,
  adapter: ISchedulerAdapter,
  link: IClusterLink
): Promise<void> {
  if (!s.jobId) {
    return;
  }
  const r = await link.exec(onLogin(profile, adapter.cancelCommand(s.jobId)), { timeoutMs: 60_000 });
  if (r.code !== 0) {
    throw new Error(`Could not cancel job ${s.jobId}: ${r.stderr.trim() || r.stdout.trim()}`);
  }
}

/** An ending must not hang on the cluster: the session is ended anyway after this. */
const ENDING_COMMAND_TIMEOUT_MS = 30_000;

/**
 * The worker jobs tagged with the session: the helper cancels them when it stops; this
 * catches those of a helper that could not (killed, node lost). Best effort: a job of
 * this name may not exist.
 */
export async function cancelWorkerJobs(
  s: ISessionRecord,
  profile: IClusterProfile,
  adapter: ISchedulerAdapter,
  link: IClusterLink
): Promise<void> {
  const command = cancelElasticCommand(s, adapter);
  if (command) {
    await link.exec(onLogin(profile, command), { timeoutMs: 60_000 }).catch(() => undefined);
  }
}

/**
 * The login-side directory of a reverse tunnel: the helper removes it when it stops, but
 * a job killed outright (SIGKILL, node failure) leaves its dead sockets there. Only a path
 * of the exact shape the helper makes for this session is touched.
 */
export async function removeReverseDir(
  s: ISessionRecord,
  dir: string | undefined,
  link: IClusterLink,
  log: (msg: string) => void
): Promise<void> {
  // protocol 2: mktemp's /tmp/jrc-XXXXXXXXXX; protocol 1: /tmp/jrc-<uid>/<session>-rev
  if (!dir || !new RegExp(`^/tmp/jrc-([A-Za-z0-9]{10}|[0-9]+/${s.id}-rev)$`).test(dir)) {
    return;
  }
  await link
    .exec(`rm -rf ${shQuote(dir)}`, { timeoutMs: ENDING_COMMAND_TIMEOUT_MS })
    .catch(err => log(`session ${s.id}: could not remove ${dir} on the login node: ${(err as Error).message}`));
}

/**
 * A forgotten session's directory on the cluster (its logs, config, job script): only a
 * path of the exact shape submit-job.ts makes for this session is touched.
 */
export async function removeSessionDir(s: ISessionRecord, link: IClusterLink): Promise<boolean> {
  if (!s.remoteDir.endsWith(`/${REMOTE_ROOT}/sessions/${s.id}`) || !/^[A-Za-z0-9_-]+$/.test(s.id)) {
    return false;
  }
  const r = await link.exec(`rm -rf ${shQuote(s.remoteDir)}`, { timeoutMs: ENDING_COMMAND_TIMEOUT_MS });
  if (r.code !== 0) {
    throw new Error(r.stderr.trim() || `rm exited with ${r.code}`);
  }
  return true;
}

/**
 * Why a session ended before it was usable: the job script's own failure line as one
 * sentence when it left one, else `reason` with the last lines of the job's stderr.
 */
export async function withJobStderr(s: ISessionRecord, reason: string, link: IClusterLink): Promise<string> {
  const err = await link
    .exec(`tail -n 20 ${shQuote(s.remoteDir + '/job.err')} 2>/dev/null`, { timeoutMs: ENDING_COMMAND_TIMEOUT_MS })
    .catch(() => undefined);
  const tail = err?.stdout.trim();
  if (!tail) {
    return reason;
  }
  return failureSentence(tail) ?? `${reason}; job stderr: ${tail.split('\n').slice(-3).join(' | ')}`;
}

/** A helper that could not start the session says why in its state.json: that is the sentence. */
export function startFailure(helper: IHelperState): string {
  return `The session failed to start on ${helper.host}: ${helper.error ?? 'unknown error'}`;
}

const SETUP_FAILED = /^setup line (\d+) failed \(exit code (\d+)\): (.*)$/;

/**
 * The sentence a job script's failure line makes (validate.ts: FAILURE_MARKER): the Python
 * that is not there, or the setup line that failed with what the job printed just before
 * it (usually the shell's own complaint). Undefined without such a line.
 */
export function failureSentence(stderr: string): string | undefined {
  const lines = stderr
    .split('\n')
    .map(l => l.trim())
    .filter(Boolean);
  const at = lines.map(l => l.startsWith(FAILURE_MARKER)).lastIndexOf(true);
  if (at < 0) {
    return undefined;
  }
  const what = lines[at].slice(FAILURE_MARKER.length).trim();
  const setup = SETUP_FAILED.exec(what);
  const before = lines[at - 1];
  const sentence = setup
    ? `Setup line ${setup[1]} failed with exit code ${setup[2]}: ${setup[3]}` +
      (before && !before.startsWith(FAILURE_MARKER) ? ` — ${before}` : '')
    : what.charAt(0).toUpperCase() + what.slice(1);
  return /[.!?]$/.test(sentence) ? sentence : `${sentence}.`;
}

/** Seconds between the two asks for a job's accounting: a database may record the end late. */
const ACCOUNTING_RETRY_MS = 15_000;

/**
 * The batch system's accounting of an ended job, where the site keeps it: asked right
 * away and, when it has no final figures yet (slurmdbd records the end a little later),
 * once more; undefined when there are none. Never throws.
 */
export async function jobAccounting(
  s: ISessionRecord,
  profile: IClusterProfile,
  adapter: ISchedulerAdapter,
  link: IClusterLink,
  retryMs = ACCOUNTING_RETRY_MS
): Promise<IJobAccounting | undefined> {
  if (!s.jobId || !adapter.accountingCommand || !adapter.parseAccounting) {
    return undefined;
  }
  for (let attempt = 0; attempt < 2; attempt++) {
    if (attempt) {
      await new Promise(resolve => setTimeout(resolve, retryMs).unref()); // (never keeps the agent alive)
    }
    const r = await link
      .exec(onLogin(profile, adapter.accountingCommand(s.jobId)), { timeoutMs: 30_000 })
      .catch(() => undefined);
    const found = r && adapter.parseAccounting(s.jobId, r);
    if (found) {
      return found;
    }
  }
  return undefined;
}
