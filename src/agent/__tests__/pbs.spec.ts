/**
 * The PBS adapter (PBS Pro / OpenPBS and Torque) against real qstat outputs published in
 * public repositories (fixtures/pbs/README.md names each source).
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';

import type { IResources } from '../../common/api';
import { exitReason, firstExecHost, parsePbsDuration, parseQstatText, PbsAdapter } from '../schedulers/pbs';
import { SchedulerUnavailableError, type ICommandResult } from '../schedulers/types';
import { runWithFake } from './helpers/fake-command';
import { refusal, spec } from './helpers/adapters';

const FIXTURES = path.join(__dirname, 'fixtures', 'pbs');
const read = (name: string) => readFileSync(path.join(FIXTURES, name), 'utf8');
const ok = (stdout: string, stderr = '', code: number | null = 0): ICommandResult => ({ code, stdout, stderr });

const pbs = new PbsAdapter();
const torque = new PbsAdapter({ flavour: 'torque' });

describe('pbs: validate', () => {
  it('accepts a full, valid request for both flavours', () => {
    const r: IResources = {
      partition: 'workq',
      account: 'proj_42',
      walltime: '1-12:00:00',
      cpus: 8,
      memory: '32G',
      gpus: 2,
      extraDirectives: ['-l place=excl', '-W group_list=B080', '-m abe', '-P col380.user', '-V']
    };
    expect(() => pbs.validate(r)).not.toThrow();
    expect(() => torque.validate(r)).not.toThrow();
    expect(() => pbs.validate({})).not.toThrow();
  });

  it.each<[keyof IResources, unknown]>([
    ['partition', 'workq; rm -rf ~'],
    ['partition', '$(id)'],
    ['account', "proj'42"],
    ['account', 'a\nb'],
    ['walltime', 'abc'],
    ['walltime', '10:61:00'],
    ['walltime', '0'],
    ['walltime', '1;reboot'],
    ['cpus', 0],
    ['cpus', '4; id'],
    ['memory', '4GB'],
    ['memory', '4 G'],
    ['memory', '0'],
    ['gpus', -1],
    ['gpus', 65]
  ])('refuses %s = %j, naming the field', (field, value) => {
    const err = refusal(() => pbs.validate({ [field]: value } as IResources));
    expect(err.field).toBe(field);
    expect(err.message).toContain(JSON.stringify(value).slice(0, 20));
  });

  it.each([
    '-l place=excl; id',
    '-l a b',
    "-W x='y'",
    '-W x=$HOME',
    '-W x=`id`',
    '-l x=1\n#PBS -N evil',
    '--qos=short',
    'place=excl',
    '-N other',
    '-o /tmp/x',
    '-e /tmp/x',
    '-j oe',
    '-J 1-10',
    '-t 1-10',
    '-I',
    '-z',
    '-W block=true',
    '-q other',
    '-A other',
    '-l walltime=10:00:00',
    '-l select=2:ncpus=4',
    '-l nodes=2:ppn=4',
    '-l mem=4gb',
    '-l ngpus=1',
    '-l place=excl,walltime=1:00:00',
    ''
  ])('refuses the extra directive %j', d => {
    const err = refusal(() => pbs.validate({ extraDirectives: [d] }));
    expect(err.field).toBe('extraDirectives');
  });

  it('refuses extraDirectives that is not a list and a bad flavour', () => {
    expect(refusal(() => pbs.validate({ extraDirectives: '-V' as unknown as string[] })).field).toBe('extraDirectives');
    expect(refusal(() => new PbsAdapter({ flavour: 'lsf' as 'torque' })).field).toBe('flavour');
  });
});

describe('pbs: renderScript', () => {
  const resources: IResources = {
    partition: 'workq',
    account: 'proj1',
    walltime: '1-02:03:04',
    cpus: 4,
    memory: '8G',
    gpus: 1,
    extraDirectives: ['-l place=excl']
  };

  it('writes PBS Pro directives, cd to the workdir, setup lines and exec', () => {
    const lines = pbs.renderScript(spec({ resources, setup: ['module load python/3.11'] })).split('\n');
    expect(lines[0]).toBe('#!/bin/sh');
    const directives = lines.filter(l => l.startsWith('#PBS '));
    expect(directives).toEqual([
      '#PBS -N jrc-ab12cd',
      '#PBS -o /home/alice/.jupyter-remote-cluster/sessions/ab12cd/job.out',
      '#PBS -e /home/alice/.jupyter-remote-cluster/sessions/ab12cd/job.err',
      '#PBS -j n',
      '#PBS -S /bin/sh',
      '#PBS -q workq',
      '#PBS -A proj1',
      '#PBS -l walltime=26:03:04',
      '#PBS -l select=1:ncpus=4:mem=8gb:ngpus=1',
      '#PBS -l place=excl'
    ]);
    // all directives come before the first command (qsub stops reading them there)
    const firstCommand = lines.findIndex(l => l && !l.startsWith('#'));
    expect(lines.slice(firstCommand).some(l => l.startsWith('#PBS'))).toBe(false);
    expect(lines[firstCommand]).toBe('cd /home/alice/.jupyter-remote-cluster/sessions/ab12cd || exit 1');
    expect(lines).toContain('{ module load python/3.11'); // stops the job if it fails (setupBlock)
    expect(lines.indexOf('{ module load python/3.11')).toBeGreaterThan(firstCommand);
    expect(lines[lines.length - 2]).toBe(`exec ${spec().command}`);
  });

  it('writes Torque nodes/ppn, gpus and a separate mem', () => {
    const directives = torque
      .renderScript(spec({ resources }))
      .split('\n')
      .filter(l => l.startsWith('#PBS -l'));
    expect(directives).toEqual([
      '#PBS -l walltime=26:03:04',
      '#PBS -l nodes=1:ppn=4:gpus=1',
      '#PBS -l mem=8gb',
      '#PBS -l place=excl'
    ]);
  });

  it('converts memory units and defaults to one CPU', () => {
    const line = (memory: string) =>
      pbs
        .renderScript(spec({ resources: { memory } }))
        .split('\n')
        .find(l => l.startsWith('#PBS -l select'));
    expect(line('500')).toBe('#PBS -l select=1:ncpus=1:mem=500mb');
    expect(line('512K')).toBe('#PBS -l select=1:ncpus=1:mem=512kb');
    expect(line('2T')).toBe('#PBS -l select=1:ncpus=1:mem=2tb');
  });

  it('refuses #PBS in setup lines, bad paths, names and multi-line commands', () => {
    expect(refusal(() => pbs.renderScript(spec({ setup: ['  #PBS -l select=64'] }))).field).toBe('setup');
    expect(refusal(() => pbs.renderScript(spec({ workdir: '/home/a b' }))).field).toBe('workdir');
    expect(refusal(() => pbs.renderScript(spec({ stdoutPath: 'relative/out' }))).field).toBe('stdoutPath');
    expect(refusal(() => pbs.renderScript(spec({ name: 'x;id' }))).field).toBe('name');
    expect(refusal(() => pbs.renderScript(spec({ command: 'a\nb' }))).field).toBe('command');
  });
});

describe('pbs: submit', () => {
  it('quotes the script path', () => {
    expect(pbs.submitCommand('/home/a/s.sh')).toBe('qsub /home/a/s.sh');
    expect(pbs.submitCommand("/home/a/it's; id.sh")).toBe("qsub '/home/a/it'\\''s; id.sh'");
  });

  it('reads the job id', () => {
    expect(pbs.parseSubmit(ok('1234.pbs-server\n'))).toBe('1234.pbs-server');
    expect(torque.parseSubmit(ok('569362.dimmy\n'))).toBe('569362.dimmy');
    expect(() => pbs.parseSubmit(ok('hello\n'))).toThrow(/no job id/);
  });

  it("turns a refusal into InvalidRequestError with qsub's words", () => {
    const err = refusal(() => pbs.parseSubmit(ok('', 'qsub: Unknown queue\n', 168)));
    expect(err.message).toBe('PBS refused the job: Unknown queue.');
    expect(err.field).toBe('partition');
    const limit = 'qsub: Job exceeds queue resource limits MSG=cannot satisfy queue max walltime requirement\n';
    expect(refusal(() => pbs.parseSubmit(ok('', limit, 188))).field).toBe('walltime');
  });

  it('is SchedulerUnavailableError when the server does not answer', () => {
    const stderr = read('pbspro-connection-refused.stderr').replace('qstat', 'qsub');
    expect(() => pbs.parseSubmit(ok('', stderr, 1))).toThrow(SchedulerUnavailableError);
    expect(() => pbs.parseSubmit(ok('', '', null))).toThrow(SchedulerUnavailableError);
  });
});

describe('pbs: status', () => {
  it('asks for all ids in one quoted call', () => {
    expect(pbs.statusCommand(['40.pbs', '41.pbs', '40.pbs'])).toBe('qstat -f -F json -x 40.pbs 41.pbs');
    expect(torque.statusCommand(['7.srv', '8[].srv'])).toBe("qstat -f -1 7.srv '8[].srv'");
    expect(refusal(() => pbs.statusCommand(['1; reboot'])).field).toBe('jobId');
    expect(refusal(() => pbs.statusCommand([])).field).toBe('jobIds');
  });

  it('PBS Pro: a finished job (F, Exit_status 0) is ended, completed', () => {
    const st = pbs.parseStatus(['40.pbs'], ok(read('pbspro-finished.json'))).get('40.pbs');
    expect(st).toMatchObject({ phase: 'ended', nativeState: 'F', reason: 'completed', nativeReason: 'Exit_status=0' });
  });

  it('PBS Pro: a running job has its node and the time left', () => {
    const st = pbs.parseStatus(['3472664.pbshpc'], ok(read('pbspro-running.json'))).get('3472664.pbshpc');
    expect(st).toMatchObject({ phase: 'running', nativeState: 'R', node: 'khas024' });
    expect(st?.timeLeftSeconds).toBe(20 * 60 - 77);
  });

  it('PBS Pro: ids missing from the output (qstat: Unknown Job Id) left the queue', () => {
    const result = ok(read('pbspro-running.json'), 'qstat: Unknown Job Id 3472600.pbshpc\n', 153);
    const map = pbs.parseStatus(['3472664.pbshpc', '3472600.pbshpc'], result);
    expect(map.get('3472664.pbshpc')?.phase).toBe('running');
    expect(map.get('3472600.pbshpc')).toMatchObject({ phase: 'ended', reason: 'left the queue' });
    // all unknown: only the JSON header on stdout
    const none = pbs.parseStatus(
      ['5.hn1'],
      ok('{"timestamp":1,"pbs_version":"2021.1.3","pbs_server":"hn1"}', 'qstat: Unknown Job Id 5.hn1\n', 153)
    );
    expect(none.get('5.hn1')).toMatchObject({ phase: 'ended', reason: 'left the queue' });
    const finished = pbs.parseStatus(
      ['1008.c2'],
      ok('', 'qstat: 1008.c2 Job has finished, use -x or -H to obtain historical job information\n', 35)
    );
    expect(finished.get('1008.c2')?.phase).toBe('ended');
  });

  it('matches ids whose server name is written differently', () => {
    const st = pbs
      .parseStatus(['3472664.pbshpc.example.org'], ok(read('pbspro-running.json')))
      .get('3472664.pbshpc.example.org');
    expect(st?.phase).toBe('running');
  });

  it.each([
    ['pbspro-connection-refused', 255],
    ['pbspro-no-route', 255]
  ])('an unreachable server (%s) makes every job unknown, never ended', (name, code) => {
    const map = pbs.parseStatus(['1.a', '2.a'], ok(read(`${name}.stdout`), read(`${name}.stderr`), code));
    expect([...map.values()].map(s => s.phase)).toEqual(['unknown', 'unknown']);
    expect(map.get('1.a')?.reason).toMatch(/not reachable: .*cannot connect to server/);
  });

  it('other failures are unknown too: killed qstat, not JSON, other errors', () => {
    expect(pbs.parseStatus(['1.a'], ok('', '', null)).get('1.a')?.phase).toBe('unknown');
    expect(pbs.parseStatus(['1.a'], ok('Welcome to the cluster!\n{')).get('1.a')?.phase).toBe('unknown');
    expect(pbs.parseStatus(['1.a'], ok('', 'sh: qstat: not found\n', 127)).get('1.a')?.phase).toBe('unknown');
    expect(pbs.parseStatus(['1.a'], ok('{"Jobs": 3}')).get('1.a')?.phase).toBe('unknown');
  });

  it.each([
    ['Q', undefined, 'pending', 'waiting to be scheduled'],
    [
      'Q',
      'Not Running: Insufficient amount of resource: ncpus (R: 8 A: 4 T: 64)',
      'pending',
      'Insufficient amount of resource: ncpus (R: 8 A: 4 T: 64)'
    ],
    ['H', undefined, 'pending', 'held'],
    ['W', undefined, 'pending', 'waiting for its start time'],
    ['T', undefined, 'pending', 'being moved to its execution queue'],
    ['E', undefined, 'running', 'exiting'],
    ['S', undefined, 'running', 'suspended by the scheduler'],
    ['Z', undefined, 'unknown', 'unrecognised PBS state Z']
  ])('state %s (comment %j) is %s: %s', (state, comment, phase, reason) => {
    const doc = { Jobs: { '7.s': { job_state: state, ...(comment ? { comment } : {}) } } };
    const st = pbs.parseStatus(['7.s'], ok(JSON.stringify(doc))).get('7.s');
    expect(st).toMatchObject({ phase, reason });
  });

  it('a pending job that can never run is blocked', () => {
    const doc = {
      Jobs: { '7.s': { job_state: 'Q', comment: 'Can Never Run: Insufficient amount of queue resource: ncpus' } }
    };
    expect(pbs.parseStatus(['7.s'], ok(JSON.stringify(doc))).get('7.s')).toMatchObject({
      phase: 'pending',
      blocked: true
    });
  });

  it.each([
    ['pbspro', 0, 'completed'],
    ['pbspro', 1, 'failed (the job exited with code 1)'],
    ['pbspro', 271, 'cancelled (killed by SIGTERM, e.g. qdel)'],
    ['pbspro', 265, 'killed (SIGKILL: qdel, or a limit enforced by the scheduler)'],
    ['pbspro', 267, 'killed by signal 11'],
    ['pbspro', -29, 'walltime reached'],
    ['pbspro', -27, 'memory limit exceeded'],
    ['pbspro', -3, 'could not be started (execution retry)'],
    ['pbspro', -99, 'failed to run (PBS execution error -99)'],
    ['torque', -11, 'walltime reached'],
    ['torque', -10, 'memory limit exceeded'],
    ['torque', 271, 'cancelled (killed by SIGTERM, e.g. qdel)']
  ] as const)('%s Exit_status %d: %s', (flavour, status, reason) => {
    expect(exitReason(flavour, status)).toBe(reason);
    const doc = { Jobs: { '7.s': { job_state: 'F', Exit_status: status } } };
    if (flavour === 'pbspro') {
      expect(pbs.parseStatus(['7.s'], ok(JSON.stringify(doc))).get('7.s')).toMatchObject({ phase: 'ended', reason });
    }
  });

  it('a finished job without an exit status ended before it ran', () => {
    const doc = { Jobs: { '7.s': { job_state: 'F' } } };
    expect(pbs.parseStatus(['7.s'], ok(JSON.stringify(doc))).get('7.s')?.reason).toMatch(/before it ran/);
  });
});

describe('torque: status', () => {
  it('reads queued, running (Walltime.Remaining) and held jobs', () => {
    const ids = [
      '14973792.tbi-pbs-ng.inet.dkfz-heidelberg.de',
      '14973766.tbi-pbs-ng.inet.dkfz-heidelberg.de',
      '14973745.tbi-pbs-ng.inet.dkfz-heidelberg.de',
      '14970000.tbi-pbs-ng.inet.dkfz-heidelberg.de'
    ];
    const map = torque.parseStatus(ids, ok(read('torque-mixed.txt'), `qstat: Unknown Job Id Error ${ids[3]}\n`, 153));
    expect(map.get(ids[0])).toMatchObject({ phase: 'pending', nativeState: 'Q', reason: 'waiting to be scheduled' });
    expect(map.get(ids[1])).toMatchObject({ phase: 'running', node: 'tbi-dsx55', timeLeftSeconds: 172137 });
    expect(map.get(ids[2])).toMatchObject({ phase: 'pending', nativeState: 'H', reason: 'held' });
    expect(map.get(ids[3])).toMatchObject({ phase: 'ended', reason: 'left the queue' });
  });

  it('reads wrapped values and the first node of several', () => {
    const map = torque.parseStatus(
      ['114618.mike.bw.nitech.ac.jp', '114621.mike.bw.nitech.ac.jp'],
      ok(read('torque-running.txt'))
    );
    expect(map.get('114618.mike.bw.nitech.ac.jp')).toMatchObject({
      phase: 'running',
      node: 'cnode025.bw.nitech.ac.jp',
      timeLeftSeconds: 2516937
    });
    // no walltime limit: no time left
    expect(map.get('114621.mike.bw.nitech.ac.jp')).toMatchObject({
      phase: 'running',
      node: 'cnode002.bw.nitech.ac.jp'
    });
    expect(map.get('114621.mike.bw.nitech.ac.jp')?.timeLeftSeconds).toBeUndefined();
    const jobs = parseQstatText(read('torque-running.txt'));
    expect(jobs.get('114618.mike.bw.nitech.ac.jp')?.['Error_Path']).toBe(
      'mike.bw.nitech.ac.jp:/home/kasugai/LLTO/test2000/num03/bulk.e114618'
    );
    expect(jobs.get('114621.mike.bw.nitech.ac.jp')?.['exec_host']).toBe(
      'cnode002.bw.nitech.ac.jp/1+cnode002.bw.nitech.ac.jp/0+cnode003.bw.nitech.ac.jp/1+cnode003.bw.nitech.ac.jp/0'
    );
  });

  it('a completed job (C, lowercase exit_status, space-indented continuations) ended, completed', () => {
    const text = read('torque-completed.txt');
    const st = torque.parseStatus(['9.torque01.bcgsc.ca'], ok(text)).get('9.torque01.bcgsc.ca');
    expect(st).toMatchObject({ phase: 'ended', nativeState: 'C', reason: 'completed' });
    expect(parseQstatText(text).get('9.torque01.bcgsc.ca')?.['Error_Path']).toBe(
      'torque01.bcgsc.ca:/projects/trans_scratch/validations/workspace/creisle/temp/subtest.sh.e9'
    );
    const killed = text.replace('exit_status = 0', 'exit_status = -11');
    expect(torque.parseStatus(['9.torque01.bcgsc.ca'], ok(killed)).get('9.torque01.bcgsc.ca')?.reason).toBe(
      'walltime reached'
    );
  });

  it('all ids unknown to the server: every job left the queue', () => {
    const map = torque.parseStatus(
      ['1.s', '2.s'],
      ok('', 'qstat: Unknown Job Id 1.s\nqstat: Unknown Job Id 2.s\n', 153)
    );
    expect([...map.values()].map(s => s.reason)).toEqual(['left the queue', 'left the queue']);
  });

  it('trqauthd / server trouble is unknown', () => {
    const stderr =
      'socket_connect_unix failed: 15137\nqstat: cannot connect to server (null) (errno=15137) could not connect to trqauthd\n';
    expect(torque.parseStatus(['1.s'], ok('', stderr, 1)).get('1.s')?.phase).toBe('unknown');
  });
});

describe('pbs: helpers and cancel', () => {
  it('parses durations and exec hosts', () => {
    expect(parsePbsDuration('720:00:00')).toBe(2592000);
    expect(parsePbsDuration('05:00')).toBe(300);
    expect(parsePbsDuration(1200)).toBe(1200);
    expect(parsePbsDuration('later')).toBeUndefined();
    expect(firstExecHost('x3006c0s31b1n0/0+x3006c0s37b0n0/0')).toBe('x3006c0s31b1n0');
    expect(firstExecHost('node002/0*4')).toBe('node002');
    expect(firstExecHost(undefined)).toBeUndefined();
  });

  it('cancels with qdel and refuses odd ids', () => {
    expect(runWithFake(pbs.cancelCommand('40.pbs'), 'qdel', '', 0)).toMatchObject({
      code: 0,
      stdout: 'args: 40.pbs\n'
    });
    // quoted: `8[].srv` would be a glob pattern to the shell
    expect(runWithFake(torque.cancelCommand('8[].srv'), 'qdel', '', 0).stdout).toContain('args: 8[].srv');
    // a job that ended a moment before qdel is not a failure to cancel it
    for (const gone of [
      'qdel: Job has finished 40.pbs',
      'qdel: Unknown Job Id 40.pbs',
      'qdel: Invalid state for job - COMPLETE 40.pbs'
    ]) {
      expect(runWithFake(pbs.cancelCommand('40.pbs'), 'qdel', gone, 35).code).toBe(0);
    }
    const denied = runWithFake(pbs.cancelCommand('40.pbs'), 'qdel', 'qdel: Unauthorized Request  40.pbs', 159);
    expect(denied.code).toBe(159);
    expect(denied.stderr).toContain('Unauthorized Request');
    expect(refusal(() => pbs.cancelCommand('40.pbs; rm -rf ~')).field).toBe('jobId');
  });
});
