/**
 * "Show log": the command that reads a session's log files runs here in a real shell on a
 * directory laid out as the helper lays it out; what it prints is parsed back into files.
 * Secrets (config.json, state.json) are never read; a line a program printed cannot pass
 * for a file's header; a long file is cut to its end.
 */
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { LOG_TAIL_BYTES, parseSessionLogs, readSessionLogs, sessionLogsCommand } from '../sessions/session-logs';
import type { IClusterLink } from '../cluster/link';

let dir: string;

beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'rc logs '));
});

afterEach(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

/** A link whose login node is this machine's bash. */
const localLink = {
  exec: async (command: string) => {
    try {
      return { code: 0, stdout: execFileSync('bash', ['-c', command], { encoding: 'utf8' }), stderr: '' };
    } catch (e) {
      const err = e as { status: number; stdout: string; stderr: string };
      return { code: err.status, stdout: err.stdout, stderr: err.stderr };
    }
  }
} as unknown as IClusterLink;

describe("a session's logs", () => {
  it('are job stderr, stdout, kernels and Dask, in that order; never the config or state', async () => {
    await fs.writeFile(path.join(dir, 'job.err'), 'jrc-helper: exec: /opt/python3.99: not found\n');
    await fs.writeFile(path.join(dir, 'job.out'), 'hello\n');
    await fs.mkdir(path.join(dir, 'kernels', 'abc123'), { recursive: true });
    await fs.writeFile(path.join(dir, 'kernels', 'abc123', 'kernel.log'), 'kernel started\n');
    await fs.writeFile(path.join(dir, 'dask-scheduler.log'), 'scheduler at tls://...\n');
    await fs.writeFile(path.join(dir, 'config.json'), '{"token": "SECRET"}');
    await fs.writeFile(path.join(dir, 'state.json'), '{"relayPort": 1}');
    const logs = await readSessionLogs(dir, localLink);
    expect(logs.files.map(f => f.name)).toEqual([
      'job.err',
      'job.out',
      'kernels/abc123/kernel.log',
      'dask-scheduler.log'
    ]);
    expect(logs.files[0]).toEqual({
      name: 'job.err',
      size: 45,
      text: 'jrc-helper: exec: /opt/python3.99: not found',
      truncated: false
    });
    expect(JSON.stringify(logs)).not.toContain('SECRET');
  });

  it('cut a long file to its end, and say so', async () => {
    const lines = Array.from({ length: 20_000 }, (_, i) => `line ${i}`).join('\n') + '\n';
    await fs.writeFile(path.join(dir, 'job.out'), lines);
    const [out] = (await readSessionLogs(dir, localLink)).files;
    expect(out.truncated).toBe(true);
    expect(out.size).toBe(Buffer.byteLength(lines));
    expect(out.text.length).toBeLessThanOrEqual(LOG_TAIL_BYTES);
    expect(out.text.endsWith('line 19999')).toBe(true);
  });

  it('keep a printed line that looks like a header as text (the marker is random)', () => {
    const marker = 'jrc-log-0123456789abcdef01234567';
    const printed = 'jrc-log-ffffffffffffffffffffffff config.json 10\n';
    const files = parseSessionLogs(`${marker} job.out 60\n${printed}${marker} job.err 3\nok\n`, marker);
    expect(files.map(f => f.name)).toEqual(['job.out', 'job.err']);
    expect(files[0].text).toBe(printed.trimEnd());
  });

  it('say when the directory is gone, and quote its path in the command', async () => {
    await expect(readSessionLogs(path.join(dir, "it's gone"), localLink)).resolves.toEqual({
      files: [],
      missing: expect.stringContaining('is gone from the cluster')
    });
    expect(sessionLogsCommand("/home/a b/it's", 'm')).toContain("cd '/home/a b/it'\\''s'");
  });
});
