/**
 * The LSF adapter against outputs published in public repositories and IBM's documentation
 * (fixtures/lsf/*.json, sources in fixtures/lsf/README.md), and its commands against a real
 * /bin/sh (quoting is checked by running them with stand-in programs).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import type { IResources } from '../../common/api';
import { firstExecHost, formatRunLimit, LsfAdapter, parseTimeLeft, walltimeMinutes } from '../schedulers/lsf';
import { InvalidRequestError, SchedulerUnavailableError, type ICommandResult } from '../schedulers/types';
import { runWithFake } from './helpers/fake-command';
import { readFixture, refusal, scriptTail, SETUP, spec } from './helpers/adapters';

interface IFixture extends ICommandResult {
  description: string;
  source: string;
  adapted: string;
  command: string;
  jobIds: string[];
}

const FIXTURES = path.join(__dirname, 'fixtures', 'lsf');
function fixture(name: string): IFixture {
  return readFixture<IFixture>('lsf', name);
}

const lsf = new LsfAdapter();
const lsfText = new LsfAdapter({ json: false });

describe('lsf: validate', () => {
  it('accepts a full, valid request', () => {
    expect(() =>
      lsf.validate({
        partition: 'normal',
        account: 'proj_42',
        walltime: '1-12:00:00',
        cpus: 8,
        memory: '32G',
        gpus: 2,
        extraDirectives: ['-app gpu_app', '-R "select[mem>4000] order[r15s:pg]"', '-x', '-We 30', '-m hostA']
      })
    ).not.toThrow();
    expect(() => lsf.validate({})).not.toThrow();
    expect(() => lsf.validate({ partition: '', cpus: undefined, gpus: 0 })).not.toThrow();
  });

  it.each<[keyof IResources, unknown]>([
    ['partition', 'normal; rm -rf ~'],
    ['partition', 'a b'],
    ['partition', '$(id)'],
    ['partition', 'x'.repeat(65)],
    ['account', "proj'42"],
    ['account', 'a\nb'],
    ['walltime', 'abc'],
    ['walltime', '1:30'], // ambiguous: LSF HH:MM or Slurm MM:SS
    ['walltime', '0'],
    ['walltime', '10;reboot'],
    ['walltime', '1h'],
    ['cpus', 0],
    ['cpus', 4097],
    ['cpus', '4; id'],
    ['memory', '4GB'],
    ['memory', '0'],
    ['memory', '4 G'],
    ['memory', 4096],
    ['gpus', -1],
    ['gpus', 65],
    ['gpus', 1.5]
  ])('refuses %s = %j, naming the field and the value', (field, value) => {
    const err = refusal(() => lsf.validate({ [field]: value } as IResources));
    expect(err.field).toBe(field);
    expect(err.message).toContain(field);
    expect(err.message).toContain(JSON.stringify(value).slice(0, 20));
  });

  it.each([
    '-R "select[mem>4000]"\n#BSUB -q evil',
    '-R "a" "b"',
    "-R 'select[x]'",
    '-R "$(id)"',
    '-app `id`',
    '-app a;b',
    '-app a\\b',
    '-app $HOME',
    '--app x',
    'app x',
    '-',
    '',
    '-J other',
    '-o /tmp/x',
    '-oo /tmp/x',
    '-e /tmp/x',
    '-cwd /',
    '-Is',
    '-I',
    '-K',
    '-q big',
    '-P proj',
    '-W 10',
    '-n 4',
    '-M 4GB',
    '-gpu "num=1"'
  ])('refuses the extra directive %j', d => {
    const err = refusal(() => lsf.validate({ extraDirectives: [d] }));
    expect(err.field).toBe('extraDirectives');
    expect(err.message).toContain(JSON.stringify(d).slice(0, 20));
  });

  it('refuses extraDirectives that is not a list, and a GPU -R together with gpus', () => {
    expect(refusal(() => lsf.validate({ extraDirectives: '-x' as unknown as string[] })).field).toBe('extraDirectives');
    expect(() => lsf.validate({ extraDirectives: ['-R "rusage[ngpus_physical=1]"'] })).not.toThrow();
    expect(refusal(() => lsf.validate({ gpus: 1, extraDirectives: ['-R "rusage[ngpus_physical=1]"'] })).field).toBe(
      'extraDirectives'
    );
  });

  it('converts walltimes to -W minutes, rounding seconds up', () => {
    expect(walltimeMinutes('30')).toBe(30);
    expect(walltimeMinutes(45)).toBe(45);
    expect(walltimeMinutes('01:30:00')).toBe(90);
    expect(walltimeMinutes('00:00:01')).toBe(1);
    expect(walltimeMinutes('2-12')).toBe(3600);
    expect(formatRunLimit(30)).toBe('30');
    expect(formatRunLimit(90)).toBe('1:30');
    expect(formatRunLimit(3600)).toBe('60:00');
    expect(formatRunLimit(61)).toBe('1:01');
  });
});

describe('lsf: renderScript', () => {
  it('writes #BSUB lines, setup lines and exec of the command', () => {
    const script = lsf.renderScript(
      spec({
        resources: {
          partition: 'normal',
          account: 'proj1',
          walltime: '2:00:00',
          cpus: 4,
          memory: '8G',
          gpus: 1,
          extraDirectives: ['-app lab', '-R "select[type==X86_64]"']
        },
        setup: SETUP
      })
    );
    expect(script).toBe(
      [
        '#!/bin/sh',
        '# jupyterlab-remote-cluster session (generated; edits are overwritten)',
        '#BSUB -J jrc-ab12cd',
        '#BSUB -o /home/alice/.jupyter-remote-cluster/sessions/ab12cd/job.out',
        '#BSUB -e /home/alice/.jupyter-remote-cluster/sessions/ab12cd/job.err',
        '#BSUB -cwd /home/alice/.jupyter-remote-cluster/sessions/ab12cd',
        '#BSUB -q normal',
        '#BSUB -P proj1',
        '#BSUB -W 2:00',
        '#BSUB -n 4',
        '#BSUB -R "span[hosts=1]"',
        '#BSUB -R "rusage[mem=8GB]"',
        '#BSUB -M 8GB',
        '#BSUB -gpu "num=1"',
        '#BSUB -app lab',
        '#BSUB -R "select[type==X86_64]"',
        '',
        ...scriptTail('LSF')
      ].join('\n')
    );
  });

  it('leaves out what is not set, and writes memory without a unit as megabytes', () => {
    const script = lsf.renderScript(spec({ resources: { gpus: 0, memory: '500' } }));
    expect(script).not.toMatch(/-q |-W |-gpu|-P |-n |span/);
    expect(script).toContain('#BSUB -R "rusage[mem=500MB]"\n#BSUB -M 500MB\n');
    expect(script).not.toContain('environment setup');
  });

  it('validates the resources and every value it writes', () => {
    expect(refusal(() => lsf.renderScript(spec({ resources: { partition: 'a b' } }))).field).toBe('partition');
    expect(refusal(() => lsf.renderScript(spec({ name: 'job[1-100]' }))).field).toBe('name'); // would be an array
    expect(refusal(() => lsf.renderScript(spec({ workdir: 'relative/dir' }))).field).toBe('workdir');
    expect(refusal(() => lsf.renderScript(spec({ stdoutPath: '/home/a b/out' }))).field).toBe('stdoutPath');
    expect(refusal(() => lsf.renderScript(spec({ stderrPath: '/x\n#BSUB -q evil' }))).field).toBe('stderrPath');
    expect(refusal(() => lsf.renderScript(spec({ command: 'python helper.py\nrm -rf ~' }))).field).toBe('command');
    expect(refusal(() => lsf.renderScript(spec({ setup: ['#BSUB -q evil'] }))).field).toBe('setup');
    expect(refusal(() => lsf.renderScript(spec({ setup: ['  # bsub -q evil'] }))).field).toBe('setup');
  });
});

/** Run `command` in /bin/sh with `programs` (name → sh body) first on PATH. */
function runSh(command: string, programs: Record<string, string>, cwd?: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'jrc-lsf-'));
  try {
    for (const [name, body] of Object.entries(programs)) {
      writeFileSync(path.join(dir, name), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
    }
    return execFileSync('/bin/sh', ['-c', command], {
      env: { PATH: `${dir}:/usr/bin:/bin` },
      encoding: 'utf8',
      cwd: cwd ?? dir
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
const PRINT_ARGS = 'for a in "$@"; do printf \'[%s]\\n\' "$a"; done';

describe('lsf: commands', () => {
  it('feeds the script to bsub on stdin, quoted for sh', () => {
    expect(lsf.submitCommand('/home/alice/s/job.sh')).toBe('bsub < /home/alice/s/job.sh');
    const dir = mkdtempSync(path.join(os.tmpdir(), "jrc lsf 'x' $(id)"));
    try {
      const p = path.join(dir, "it's `x`.sh");
      writeFileSync(p, '#BSUB -J hello\n');
      // the stand-in bsub prints its arguments, then what it read on stdin
      expect(runSh(lsf.submitCommand(p), { bsub: `${PRINT_ARGS}; cat` })).toBe('#BSUB -J hello\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(() => lsf.submitCommand('/x\n/y')).toThrow(InvalidRequestError);
  });

  it('asks bjobs once for all jobs, in JSON or (old LSF) delimited text', () => {
    const fields = '[jobid stat exec_host time_left exit_code exit_reason pend_reason]';
    expect(runSh(lsf.statusCommand(['12', '13', '12']), { bjobs: PRINT_ARGS })).toBe(
      ['[-o]', fields, '[-json]', '[12]', '[13]', ''].join('\n')
    );
    expect(runSh(lsfText.statusCommand(['12']), { bjobs: PRINT_ARGS })).toBe(
      ['[-noheader]', '[-o]', `${fields.slice(0, -1)} delimiter='^']`, '[12]', ''].join('\n')
    );
  });

  it('is the command the fixtures were made for', () => {
    for (const f of readdirSync(FIXTURES).filter(n => n.startsWith('bjobs-'))) {
      const fx = fixture(f.replace(/\.json$/, ''));
      const adapter = fx.command.includes('-json') ? lsf : lsfText;
      expect(fx.command).toBe(adapter.statusCommand(fx.jobIds));
    }
  });

  it('refuses job ids that are not LSF job ids', () => {
    for (const bad of ['', 'abc', '1;reboot', '1 2', '$(id)', '12[3]', '-1']) {
      expect(() => lsf.statusCommand(['1', bad])).toThrow(InvalidRequestError);
      expect(() => lsf.cancelCommand(bad)).toThrow(InvalidRequestError);
    }
    expect(() => lsf.statusCommand([])).toThrow(InvalidRequestError);
    expect(runWithFake(lsf.cancelCommand('123'), 'bkill', 'Job <123> is being terminated', 0)).toMatchObject({
      code: 0
    });
    expect(runWithFake(lsf.cancelCommand('123'), 'bkill', '', 0).stdout).toContain('args: 123');
    for (const gone of ['Job <123>: Job has already finished', 'Job <123>: No matching job found']) {
      expect(runWithFake(lsf.cancelCommand('123'), 'bkill', gone, 255).code).toBe(0);
    }
    const down = runWithFake(lsf.cancelCommand('123'), 'bkill', 'LSF is down. Please wait ...', 255);
    expect(down.code).toBe(255);
    expect(down.stderr).toContain('LSF is down');
  });
});

describe('lsf: parseSubmit', () => {
  it('returns the job id', () => {
    expect(lsf.parseSubmit(fixture('bsub-ok'))).toBe('542935');
    // LSF busy: bsub waits, then submits to the default queue
    expect(lsf.parseSubmit(fixture('bsub-slow-lsf'))).toBe('12345678');
    expect(() => lsf.parseSubmit({ code: 0, stdout: 'Submitted\n', stderr: '' })).toThrow('no job id');
  });

  it.each([
    ['bsub-no-such-queue', 'partition', 'LSF refused the job: badq: No such queue.'],
    ['bsub-too-many-processors', 'cpus', 'LSF refused the job: Too many processors requested.'],
    ['bsub-rusage-error', 'memory', 'LSF refused the job: Error in rusage section.']
  ])('%s → a clean InvalidRequestError', (name, field, text) => {
    const err = refusal(() => lsf.parseSubmit(fixture(name)));
    expect(err.message).toBe(text);
    expect(err.field).toBe(field);
  });

  it("a run limit over the queue's is about the walltime, not the queue", () => {
    const err = refusal(() =>
      lsf.parseSubmit({
        code: 255,
        stdout: '',
        stderr: "RUNLIMIT: Cannot exceed queue's hard limit(s). Job not submitted.\n"
      })
    );
    expect(err.field).toBe('walltime');
    expect(err.message).toBe("LSF refused the job: RUNLIMIT: Cannot exceed queue's hard limit(s).");
  });

  it('"Job not submitted" is a refusal even with exit code 0', () => {
    const err = refusal(() =>
      lsf.parseSubmit({ code: 0, stdout: 'badq: No such queue. Job not submitted.\n', stderr: '' })
    );
    expect(err.field).toBe('partition');
  });

  it('an LSF that does not answer is unavailable, not a refusal', () => {
    expect(() => lsf.parseSubmit({ ...fixture('bjobs-down') })).toThrow(SchedulerUnavailableError);
    expect(() => lsf.parseSubmit({ code: null, stdout: '', stderr: '' })).toThrow(SchedulerUnavailableError);
    expect(() =>
      lsf.parseSubmit({ code: 255, stdout: '', stderr: 'Cannot connect to LSF. Please wait ...\n' })
    ).toThrow(SchedulerUnavailableError);
  });
});

describe('lsf: parseStatus', () => {
  const one = (name: string, adapter = lsf) => {
    const fx = fixture(name);
    const m = adapter.parseStatus(fx.jobIds, fx);
    expect([...m.keys()]).toEqual(fx.jobIds);
    return m.get(fx.jobIds[0])!;
  };

  it('PEND → pending with the pending reason', () => {
    expect(one('bjobs-json-pend')).toEqual({
      jobId: '12345678',
      phase: 'pending',
      nativeState: 'PEND',
      reason: 'New job is waiting for scheduling',
      nativeReason: 'New job is waiting for scheduling'
    });
  });

  it('PSUSP → pending, held', () => {
    expect(one('bjobs-json-psusp')).toMatchObject({
      phase: 'pending',
      nativeState: 'PSUSP',
      reason: 'held while pending (bresume to release it)'
    });
  });

  it('RUN → running: first host of exec_host, time left', () => {
    expect(one('bjobs-json-running')).toEqual({
      jobId: '806290',
      phase: 'running',
      nativeState: 'RUN',
      node: 'batch3',
      timeLeftSeconds: 4980
    });
  });

  it('DONE → ended completed; EXIT → ended with the exit reason', () => {
    expect(one('bjobs-json-done')).toEqual({
      jobId: '22005',
      phase: 'ended',
      nativeState: 'DONE',
      reason: 'completed'
    });
    expect(one('bjobs-json-exit-killed')).toEqual({
      jobId: '12345678',
      phase: 'ended',
      nativeState: 'EXIT',
      reason: 'cancelled',
      nativeReason: 'TERM_OWNER: job killed by owner'
    });
  });

  it('reads the JSON after "Cannot connect to LSF. Please wait ..." lines', () => {
    expect(one('bjobs-json-slow-lsf')).toMatchObject({ phase: 'pending', nativeState: 'PEND' });
  });

  it('text mode: several jobs, and ids bjobs does not know have left the queue', () => {
    const fx = fixture('bjobs-text-mixed');
    const m = lsfText.parseStatus(fx.jobIds, fx);
    expect(Object.fromEntries([...m].map(([id, st]) => [id, `${st.phase}:${st.nativeState}`]))).toEqual({
      '1': 'ended:DONE',
      '2': 'running:RUN',
      '3': 'ended:'
    });
    expect(m.get('2')).toMatchObject({ node: 'abc-comp01', timeLeftSeconds: 2700 });
    expect(m.get('3')!.reason).toBe('left the queue');
    // the JSON adapter reads text output too
    expect(lsf.parseStatus(fx.jobIds, fx).get('2')!.phase).toBe('running');
  });

  it('missing ids → ended, whether bjobs exits 0 or 255, on stderr or as a JSON ERROR record', () => {
    expect(one('bjobs-text-not-found', lsfText)).toMatchObject({ phase: 'ended', reason: 'left the queue' });
    const errRecord = {
      code: 255,
      stdout: '{"COMMAND":"bjobs","JOBS":1,"RECORDS":[{"ERROR":"Job <77> is not found"}]}\n',
      stderr: ''
    };
    expect(lsf.parseStatus(['77'], errRecord).get('77')).toMatchObject({ phase: 'ended', reason: 'left the queue' });
    expect(
      lsf.parseStatus(['77'], { code: 0, stdout: '{"COMMAND":"bjobs","JOBS":0,"RECORDS":[]}', stderr: '' }).get('77')!
        .phase
    ).toBe('ended');
  });

  it('LSF down → unknown for every job, never ended', () => {
    const fx = fixture('bjobs-down');
    const m = lsf.parseStatus(['1', '2'], fx);
    expect([...m.values()].map(s => s.phase)).toEqual(['unknown', 'unknown']);
    expect(m.get('1')!.reason).toBe('LSF not reachable: LSF is down. Please wait ...');
    for (const stderr of [
      'Cannot connect to LSF. Please wait ...',
      'batch system daemon not responding ... still trying',
      'LIM is down; try later'
    ]) {
      expect(lsf.parseStatus(['1'], { code: 255, stdout: '', stderr }).get('1')!.phase).toBe('unknown');
    }
  });

  it('unknown when bjobs was killed, failed otherwise, or printed something unexpected', () => {
    const phase = (r: ICommandResult) => lsf.parseStatus(['12'], r).get('12')!.phase;
    expect(phase({ code: null, stdout: '', stderr: '' })).toBe('unknown');
    expect(phase({ code: 127, stdout: '', stderr: 'sh: 1: bjobs: not found' })).toBe('unknown');
    expect(phase({ code: 0, stdout: 'Welcome to the cluster!\n', stderr: '' })).toBe('unknown');
    expect(phase({ code: 0, stdout: '{"COMMAND":"bjobs", broken', stderr: '' })).toBe('unknown');
    const old = lsf
      .parseStatus(['12'], { code: 255, stdout: '', stderr: '-json: Illegal option\nUsage: bjobs ...' })
      .get('12')!;
    expect(old).toMatchObject({ phase: 'unknown' });
    expect(old.reason).toContain('json: false');
  });

  const row = (...f: string[]) => ({ code: 0, stdout: `${f.join('^')}\n`, stderr: '' });
  it.each([
    ['USUSP', '', 'running', 'suspended by you or an administrator'],
    ['SSUSP', '', 'running', 'suspended by LSF'],
    ['EXIT', 'TERM_RUNLIMIT: job killed after reaching LSF run time limit', 'ended', 'walltime reached'],
    ['EXIT', 'TERM_MEMLIMIT: job killed after reaching LSF memory usage limit', 'ended', 'out of memory'],
    ['EXIT', '-', 'ended', 'failed (exit code 3)'],
    ['UNKWN', '-', 'unknown', 'unrecognised LSF state UNKWN'],
    ['ZOMBI', '-', 'unknown', 'unrecognised LSF state ZOMBI']
  ])('%s (%s) → %s', (state, exitReason, phase, text) => {
    const st = lsfText.parseStatus(['5'], row('5', state, '2*hostA:hostB', '-', '3', exitReason, '-')).get('5')!;
    expect(st.phase).toBe(phase);
    expect(st.reason).toBe(text);
    if (phase === 'running') {
      expect(st.node).toBe('hostA');
      expect(st.timeLeftSeconds).toBeUndefined();
    }
  });
});

describe('lsf: helpers', () => {
  it('takes the first execution host', () => {
    expect(firstExecHost('4*hostA:2*hostB')).toBe('hostA');
    expect(firstExecHost('tbi-cn019:tbi-cn019')).toBe('tbi-cn019');
    expect(firstExecHost('hostC')).toBe('hostC');
    expect(firstExecHost('')).toBeUndefined();
    expect(firstExecHost('-')).toBeUndefined();
    expect(firstExecHost(undefined)).toBeUndefined();
  });

  it('reads time_left', () => {
    expect(parseTimeLeft('1:23 L')).toBe(4980);
    expect(parseTimeLeft('0:05 E')).toBe(300);
    expect(parseTimeLeft('01:23:20 L')).toBe(5000); // -hms
    expect(parseTimeLeft('2:00 X')).toBeUndefined(); // estimate exceeded
    expect(parseTimeLeft('-')).toBeUndefined();
    expect(parseTimeLeft('')).toBeUndefined();
  });
});
