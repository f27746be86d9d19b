/**
 * The Slurm adapter against outputs recorded on a real Slurm 22.05 (fixtures/slurm/*.json,
 * made by fixtures/slurm/record.sh with the adapter's own commands), and its commands
 * against a real /bin/sh (quoting is checked by running them with stand-in programs).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import type { IResources } from '../../common/api';
import { firstNode, parseDuration, parseWalltime, SlurmAdapter } from '../schedulers/slurm';
import { shQuote } from '../schedulers/shell';
import { InvalidRequestError, SchedulerUnavailableError, type ICommandResult } from '../schedulers/types';
import { readFixture, refusal, spec } from './helpers/adapters';

interface IFixture extends ICommandResult {
  description: string;
  recordedOn: string;
  command: string;
  jobIds: string[];
}

const FIXTURES = path.join(__dirname, 'fixtures', 'slurm');
function fixture(name: string): IFixture {
  return readFixture<IFixture>('slurm', name);
}

const slurm = new SlurmAdapter();

describe('slurm: validate', () => {
  it('accepts a full, valid request', () => {
    expect(() =>
      slurm.validate({
        partition: 'gpu-a100.short',
        account: 'proj_42',
        walltime: '1-12:00:00',
        cpus: 8,
        memory: '32G',
        gpus: 2,
        qos: 'short',
        constraint: 'bigmem&(ib|eth)',
        reservation: 'maint_2026-12',
        extraDirectives: ['--exclude=node[1-3]', '--mail-type=END,FAIL', '--exclusive']
      })
    ).not.toThrow();
    expect(() => slurm.validate({ memoryPerCpu: '2G', constraint: '[rack1*2&rack2*4]' })).not.toThrow();
    expect(() => slurm.validate({})).not.toThrow();
    expect(() => slurm.validate({ partition: '', cpus: undefined, gpus: 0 })).not.toThrow();
  });

  it.each<[keyof IResources, unknown]>([
    ['partition', 'debug; rm -rf ~'],
    ['partition', 'a b'],
    ['partition', 'x'.repeat(65)],
    ['partition', '$(id)'],
    ['partition', 7],
    ['account', "proj'42"],
    ['account', 'a\nb'],
    ['qos', 'q`id`'],
    ['walltime', 'abc'],
    ['walltime', '1:60'],
    ['walltime', '10:61:00'],
    ['walltime', '1-24'],
    ['walltime', '1-02:60'],
    ['walltime', '0'],
    ['walltime', '00:00:00'],
    ['walltime', '-5'],
    ['walltime', '1-2:3:4:5'],
    ['walltime', '1h'],
    ['walltime', '10;reboot'],
    ['cpus', 0],
    ['cpus', 4097],
    ['cpus', 1.5],
    ['cpus', '4; id'],
    ['memory', '4GB'],
    ['memory', '4g'],
    ['memory', '0'],
    ['memory', '-1G'],
    ['memory', '4 G'],
    ['memory', 4096],
    ['gpus', -1],
    ['gpus', 65],
    ['gpus', 2.5],
    ['memoryPerCpu', '2GB'],
    ['memoryPerCpu', '0'],
    ['constraint', 'bigmem; id'],
    ['constraint', 'a b'],
    ['constraint', '$(id)'],
    ['constraint', 'x'.repeat(257)],
    ['reservation', 'maint window'],
    ['reservation', "r'1"]
  ])('refuses %s = %j, naming the field and the value', (field, value) => {
    const err = refusal(() => slurm.validate({ [field]: value } as IResources));
    expect(err.field).toBe(field);
    expect(err.message).toContain(field);
    expect(err.message).toContain(JSON.stringify(value).slice(0, 20));
  });

  it.each([
    '--x=a b',
    "--x='a'",
    '--x="a"',
    '--x=a;b',
    '--x=$HOME',
    '--x=`id`',
    '--x=a\nb',
    '--comment=a\rb',
    '-p big',
    '-pbig',
    'qos=short',
    '--',
    '--output=/tmp/x',
    '--out=/tmp/x', // sbatch takes unambiguous prefixes
    '--job-name=x',
    '--chdir=/',
    '--array=1-100',
    '--partition=big',
    '--time=10',
    '--mem=1G',
    '--cpus-per-task=2',
    '--qos=short',
    '--constraint=bigmem',
    '--reservation=r1',
    '--mem-per-cpu=1G',
    ''
  ])('refuses the extra directive %j', d => {
    const err = refusal(() => slurm.validate({ extraDirectives: [d] }));
    expect(err.field).toBe('extraDirectives');
    expect(err.message).toContain(JSON.stringify(d));
  });

  it('refuses extraDirectives that is not a list, and --gres together with gpus', () => {
    expect(refusal(() => slurm.validate({ extraDirectives: '--qos=x' as unknown as string[] })).field).toBe(
      'extraDirectives'
    );
    expect(() => slurm.validate({ extraDirectives: ['--gres=nvme:1'] })).not.toThrow();
    expect(refusal(() => slurm.validate({ gpus: 1, extraDirectives: ['--gres=nvme:1'] })).field).toBe(
      'extraDirectives'
    );
    expect(refusal(() => slurm.validate({ gpus: 1, extraDirectives: ['--gpus=2'] })).field).toBe('extraDirectives');
    expect(() => slurm.validate({ extraDirectives: ['--gpus=2'] })).not.toThrow();
  });

  it('refuses memory and memoryPerCpu together (sbatch would refuse --mem with --mem-per-cpu)', () => {
    const err = refusal(() => slurm.validate({ memory: '4G', memoryPerCpu: '1G' }));
    expect(err.field).toBe('memoryPerCpu');
    expect(err.message).toBe(
      'Set either memory (per node) or memoryPerCpu, not both: Slurm refuses --mem together with --mem-per-cpu.'
    );
  });

  it('parses every walltime form Slurm accepts', () => {
    expect(parseWalltime('30')).toBe(1800);
    expect(parseWalltime('90:30')).toBe(5430); // MM:SS
    expect(parseWalltime('01:30:00')).toBe(5400);
    expect(parseWalltime('48:00:00')).toBe(172800);
    expect(parseWalltime('2-12')).toBe(216000);
    expect(parseWalltime('2-12:30')).toBe(217800);
    expect(parseWalltime('2-12:30:15')).toBe(217815);
    expect(parseWalltime(45)).toBe(2700);
  });
});

describe('slurm: renderScript', () => {
  it('writes directives, setup lines and exec of the command', () => {
    const script = slurm.renderScript(
      spec({
        resources: {
          partition: 'big',
          account: 'proj1',
          walltime: '2:00:00',
          cpus: 4,
          memory: '8G',
          gpus: 1,
          qos: 'short',
          constraint: 'bigmem',
          reservation: 'training',
          extraDirectives: ['--mail-type=END']
        },
        setup: ['module load python/3.11', '# a comment', '. ~/venvs/lab/bin/activate']
      })
    );
    expect(script).toBe(
      [
        '#!/bin/sh',
        '# jupyterlab-remote-cluster session (generated; edits are overwritten)',
        '#SBATCH --job-name=jrc-ab12cd',
        '#SBATCH --output=/home/alice/.jupyter-remote-cluster/sessions/ab12cd/job.out',
        '#SBATCH --error=/home/alice/.jupyter-remote-cluster/sessions/ab12cd/job.err',
        '#SBATCH --chdir=/home/alice/.jupyter-remote-cluster/sessions/ab12cd',
        // the end-of-walltime warning (SIGUSR1 to the helper) 5 min before the end of 2 h
        '#SBATCH --signal=B:USR1@300',
        '#SBATCH --nodes=1',
        '#SBATCH --ntasks=1',
        '#SBATCH --partition=big',
        '#SBATCH --account=proj1',
        '#SBATCH --qos=short',
        '#SBATCH --time=2:00:00',
        '#SBATCH --cpus-per-task=4',
        '#SBATCH --mem=8G',
        '#SBATCH --gres=gpu:1',
        '#SBATCH --constraint=bigmem',
        '#SBATCH --reservation=training',
        '#SBATCH --mail-type=END',
        '',
        '# environment setup from the profile: the job stops at the first line that fails',
        '{ module load python/3.11',
        "} || { printf 'jupyterlab-remote-cluster: setup line 1 failed (exit code %s): %s\\n' \"$?\" 'module load python/3.11' >&2; exit 1; }",
        '# a comment',
        '{ . ~/venvs/lab/bin/activate',
        "} || { printf 'jupyterlab-remote-cluster: setup line 3 failed (exit code %s): %s\\n' \"$?\" '. ~/venvs/lab/bin/activate' >&2; exit 1; }",
        '',
        '# the remote helper replaces this shell: Slurm signals reach it directly',
        "exec /opt/py/bin/python '/home/alice/.jupyter-remote-cluster/helper-1.py' serve --session-dir /home/alice/s",
        ''
      ].join('\n')
    );
  });

  it('leaves out what is not set (the scheduler defaults apply)', () => {
    const script = slurm.renderScript(spec({ resources: { gpus: 0, qos: 'low' } as IResources }));
    expect(script).not.toMatch(/--partition|--time|--mem|--gres|--account|--cpus-per-task/);
    expect(script).toContain('#SBATCH --qos=low\n');
    expect(script).not.toContain('environment setup');
    expect(slurm.renderScript(spec({ resources: { memoryPerCpu: '500M' } }))).toContain(
      '\n#SBATCH --mem-per-cpu=500M\n'
    );
  });

  /** Run a rendered script with /bin/sh in a scratch directory (#SBATCH lines are comments to sh). */
  function runScript(setup: string[], command: string): { code: number; stdout: string; stderr: string } {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'jrc-setup-'));
    try {
      writeFileSync(path.join(dir, 'env.sh'), 'export RC_FROM_VENV=venv-ok\n');
      writeFileSync(path.join(dir, 'job.sh'), slurm.renderScript(spec({ setup, command })));
      const r = spawnSync('/bin/sh', ['job.sh'], { cwd: dir, encoding: 'utf8', env: { PATH: '/usr/bin:/bin' } });
      return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  it('setup lines run in the job shell: exports and sourced scripts reach the command', () => {
    const r = runScript(['export RC_X=42', '. ./env.sh', 'cd /'], 'sh -c \'echo "$RC_X $RC_FROM_VENV $(pwd)"\'');
    expect(r).toEqual({ code: 0, stdout: '42 venv-ok /\n', stderr: '' });
  });

  it.each([
    ['false', 2, 1, ''],
    ['nosuch-module-command load python', 2, 127, 'not found'],
    ["sh -c 'echo module python/9 not found >&2; exit 3'", 2, 3, 'module python/9 not found']
  ])('stops at the first failing setup line (%s) and says which on stderr', (bad, line, code, own) => {
    const r = runScript(['export RC_X=1', bad, 'echo after-the-failure'], 'echo helper-started');
    expect(r.code).toBe(1);
    expect(r.stdout).toBe(''); // neither the next line nor the helper ran
    expect(r.stderr).toContain(own);
    expect(r.stderr.trim().split('\n').pop()).toBe(
      `jupyterlab-remote-cluster: setup line ${line} failed (exit code ${code}): ${bad}`
    );
  });

  it('validates the resources and every value it writes', () => {
    expect(refusal(() => slurm.renderScript(spec({ resources: { partition: 'a b' } }))).field).toBe('partition');
    expect(refusal(() => slurm.renderScript(spec({ name: 'my job' }))).field).toBe('name');
    expect(refusal(() => slurm.renderScript(spec({ workdir: 'relative/dir' }))).field).toBe('workdir');
    expect(refusal(() => slurm.renderScript(spec({ stdoutPath: '/home/a b/out' }))).field).toBe('stdoutPath');
    expect(refusal(() => slurm.renderScript(spec({ stderrPath: '/x\n#SBATCH --partition=evil' }))).field).toBe(
      'stderrPath'
    );
    expect(refusal(() => slurm.renderScript(spec({ command: 'python helper.py\nrm -rf ~' }))).field).toBe('command');
    expect(refusal(() => slurm.renderScript(spec({ command: '  ' }))).field).toBe('command');
    // sbatch would read these as directives, past validation
    expect(refusal(() => slurm.renderScript(spec({ setup: ['#SBATCH --partition=evil'] }))).field).toBe('setup');
    expect(refusal(() => slurm.renderScript(spec({ setup: ['  # sbatch --x'] }))).field).toBe('setup');
  });
});

