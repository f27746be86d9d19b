/**
 * "Show log": the ends of a session's log files, read on the login node from the session
 * directory (on the shared home, 0700, ours): the job's stdout and stderr (where the
 * helper writes), each kernel's log, Dask's and the reverse tunnel's. One command for all
 * of them, each file cut to its last bytes; config.json and state.json (secrets) are never
 * read. Works for an ended session as long as its directory is there.
 */
import { randomBytes } from 'node:crypto';

import type { ISessionLogs } from '../../common/api';
import type { IClusterLink } from '../cluster/link';
import { shQuote } from '../schedulers/shell';

/** The end of each file that is shown (a long job's stdout is not sent whole). */
export const LOG_TAIL_BYTES = 64 * 1024;
/** Files at most (a session that started hundreds of kernels: the first ones). */
export const MAX_LOG_FILES = 24;

/**
 * The shell command: for each log file that exists, a header line `<marker> <name> <size>`
 * and the file's last LOG_TAIL_BYTES. The marker is random per call, so no line a program
 * printed can pass for a header. Names are the helper's own (hex kernel ids, fixed words).
 */
export function sessionLogsCommand(dir: string, marker: string): string {
  return [
    `cd ${shQuote(dir)} || exit 3`,
    'n=0',
    // (globs sort within each kind; one that matches nothing stays literal and is skipped)
    'for f in job.err job.out kernels/*/kernel.log dask-*.log reverse-ssh.log; do',
    '  [ -f "$f" ] || continue',
    `  n=$((n + 1)); [ "$n" -le ${MAX_LOG_FILES} ] || break`,
    `  printf '%s %s %s\\n' ${marker} "$f" "$(wc -c < "$f")"`,
    `  tail -c ${LOG_TAIL_BYTES} "$f"`,
    "  printf '\\n'",
    'done'
  ].join('\n');
}

/** The command's output as files, in its order (job stderr first: it usually says why). */
export function parseSessionLogs(stdout: string, marker: string): ISessionLogs['files'] {
  const files: ISessionLogs['files'] = [];
  const header = new RegExp(`^${marker} (\\S+) +(\\d+)$`); // (BSD wc pads the size)
  let current: { name: string; size: number; lines: string[] } | undefined;
  const close = () => {
    if (current) {
      // without the separator's newline, nor the file's own last ones
      const text = current.lines.join('\n').replace(/\n+$/, '');
      files.push({ name: current.name, size: current.size, text, truncated: current.size > LOG_TAIL_BYTES });
    }
  };
  for (const line of stdout.split('\n')) {
    const m = header.exec(line);
    if (m) {
      close();
      current = { name: m[1], size: Number(m[2]), lines: [] };
    } else if (current) {
      current.lines.push(line);
    }
  }
  close();
  return files;
}

export async function readSessionLogs(dir: string, link: IClusterLink): Promise<ISessionLogs> {
  const marker = `jrc-log-${randomBytes(12).toString('hex')}`;
  const r = await link.exec(sessionLogsCommand(dir, marker), { timeoutMs: 30_000 });
  if (r.code === 3) {
    return { files: [], missing: `The session's directory ${dir} is gone from the cluster.` };
  }
  if (r.code !== 0) {
    throw new Error(`Could not read the session's logs: ${r.stderr.trim() || `exit code ${r.code}`}`);
  }
  return { files: parseSessionLogs(r.stdout, marker) };
}
