/** Run an adapter's command with real sh, with one scheduler command replaced by a fake. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import type { ICommandResult } from '../../schedulers/types';

/**
 * `command` run by `sh -c`, where `name` is a script that prints its arguments (`args: ...`)
 * on stdout, `output` on stderr, and exits with `code`.
 */
export function runWithFake(command: string, name: string, output: string, code: number): ICommandResult {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'jrc-fake-'));
  try {
    const q = (s: string) => `'${s.replace(/'/g, "'\\''")}'`;
    writeFileSync(path.join(dir, name), `#!/bin/sh\necho "args: $*"\nprintf '%s\\n' ${q(output)} >&2\nexit ${code}\n`, {
      mode: 0o755
    });
    const r = spawnSync('sh', ['-c', command], { env: { PATH: `${dir}:${process.env.PATH}` }, encoding: 'utf8' });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
