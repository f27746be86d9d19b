/** The setup lines every adapter puts in its job script, run by a real /bin/sh. */
import { spawnSync } from 'node:child_process';

import { setupBlock } from '../schedulers/validate';

function runScript(setup: string[]): { code: number | null; stdout: string; stderr: string } {
  const script = ['set -u', ...setupBlock(setup), 'echo "reached X=$X"'].join('\n');
  const r = spawnSync('/bin/sh', ['-c', script], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('setupBlock', () => {
  it('runs every line in the job shell: exports and `.` persist', () => {
    const r = runScript(['# a comment', '', 'export X=1', 'X=$((X + 1)); export X']);
    expect(r).toEqual({ code: 0, stdout: 'reached X=2\n', stderr: '' });
  });

  it('stops the job at the first failing line and names it on stderr', () => {
    const r = runScript(['export X=1', 'false', 'export X=3']);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe('jupyterlab-remote-cluster: setup line 2 failed (exit code 1): false\n');
  });

  it('keeps a line with quotes intact in the message', () => {
    const r = runScript(['test "it\'s" = nope']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('setup line 1 failed (exit code 1): test "it\'s" = nope');
  });

  it('is empty without setup lines', () => {
    expect(setupBlock([])).toEqual([]);
  });
});
