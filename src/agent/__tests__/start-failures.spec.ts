/**
 * A start that fails reads as one sentence: the job script looks for the remote Python
 * before running it and says so in a line the agent turns into the session's reason; the
 * login node's checks warn before queuing. Scripts and checks run in a real /bin/sh.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import type { IClusterProfile } from '../../common/api';
import { SlurmAdapter } from '../schedulers/slurm';
import { SshHostAdapter } from '../schedulers/ssh-host';
import type { IJobSpec } from '../schedulers/types';
import { HELPER_PROTOCOL } from '../sessions/connectivity';
import { failureSentence } from '../sessions/ending';
import { loginChecksCommand, loginCheckWarnings } from '../sessions/login-checks';
import type { ISessionRecord } from '../sessions/records';
import { publicView } from '../sessions/view';
import { spec } from './helpers/adapters';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'jrc-start-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function sh(script: string, env: Record<string, string> = {}): { code: number; stdout: string; stderr: string } {
  const r = spawnSync('/bin/sh', ['-c', script], {
    cwd: dir,
    encoding: 'utf8',
    env: { PATH: '/usr/bin:/bin', ...env }
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function runJob(over: Partial<IJobSpec>): { code: number; stdout: string; stderr: string } {
  writeFileSync(path.join(dir, 'job.sh'), new SlurmAdapter().renderScript(spec(over)));
  return sh('/bin/sh job.sh');
}

const hostname = spawnSync('hostname', { encoding: 'utf8' }).stdout.trim();

describe('the job script looks for the remote Python first', () => {
  it('a missing Python stops the job with one line naming it and the node', () => {
    const r = runJob({ python: '/opt/no/python3.12', command: 'echo helper-started' });
    expect(r.code).toBe(127);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      `jupyterlab-remote-cluster: the remote Python /opt/no/python3.12 was not found on ${hostname}\n`
    );
    expect(failureSentence(r.stderr)).toBe(`The remote Python /opt/no/python3.12 was not found on ${hostname}.`);
  });

  it('looks after the setup lines (a venv they activate puts it on PATH)', () => {
    mkdirSync(path.join(dir, 'venv'));
    writeFileSync(path.join(dir, 'venv', 'mypython'), '#!/bin/sh\necho "mypython $*"\n');
    chmodSync(path.join(dir, 'venv', 'mypython'), 0o755);
    const r = runJob({ setup: [`PATH=${dir}/venv:$PATH`], python: 'mypython', command: 'mypython helper' });
    expect(r).toEqual({ code: 0, stdout: 'mypython helper\n', stderr: '' });
  });

  it('without a python (a container wrapper runs its own) nothing is looked for', () => {
    expect(new SlurmAdapter().renderScript(spec({}))).not.toContain('command -v');
  });

  it('a plain SSH host job looks for it too', () => {
    const script = new SshHostAdapter().renderScript(spec({ python: '/opt/no/python', resources: {} }));
    expect(script).toContain('command -v /opt/no/python >/dev/null 2>&1 || { printf');
  });

  it('a quote in the path stays one word', () => {
    const r = runJob({ python: "/opt/it's/python", command: 'echo helper-started' });
    expect(r.code).toBe(127);
    expect(failureSentence(r.stderr)).toBe(`The remote Python /opt/it's/python was not found on ${hostname}.`);
  });
});

describe('failureSentence', () => {
  it('a failed setup line, with what the shell said just before', () => {
    const r = runJob({ setup: ['export A=1', 'nosuch-module-command load python/9.9'], command: 'echo never' });
    expect(r.code).toBe(1);
    expect(failureSentence(r.stderr)).toMatch(
      /^Setup line 2 failed with exit code 127: nosuch-module-command load python\/9\.9 — .*nosuch-module-command: .*not found\.$/
    );
  });

  it('the last failure line counts; a setup line with no output before it stands alone', () => {
    expect(
      failureSentence(
        [
          '[rc-helper x] starting',
          'jupyterlab-remote-cluster: setup line 1 failed (exit code 2): a',
          'jupyterlab-remote-cluster: setup line 3 failed (exit code 1): false'
        ].join('\n')
      )
    ).toBe('Setup line 3 failed with exit code 1: false.');
  });

  it('is undefined for stderr without the marker (the agent shows its tail instead)', () => {
    expect(failureSentence('sh: 1: exec: /x: not found\n')).toBeUndefined();
    expect(failureSentence('')).toBeUndefined();
    // printed by the user's code mid-line: not the script's own line
    expect(failureSentence('oops jupyterlab-remote-cluster: the remote Python x was not found')).toBeUndefined();
  });
});

describe('the login node checks before queuing', () => {
  function profile(over: Partial<IClusterProfile>): IClusterProfile {
    return { name: 'p', ssh: { host: 'h' }, scheduler: 'slurm', python: 'python3', ...over } as IClusterProfile;
  }
  function check(p: IClusterProfile): string[] {
    const command = loginChecksCommand(p);
    const r = sh(command || 'true', { HOME: dir });
    expect(r.code).toBe(0); // never fails the submission's round trip
    return loginCheckWarnings(r.stdout, p);
  }

  it('warns of a Python and a working directory it does not find, nothing else', () => {
    const w = check(profile({ python: '/opt/no/python3.12', workdir: '~/no-such-dir' }));
    expect(w).toHaveLength(2);
    expect(w[0]).toMatch(/^The remote Python \/opt\/no\/python3\.12 was not found on the login node; /);
    expect(w[1]).toMatch(/^The working directory ~\/no-such-dir does not exist on the login node; /);
  });

  it('finds what is there: a Python on PATH or by path, a directory under ~', () => {
    mkdirSync(path.join(dir, 'work dir'));
    expect(check(profile({ python: 'sh', workdir: '~/work dir' }))).toEqual([]);
    expect(check(profile({ python: '/bin/sh', workdir: dir }))).toEqual([]);
  });

  it('does not guess what setup lines or a container provide', () => {
    expect(loginChecksCommand(profile({ python: 'nosuch-python', setup: ['module load python'] }))).toBe('');
    expect(loginChecksCommand(profile({ python: '/opt/in/image/python', container: 'apptainer exec x.sif' }))).toBe('');
    // a path is still looked for after setup lines (they rarely create it)
    expect(check(profile({ python: '/opt/no/python', setup: ['module load python'] }))).toHaveLength(1);
  });
});

describe("the login node's warnings in the session's view", () => {
  it('are said while the session waits, and gone once its job runs', () => {
    const missing = 'The remote Python /opt/py was not found on the login node; …';
    const record = {
      id: 'ab12cd',
      state: 'queued',
      clusterKey: 'k',
      remoteDir: '/home/u/s',
      owner: 'user',
      protocol: HELPER_PROTOCOL,
      loginWarnings: [missing]
    } as unknown as ISessionRecord;
    const view = (s: ISessionRecord) => publicView(s, { kernels: [], knows: () => false });
    expect(view(record).warnings).toEqual([missing]);
    expect(Object.keys(view(record))).not.toContain('loginWarnings');
    expect(view({ ...record, state: 'running' }).warnings).toBeUndefined();
  });
});
