/**
 * The Slurm adapter against outputs recorded on a real Slurm 22.05 (fixtures/slurm/*.json,
 * made by fixtures/slurm/record.sh with the adapter's own commands), and its commands
 * against a real /bin/sh (quoting is checked by running them with stand-in programs).
 */
import { execFileSync } from 'node:child_process';
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
        extraDirectives: ['--qos=short', '--constraint=bigmem&ib', '--exclude=node[1-3]', '--mail-type=END,FAIL', '--exclusive']
      })
    ).not.toThrow();
    expect(() => slurm.validate({})).not.toThrow();
    expect(() => slurm.validate({ partition: '', cpus: undefined, gpus: 0 })).not.toThrow();
  });

  it.each<[keyof IResources | 'qos', unknown]>([
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
    ['gpus', 2.5]
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
    ''
  ])('refuses the extra directive %j', d => {
    const err = refusal(() => slurm.validate({ extraDirectives: [d] }));
    expect(err.field).toBe('extraDirectives');
    expect(err.message).toContain(JSON.stringify(d));
  });

  it('refuses extraDirectives that is not a list, and --gres together with gpus', () => {
    expect(refusal(() => slurm.validate({ extraDirectives: '--qos=x' as unknown as string[] })).field).toBe('extraDirectives');
    expect(() => slurm.validate({ extraDirectives: ['--gres=nvme:1'] })).not.toThrow();
    expect(refusal(() => slurm.validate({ gpus: 1, extraDirectives: ['--gres=nvme:1'] })).field).toBe('extraDirectives');
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
          extraDirectives: ['--qos=short', '--constraint=bigmem']
        },
        setup: ['module load python/3.11', 'source ~/venvs/lab/bin/activate']
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
        '#SBATCH --nodes=1',
        '#SBATCH --ntasks=1',
        '#SBATCH --partition=big',
        '#SBATCH --account=proj1',
        '#SBATCH --time=2:00:00',
        '#SBATCH --cpus-per-task=4',
        '#SBATCH --mem=8G',
        '#SBATCH --gres=gpu:1',
        '#SBATCH --qos=short',
        '#SBATCH --constraint=bigmem',
        '',
        '# environment setup from the profile',
        'module load python/3.11',
        'source ~/venvs/lab/bin/activate',
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
  });

  it('validates the resources and every value it writes', () => {
    expect(refusal(() => slurm.renderScript(spec({ resources: { partition: 'a b' } }))).field).toBe('partition');
    expect(refusal(() => slurm.renderScript(spec({ name: 'my job' }))).field).toBe('name');
    expect(refusal(() => slurm.renderScript(spec({ workdir: 'relative/dir' }))).field).toBe('workdir');
    expect(refusal(() => slurm.renderScript(spec({ stdoutPath: '/home/a b/out' }))).field).toBe('stdoutPath');
    expect(refusal(() => slurm.renderScript(spec({ stderrPath: '/x\n#SBATCH --partition=evil' }))).field).toBe('stderrPath');
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
const PRINT_ARGS = `for a in "$@"; do printf '[%s]\\n' "$a"; done`;

describe('slurm: commands', () => {
  it('quotes the script path for sh', () => {
    const p = "/home/a b/it's $(id) `x`.sh";
    expect(slurm.submitCommand('/home/alice/s/job.sh')).toBe('sbatch --parsable /home/alice/s/job.sh');
    expect(runSh(slurm.submitCommand(p), { sbatch: PRINT_ARGS })).toBe(`[--parsable]\n[${p}]\n`);
    expect(() => slurm.submitCommand('/x\n/y')).toThrow(InvalidRequestError);
    expect(shQuote("it's")).toBe(`'it'\\''s'`);
    expect(shQuote('plain-1.0/x')).toBe('plain-1.0/x');
  });

  it('asks squeue once for all jobs, with unit-separated fields in UTC', () => {
    const cmd = slurm.statusCommand(['12', '13', '12', '7_3']);
    expect(cmd.match(/squeue/g)).toHaveLength(1);
    expect(cmd).not.toMatch(/[\x00-\x08\x0b-\x1f]/); // the separator is made by printf remotely
    const out = runSh(cmd, { squeue: `${PRINT_ARGS}; printf '[TZ=%s SLURM_TIME_FORMAT=%s]\\n' "$TZ" "$SLURM_TIME_FORMAT"` });
    expect(out).toBe(
      [
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
      expect(fx.command.endsWith(slurm.statusCommand(fx.jobIds))).toBe(true);
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
    expect(slurm.parseSubmit(fixture('sbatch-ok'))).toBe('6');
    expect(slurm.parseSubmit({ code: 0, stdout: '123;cluster2\n', stderr: '' })).toBe('123');
    expect(slurm.parseSubmit({ code: 0, stdout: '77\n', stderr: 'sbatch: warning: can not set memory limit\n' })).toBe('77');
    expect(() => slurm.parseSubmit({ code: 0, stdout: 'Submitted batch job 5\n', stderr: '' })).toThrow('no job id');
  });

  it.each([
    ['sbatch-bad-partition', 'partition', 'Slurm refused the job: Invalid partition name specified (invalid partition specified: nosuch).'],
    ['sbatch-bad-gres', undefined, 'Requested node configuration is not available. No node of the partition has'],
    ['sbatch-bad-memory', 'memory', 'Requested node configuration is not available (Memory specification can not be satisfied).'],
    ['sbatch-bad-time-min', 'walltime', "Invalid time-min specification (exceeds job's time or other limits)."],
    ['sbatch-missing-script', undefined, 'Slurm refused the job: Unable to open file rcfix/nosuch.sh.']
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
        stderr: 'sbatch: error: Batch job submission failed: Requested time limit is invalid (missing or exceeds some limit)\n'
      })
    );
    expect(err.message).toBe('Slurm refused the job: Requested time limit is invalid (missing or exceeds some limit).');
    expect(err.field).toBe('walltime');
  });

  it('treats a controller that does not answer as unavailable, not as a refusal', () => {
    const timeout = fixture('squeue-controller-timeout').stderr.replace('slurm_load_jobs error:', 'sbatch: error: Batch job submission failed:');
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
      jobId: '12',
      phase: 'running',
      nativeState: 'RUNNING',
      node: 'node2',
      timeLeftSeconds: 297,
      nativeReason: undefined
    });
  });

  it('pending: reason and the estimated start, in UTC', () => {
    expect(one('squeue-pending')).toEqual({
      jobId: '13',
      phase: 'pending',
      nativeState: 'PENDING',
      reason: 'waiting for free resources',
      nativeReason: 'Resources',
      startEstimate: '2026-11-25T08:45:21Z'
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
    expect(Object.fromEntries([...m].map(([id, st]) => [id, `${st.phase}:${st.nativeState}`]))).toEqual({
      '12': 'running:RUNNING',
      '13': 'pending:PENDING',
      '14': 'pending:PENDING',
      '9': 'ended:FAILED',
      '10': 'ended:COMPLETED',
      '15': 'ended:CANCELLED',
      '999999': 'ended:'
    });
    expect(m.get('999999')!.reason).toBe('left the queue');
    expect(m.get('9')!.nativeReason).toBe('NonZeroExitCode');
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
    expect(m.get('12')!.reason).toMatch(/Slurm controller not reachable: slurm_load_jobs error: (Unable to contact|Socket timed out)/);
  });

  it('unknown when squeue was killed, failed otherwise, or printed something unexpected', () => {
    const ids = ['12'];
    const phase = (r: ICommandResult) => slurm.parseStatus(ids, r).get('12')!.phase;
    expect(phase({ code: null, stdout: '', stderr: '' })).toBe('unknown');
    expect(phase({ code: 255, stdout: '', stderr: 'ssh: connect to host login port 22: Connection timed out' })).toBe('unknown');
    expect(phase({ code: 127, stdout: '', stderr: 'sh: 1: squeue: not found' })).toBe('unknown');
    expect(phase({ code: 1, stdout: '', stderr: 'slurm_load_jobs error: Zero Bytes were transmitted or received' })).toBe('unknown');
    expect(phase({ code: 0, stdout: 'Welcome to the cluster!\n', stderr: '' })).toBe('unknown');
    expect(phase({ code: 0, stdout: '12 RUNNING None node1 1:00 N/A\n', stderr: '' })).toBe('unknown');
    // a multi-cluster header (SLURM_CLUSTERS in the environment) is skipped
    const row = fixture('squeue-running').stdout;
    expect(phase({ code: 0, stdout: `CLUSTER: rctb\n${row}`, stderr: '' })).toBe('running');
  });

  // States the testbed cannot produce (no cgroups, no preemption, no node failures), in
  // the same format as the recorded rows.
  const row = (...f: string[]) => ({ code: 0, stdout: `${f.join('\x1f')}\n`, stderr: '' });
  it.each([
    ['OUT_OF_MEMORY', 'OutOfMemory', 'ended', 'out of memory'],
    ['NODE_FAIL', 'NodeFail', 'ended', 'node failure'],
    ['PREEMPTED', 'None', 'ended', 'preempted by another job'],
    ['BOOT_FAIL', 'None', 'ended', 'the node failed to boot'],
    ['DEADLINE', 'None', 'ended', 'deadline reached'],
    ['COMPLETING', 'None', 'running', undefined],
    ['CONFIGURING', 'None', 'pending', 'waiting to be scheduled'],
    ['SUSPENDED', 'None', 'running', 'suspended by the scheduler'],
    ['WEIRD_NEW_STATE', 'None', 'unknown', 'unrecognised Slurm state WEIRD_NEW_STATE']
  ])('%s → %s', (state, reason, phase, text) => {
    const st = slurm.parseStatus(['5'], row('5', state, reason, 'cn[003-004]', 'UNLIMITED', '2026-01-01T00:00:00')).get('5')!;
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
    expect(reason('QOSMaxJobsPerUserLimit').reason).toBe('a limit of your account or QOS is reached (QOSMaxJobsPerUserLimit)');
    expect(reason('ReqNodeNotAvail, UnavailableNodes:node3').reason).toBe('the requested nodes are not available');
    expect(reason('SomethingNew').reason).toBe('SomethingNew');
    expect(reason('Priority').startEstimate).toBeUndefined(); // N/A
    expect(reason('Priority').blocked).toBeUndefined();
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