/** Run `command` in /bin/sh with `programs` (name → sh body) first on PATH. */
function runSh(command: string, programs: Record<string, string>): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'jrc-slurm-'));
  try {
    for (const [name, body] of Object.entries(programs)) {
      writeFileSync(path.join(dir, name), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
    }
    return execFileSync('/bin/sh', ['-c', command], {
      env: { PATH: `${dir}:/usr/bin:/bin`, TZ: 'Asia/Tokyo', SLURM_TIME_FORMAT: 'relative' },
      encoding: 'utf8'
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
const PRINT_ARGS = 'for a in "$@"; do printf \'[%s]\\n\' "$a"; done';

describe('slurm: commands', () => {
  it('quotes the script path for sh', () => {
    const p = "/home/a b/it's $(id) `x`.sh";
    expect(slurm.submitCommand('/home/alice/s/job.sh')).toBe('sbatch --parsable /home/alice/s/job.sh');
    expect(runSh(slurm.submitCommand(p), { sbatch: PRINT_ARGS })).toBe(`[--parsable]\n[${p}]\n`);
    expect(() => slurm.submitCommand('/x\n/y')).toThrow(InvalidRequestError);
    expect(shQuote("it's")).toBe("'it'\\''s'");
    expect(shQuote('plain-1.0/x')).toBe('plain-1.0/x');
  });

  it('asks squeue once for all jobs, with unit-separated fields in UTC', () => {
    const cmd = new SlurmAdapter({ version: [22, 5] }).statusCommand(['12', '13', '12', '7_3']);
    expect(cmd.match(/squeue/g)).toHaveLength(1);
    // eslint-disable-next-line no-control-regex -- control characters are what is looked for
    expect(cmd).not.toMatch(/[\x00-\x08\x0b-\x1f]/); // the separator is made by printf remotely
    const out = runSh(cmd, {
      squeue: `${PRINT_ARGS}; printf '[TZ=%s SLURM_TIME_FORMAT=%s]\\n' "$TZ" "$SLURM_TIME_FORMAT"`
    });
    expect(out).toBe(
      [
        '[--me]',
        '[--noheader]',
        '[--states=all]',
        '[--jobs=12,13,7_3]',
        `[--format=${['%i', '%T', '%r', '%N', '%L', '%S'].join('\x1f')}]`,
        '[TZ=UTC SLURM_TIME_FORMAT=standard]',
        ''
      ].join('\n')
    );
  });

  it('is the command the fixtures were recorded with', () => {
    for (const f of readdirSync(FIXTURES).filter(n => n.startsWith('squeue-'))) {
      const fx = fixture(f.replace(/\.json$/, ''));
      const version: [number, number] = f.startsWith('squeue-json') ? [23, 2] : [22, 5];
      expect(fx.command.endsWith(new SlurmAdapter({ version }).statusCommand(fx.jobIds))).toBe(true);
    }
    expect(fixture('sbatch-ok').command).toBe(slurm.submitCommand('rcfix/ok.sh'));
  });

  it('refuses job ids that are not Slurm job ids', () => {
    for (const bad of ['', 'abc', '1;reboot', '1 2', '$(id)', '12.batch', '-1']) {
      expect(() => slurm.statusCommand(['1', bad])).toThrow(InvalidRequestError);
      expect(() => slurm.cancelCommand(bad)).toThrow(InvalidRequestError);
    }
    expect(() => slurm.statusCommand([])).toThrow(InvalidRequestError);
    expect(slurm.cancelCommand('123')).toBe('scancel 123');
    expect(slurm.cancelCommand('123_4')).toBe('scancel 123_4');
  });
});

describe('slurm: parseSubmit (recorded sbatch outputs)', () => {
  it('returns the job id', () => {
    expect(slurm.parseSubmit(fixture('sbatch-ok'))).toBe(fixture('sbatch-ok').stdout.trim());
    expect(slurm.parseSubmit(fixture('sbatch-ok'))).toMatch(/^\d+$/);
    expect(slurm.parseSubmit({ code: 0, stdout: '123;cluster2\n', stderr: '' })).toBe('123');
    expect(slurm.parseSubmit({ code: 0, stdout: '77\n', stderr: 'sbatch: warning: can not set memory limit\n' })).toBe(
      '77'
    );
    expect(() => slurm.parseSubmit({ code: 0, stdout: 'Submitted batch job 5\n', stderr: '' })).toThrow('no job id');
  });

  it.each([
    [
      'sbatch-bad-partition',
      'partition',
      'Slurm refused the job: Invalid partition name specified (invalid partition specified: nosuch).'
    ],
    ['sbatch-bad-gres', undefined, 'Requested node configuration is not available. No node of the partition has'],
    [
      'sbatch-bad-memory',
      'memory',
      'Requested node configuration is not available (Memory specification can not be satisfied).'
    ],
    ['sbatch-bad-time-min', 'walltime', "Invalid time-min specification (exceeds job's time or other limits)."],
    ['sbatch-missing-script', undefined, 'Slurm refused the job: Unable to open file rcfix/nosuch.sh.'],
    ['sbatch-bad-constraint', 'constraint', 'Slurm refused the job: Invalid feature specification.'],
    ['sbatch-bad-reservation', 'reservation', 'Slurm refused the job: Requested reservation is invalid.']
  ])('%s → a clean InvalidRequestError', (name, field, text) => {
    const err = refusal(() => slurm.parseSubmit(fixture(name)));
    expect(err.message).toContain(text);
    expect(err.message).not.toContain('sbatch: error');
    expect(err.field).toBe(field);
  });

  it('maps the time-limit refusal of sites with EnforcePartLimits (not reproducible here)', () => {
    // Text from Slurm's slurm_errno.c (ESLURM_INVALID_TIME_LIMIT): the testbed runs with
    // EnforcePartLimits=NO, where such jobs are queued instead (see squeue-partition-time-limit).
    const err = refusal(() =>
      slurm.parseSubmit({
        code: 1,
        stdout: '',
        stderr:
          'sbatch: error: Batch job submission failed: Requested time limit is invalid (missing or exceeds some limit)\n'
      })
    );
    expect(err.message).toBe('Slurm refused the job: Requested time limit is invalid (missing or exceeds some limit).');
    expect(err.field).toBe('walltime');
  });

  it('treats a controller that does not answer as unavailable, not as a refusal', () => {
    const timeout = fixture('squeue-controller-timeout').stderr.replace(
      'slurm_load_jobs error:',
      'sbatch: error: Batch job submission failed:'
    );
    expect(() => slurm.parseSubmit({ code: 1, stdout: '', stderr: timeout })).toThrow(SchedulerUnavailableError);
    expect(() => slurm.parseSubmit({ code: null, stdout: '', stderr: '' })).toThrow(SchedulerUnavailableError);
  });
});

describe('slurm: parseStatus (recorded squeue outputs)', () => {
  const one = (name: string) => {
    const fx = fixture(name);
    const m = slurm.parseStatus(fx.jobIds, fx);
    expect([...m.keys()]).toEqual(fx.jobIds);
    return m.get(fx.jobIds[0])!;
  };

  it('running: node and time left', () => {
    expect(one('squeue-running')).toEqual({
      jobId: fixture('squeue-running').jobIds[0],
      phase: 'running',
      nativeState: 'RUNNING',
      node: 'node2',
      timeLeftSeconds: 298, // 4:58
      nativeReason: undefined
    });
  });

  it('pending: reason and the estimated start, in UTC', () => {
    expect(one('squeue-pending')).toEqual({
      jobId: fixture('squeue-pending').jobIds[0],
      phase: 'pending',
      nativeState: 'PENDING',
      reason: 'waiting for free resources',
      nativeReason: 'Resources',
      startEstimate: '2026-11-25T10:55:48Z' // printed as 2026-11-25T10:55:48 with TZ=UTC
    });
  });

  it('pending forever: walltime over the partition limit is flagged as blocked', () => {
    const st = one('squeue-partition-time-limit');
    expect(st).toMatchObject({ phase: 'pending', blocked: true, nativeReason: 'PartitionTimeLimit' });
    expect(st.reason).toContain("exceeds the partition's limit");
    expect(st.startEstimate).toBeUndefined();
  });

  it.each([
    ['squeue-cancelled', 'CANCELLED', 'cancelled'],
    ['squeue-completed', 'COMPLETED', 'completed'],
    ['squeue-failed', 'FAILED', 'failed (the job exited with an error)'],
    ['squeue-timeout', 'TIMEOUT', 'walltime reached']
  ])('%s → ended', (name, state, reason) => {
    const st = one(name);
    expect(st).toMatchObject({ phase: 'ended', nativeState: state, reason });
    expect(st.timeLeftSeconds).toBeUndefined();
  });

  it('one query for many jobs; ids squeue does not list have left the queue', () => {
    const fx = fixture('squeue-mixed');
    const m = slurm.parseStatus(fx.jobIds, fx);
    // recorded as: hold (running), pending, over the limit, failed, done, cancelled, unknown id
    expect([...m.values()].map(st => `${st.phase}:${st.nativeState}`)).toEqual([
      'running:RUNNING',
      'pending:PENDING',
      'pending:PENDING',
      'ended:FAILED',
      'ended:COMPLETED',
      'ended:CANCELLED',
      'ended:'
    ]);
    expect(m.get('999999')!.reason).toBe('left the queue');
    expect(m.get(fx.jobIds[3])!.nativeReason).toBe('NonZeroExitCode');
    expect(m.get(fx.jobIds[2])!.blocked).toBe(true);
  });

  it('purged ids: squeue errors for one id and prints nothing for several; both mean ended', () => {
    for (const name of ['squeue-invalid-id', 'squeue-invalid-ids']) {
      const fx = fixture(name);
      for (const st of slurm.parseStatus(fx.jobIds, fx).values()) {
        expect(st).toMatchObject({ phase: 'ended', reason: 'left the queue' });
      }
    }
  });

  it.each(['squeue-controller-down', 'squeue-controller-timeout'])('%s → unknown for every job, never ended', name => {
    const fx = fixture(name);
    const ids = ['12', '13'];
    const m = slurm.parseStatus(ids, fx);
    expect([...m.values()].map(s => s.phase)).toEqual(['unknown', 'unknown']);
    expect(m.get('12')!.reason).toMatch(
      /Slurm controller not reachable: slurm_load_jobs error: (Unable to contact|Socket timed out)/
    );
  });

  it('unknown when squeue was killed, failed otherwise, or printed something unexpected', () => {
    const ids = ['12'];
    const phase = (r: ICommandResult) => slurm.parseStatus(ids, r).get('12')!.phase;
    expect(phase({ code: null, stdout: '', stderr: '' })).toBe('unknown');
    expect(phase({ code: 255, stdout: '', stderr: 'ssh: connect to host login port 22: Connection timed out' })).toBe(
      'unknown'
    );
    expect(phase({ code: 127, stdout: '', stderr: 'sh: 1: squeue: not found' })).toBe('unknown');
    expect(
      phase({ code: 1, stdout: '', stderr: 'slurm_load_jobs error: Zero Bytes were transmitted or received' })
    ).toBe('unknown');
    expect(phase({ code: 0, stdout: 'Welcome to the cluster!\n', stderr: '' })).toBe('unknown');
    expect(phase({ code: 0, stdout: '12 RUNNING None node1 1:00 N/A\n', stderr: '' })).toBe('unknown');
    // a multi-cluster header (SLURM_CLUSTERS in the environment) is skipped
    const fx = fixture('squeue-running');
    expect(
      slurm.parseStatus(fx.jobIds, { code: 0, stdout: `CLUSTER: rctb\n${fx.stdout}`, stderr: '' }).get(fx.jobIds[0])!
        .phase
    ).toBe('running');
  });

  // States the testbed cannot produce (no cgroups, no preemption, no node failures), in
  // the same format as the recorded rows.
  const row = (...f: string[]) => ({ code: 0, stdout: `${f.join('\x1f')}\n`, stderr: '' });
  it.each([
    ['OUT_OF_MEMORY', 'OutOfMemory', 'ended', 'out of memory'],
    ['FAILED', 'BadConstraints', 'ended', 'could not start: no node satisfies the constraints'], // seen on 22.05 for --gres=gpu:2
    ['FAILED', 'NonZeroExitCode', 'ended', 'failed (the job exited with an error)'],
    ['NODE_FAIL', 'NodeFail', 'ended', 'node failure'],
    ['PREEMPTED', 'None', 'ended', 'preempted by another job'],
    ['BOOT_FAIL', 'None', 'ended', 'the node failed to boot'],
    ['DEADLINE', 'None', 'ended', 'deadline reached'],
    ['COMPLETING', 'None', 'running', undefined],
    ['CONFIGURING', 'None', 'pending', 'waiting to be scheduled'],
    ['SUSPENDED', 'None', 'running', 'suspended by the scheduler'],
    ['WEIRD_NEW_STATE', 'None', 'unknown', 'unrecognised Slurm state WEIRD_NEW_STATE']
  ])('%s → %s', (state, reason, phase, text) => {
    const st = slurm
      .parseStatus(['5'], row('5', state, reason, 'cn[003-004]', 'UNLIMITED', '2026-01-01T00:00:00'))
      .get('5')!;
    expect(st.phase).toBe(phase);
    expect(st.reason).toBe(text);
    if (phase === 'running') {
      expect(st.node).toBe('cn003');
      expect(st.timeLeftSeconds).toBeUndefined(); // UNLIMITED
    }
  });

  it('humanises queue reasons', () => {
    const reason = (r: string) => slurm.parseStatus(['5'], row('5', 'PENDING', r, '', '1:00:00', 'N/A')).get('5')!;
    expect(reason('Priority').reason).toBe('waiting for jobs with higher priority');
    expect(reason('QOSMaxJobsPerUserLimit').reason).toBe(
      'a limit of your account or QOS is reached (QOSMaxJobsPerUserLimit)'
    );
    expect(reason('ReqNodeNotAvail, UnavailableNodes:node3').reason).toBe('the requested nodes are not available');
    expect(reason('SomethingNew').reason).toBe('SomethingNew');
    expect(reason('Priority').startEstimate).toBeUndefined(); // N/A
    expect(reason('Priority').blocked).toBeUndefined();
  });
});

describe('slurm: version, --me and JSON, learned once per cluster', () => {
  const rowsOf = (name: string) => fixture(name).stdout;

  it('probes the version in the first query only, then uses what it learned', () => {
    const root = new SlurmAdapter();
    const a = root.forCluster('|login|||');
    expect(root.forCluster('|login|||')).toBe(a);
    expect(root.forCluster('|other|||')).not.toBe(a);
    const [id] = fixture('squeue-running').jobIds;
    const first = a.statusCommand([id]);
    expect(first).toContain('squeue --version; ');
    expect(first).toContain(' --me ');
    // what the first query printed: the version line, then the rows
    const st = a.parseStatus([id], { code: 0, stdout: `slurm-wlm 22.05.8\n${rowsOf('squeue-running')}`, stderr: '' });
    expect(st.get(id)).toMatchObject({ phase: 'running', node: 'node2' });
    expect(a.features.version).toEqual([22, 5]);
    expect(a.statusCommand(['12'])).not.toContain('--version');
    expect(a.statusFormat).toBe('text');
    expect(root.forCluster('|other|||').statusCommand(['12'])).toContain('squeue --version; '); // not learned there
  });

  it('uses squeue --json from Slurm 23.02 on (its filters work there), without the probe', () => {
    const a = new SlurmAdapter();
    a.parseStatus(['1'], { code: 0, stdout: 'slurm 23.02.6\n', stderr: '' });
    expect(a.statusFormat).toBe('json');
    expect(a.statusCommand(['12', '13'])).toBe('squeue --json --me --states=all --jobs=12,13');
  });

  it('asks with --user where --me does not exist (Slurm < 20.11), by version or by the error', () => {
    const old = new SlurmAdapter();
    old.parseStatus(['1'], { code: 0, stdout: 'slurm 20.02.7\n', stderr: '' });
    expect(old.statusCommand(['12'])).toContain(' --user="${USER:-$(id -un)}" ');

    const b = new SlurmAdapter({ version: [22, 5] });
    const refused = b.parseStatus(['12'], {
      code: 1,
      stdout: '',
      stderr: 'squeue: unrecognized option \'--me\'\nTry "squeue --help" for more information\n'
    });
    expect(refused.get('12')).toMatchObject({ phase: 'unknown' }); // never ended for that
    const cmd = b.statusCommand(['12']);
    expect(cmd).not.toContain('--me');
    const out = runSh(cmd, { squeue: PRINT_ARGS });
    expect(out).toContain(`[--user=${os.userInfo().username}]\n`); // $USER unset there: id -un
  });

  it('falls back to the text format when squeue --json fails', () => {
    const a = new SlurmAdapter({ version: [23, 2] });
    const r = a.parseStatus(['12'], {
      code: 1,
      stdout: '',
      stderr: 'squeue: error: JSON plugin not found: serializer/json\n'
    });
    expect(r.get('12')!.phase).toBe('unknown');
    expect(a.statusFormat).toBe('text');
    expect(a.statusCommand(['12'])).toContain('--format=');
  });

  it('parses squeue --json of 22.05 (recorded; it lists every job, the asked ones are picked)', () => {
    const fx = fixture('squeue-json-22.05');
    const doc = JSON.parse(fx.stdout) as { jobs: { job_id: number; end_time: number }[] };
    expect(doc.jobs.length).toBeGreaterThanOrEqual(fx.jobIds.length - 1);
    const [hold, pend, over, failed, done, canc, gone] = fx.jobIds;
    const end = doc.jobs.find(j => String(j.job_id) === hold)!.end_time;
    const m = new SlurmAdapter({ version: [23, 2] }).parseStatusJson(fx.jobIds, fx.stdout, (end - 100) * 1000);
    expect([...m.keys()]).toEqual(fx.jobIds);
    expect(m.get(hold)).toMatchObject({
      phase: 'running',
      nativeState: 'RUNNING',
      node: 'node2',
      timeLeftSeconds: 100
    });
    expect(m.get(pend)).toMatchObject({
      phase: 'pending',
      nativeReason: 'Resources',
      reason: 'waiting for free resources'
    });
    expect(m.get(pend)!.startEstimate).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(m.get(over)).toMatchObject({ phase: 'pending', blocked: true, nativeReason: 'PartitionTimeLimit' });
    expect(m.get(failed)).toMatchObject({ phase: 'ended', nativeState: 'FAILED' });
    expect(m.get(done)).toMatchObject({ phase: 'ended', nativeState: 'COMPLETED' });
    expect(m.get(canc)).toMatchObject({ phase: 'ended', nativeState: 'CANCELLED' });
    expect(m.get(gone)).toMatchObject({ phase: 'ended', reason: 'left the queue' });
    // the same job, the same answer as the text format (recorded in the same run)
    const text = slurm.parseStatus([pend], fixture('squeue-pending'));
    expect(m.get(pend)!.startEstimate).toBe(text.get(pend)!.startEstimate);
  });

  it('parses the data_parser format of 23.02+ (published structure)', () => {
    const fx = readFixture<IFixture & { jobIds: string[] }>('slurm', 'json-24.11-published');
    const now = 1755293946 - 600; // ten minutes before job 525's end
    const a = new SlurmAdapter({ version: [24, 11] });
    const m = a.parseStatus(fx.jobIds, { code: 0, stdout: fx.stdout, stderr: '' });
    expect(m.get('526')).toMatchObject({
      phase: 'pending',
      reason: 'waiting for free resources',
      startEstimate: '2025-08-15T21:40:00Z'
    });
    const at = a.parseStatusJson(fx.jobIds, fx.stdout, now * 1000);
    expect(at.get('525')).toEqual({
      jobId: '525',
      phase: 'running',
      nativeState: 'RUNNING',
      node: 'demu4xgpu001',
      timeLeftSeconds: 600,
      nativeReason: undefined
    });
    expect(at.get('527')).toMatchObject({ phase: 'running', timeLeftSeconds: undefined }); // UNLIMITED
    expect(at.get('528')).toMatchObject({ phase: 'ended', reason: 'completed' });
    expect(at.get('530_1')).toMatchObject({
      phase: 'pending',
      nativeState: 'PENDING',
      reason: 'waiting for jobs with higher priority'
    });
    expect(at.get('530_1')!.startEstimate).toBeUndefined();
    expect(at.get('999')).toMatchObject({ phase: 'ended', reason: 'left the queue' });
  });

  it('never ends jobs on JSON it cannot read', () => {
    const a = new SlurmAdapter({ version: [23, 2] });
    expect(a.parseStatus(['1'], { code: 0, stdout: '{"jobs": ', stderr: '' }).get('1')!.phase).toBe('unknown');
    expect(a.statusFormat).toBe('text');
    const b = new SlurmAdapter({ version: [23, 2] });
    const m = b.parseStatus(['1'], {
      code: 0,
      stdout: '{"errors": [{"error": "Unable to contact slurm controller"}]}',
      stderr: ''
    });
    expect(m.get('1')).toMatchObject({ phase: 'unknown' });
    expect(m.get('1')!.reason).toContain('Unable to contact slurm controller');
  });
});

describe('slurm: helpers', () => {
  it('takes the first node of a host list', () => {
    expect(firstNode('node2')).toBe('node2');
    expect(firstNode('node[1-3,5]')).toBe('node1');
    expect(firstNode('node[5,1-3]')).toBe('node5');
    expect(firstNode('gpu[01-02],cpu1')).toBe('gpu01');
    expect(firstNode('a1,b[2-3]')).toBe('a1');
    expect(firstNode('rack[2-3]-n[07-08]')).toBe('rack2-n07');
    expect(firstNode('')).toBeUndefined();
    expect(firstNode('(null)')).toBeUndefined();
  });

  it('reads squeue durations', () => {
    expect(parseDuration('1-02:03:04')).toBe(93784);
    expect(parseDuration('02:03:04')).toBe(7384);
    expect(parseDuration('4:57')).toBe(297);
    expect(parseDuration('0:00')).toBe(0);
    expect(parseDuration('UNLIMITED')).toBeUndefined();
    expect(parseDuration('INVALID')).toBeUndefined();
    expect(parseDuration('NOT_SET')).toBeUndefined();
  });
});
