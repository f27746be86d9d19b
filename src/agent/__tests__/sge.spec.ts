/**
 * The Grid Engine adapter against real `qstat -xml` outputs published in public
 * repositories (fixtures/sge/README.md names each source).
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';

import type { IResources } from '../../common/api';
import { parseQstatXml, queueHost, SgeAdapter } from '../schedulers/sge';
import { InvalidRequestError, SchedulerUnavailableError, type ICommandResult } from '../schedulers/types';
import { runWithFake } from './helpers/fake-command';
import { refusal, spec } from './helpers/adapters';

const FIXTURES = path.join(__dirname, 'fixtures', 'sge');
const read = (name: string) => readFileSync(path.join(FIXTURES, name), 'utf8');
const ok = (stdout: string, stderr = '', code: number | null = 0): ICommandResult => ({ code, stdout, stderr });

const sge = new SgeAdapter();

/** One job_list entry in the shape qstat prints (used for state letters no fixture shows). */
const oneJob = (id: string, state: string, queue = 'all.q@node7', list = 'running') =>
  `<?xml version='1.0'?>\n<job_info>\n  <queue_info>\n    <job_list state="${list}">\n      <JB_job_number>${id}</JB_job_number>\n      <JB_name>jrc-x</JB_name>\n      <state>${state}</state>\n      <queue_name>${queue}</queue_name>\n      <slots>1</slots>\n    </job_list>\n  </queue_info>\n  <job_info>\n  </job_info>\n</job_info>\n`;

describe('sge: validate', () => {
  it('accepts a full, valid request', () => {
    expect(() =>
      sge.validate({
        partition: 'all.q',
        account: 'proj_42',
        walltime: '12:00:00',
        cpus: 8,
        memory: '32G',
        gpus: 1,
        extraDirectives: ['-P myproject', '-l scratch=10G', '-binding linear:4', '-V', '-R y']
      })
    ).not.toThrow();
    expect(() => sge.validate({})).not.toThrow();
  });

  it.each<[keyof IResources, unknown]>([
    ['partition', 'all.q; id'],
    ['partition', 'all.q@$(id)'],
    ['account', 'a b'],
    ['walltime', '25:61:00'],
    ['walltime', 'x'],
    ['cpus', 0],
    ['cpus', 1.5],
    ['memory', '8GB'],
    ['memory', '0'],
    ['gpus', 65]
  ])('refuses %s = %j, naming the field', (field, value) => {
    expect(refusal(() => sge.validate({ [field]: value } as IResources)).field).toBe(field);
  });

  it.each([
    '-P a;b',
    '-P $(id)',
    '-P `id`',
    "-P 'x'",
    '-l a=1 -N evil',
    '-l a=1\n#$ -N evil',
    '--qos=x',
    '-N other',
    '-o /tmp/x',
    '-e /tmp/x',
    '-j y',
    '-wd /tmp',
    '-cwd',
    '-S /bin/csh',
    '-t 1-10',
    '-sync y',
    '-terse',
    '-now y',
    '-b y',
    '-hold_jid 5',
    '-w v',
    '-q other.q',
    '-A other',
    '-pe mpi 8',
    '-l h_rt=10:00:00',
    '-l scratch=1G,h_vmem=4G',
    ''
  ])('refuses the extra directive %j', d => {
    expect(refusal(() => sge.validate({ extraDirectives: [d] })).field).toBe('extraDirectives');
  });

  it('refuses a gpu request in extraDirectives when gpus is set, and bad options', () => {
    expect(refusal(() => sge.validate({ gpus: 1, extraDirectives: ['-l gpu=2'] })).field).toBe('extraDirectives');
    expect(() => sge.validate({ extraDirectives: ['-l gpu=2'] })).toThrow(InvalidRequestError); // the field exists
    expect(refusal(() => new SgeAdapter({ parallelEnvironment: 'smp; id' })).field).toBe('parallelEnvironment');
  });
});

describe('sge: renderScript', () => {
  it('writes #$ directives (name, paths, -wd, pe, h_rt, h_vmem per slot), setup and exec', () => {
    const lines = sge
      .renderScript(
        spec({
          resources: {
            partition: 'all.q',
            account: 'p1',
            walltime: '1-00:30:00',
            cpus: 4,
            memory: '8G',
            gpus: 2,
            extraDirectives: ['-P lab']
          },
          setup: ['module load python/3.11']
        })
      )
      .split('\n');
    expect(lines[0]).toBe('#!/bin/sh');
    expect(lines.filter(l => l.startsWith('#$ '))).toEqual([
      '#$ -N jrc-ab12cd',
      '#$ -o /home/alice/.jupyter-remote-cluster/sessions/ab12cd/job.out',
      '#$ -e /home/alice/.jupyter-remote-cluster/sessions/ab12cd/job.err',
      '#$ -j n',
      '#$ -wd /home/alice/.jupyter-remote-cluster/sessions/ab12cd',
      '#$ -S /bin/sh',
      '#$ -q all.q',
      '#$ -A p1',
      '#$ -l h_rt=24:30:00',
      '#$ -pe smp 4',
      '#$ -l h_vmem=2048M',
      '#$ -l gpu=2',
      '#$ -P lab'
    ]);
    expect(lines).toContain('{ module load python/3.11'); // stops the job if it fails (setupBlock)
    expect(lines[lines.length - 2]).toBe(`exec ${spec().command}`);
  });

  it('uses the configured parallel environment and gpu complex; one CPU needs no pe', () => {
    const custom = new SgeAdapter({ parallelEnvironment: 'threads', gpuResource: 'cuda' });
    const directives = custom
      .renderScript(spec({ resources: { cpus: 3, memory: '1000M', gpus: 1 } }))
      .split('\n')
      .filter(l => l.startsWith('#$ -pe') || l.startsWith('#$ -l'));
    expect(directives).toEqual(['#$ -pe threads 3', '#$ -l h_vmem=334M', '#$ -l cuda=1']);
    expect(sge.renderScript(spec({ resources: { cpus: 1 } }))).not.toContain('-pe');
  });

  it('refuses #$ in setup lines (qsub reads them anywhere) and bad paths', () => {
    expect(refusal(() => sge.renderScript(spec({ setup: ['echo hi', '#$ -l h_rt=999:00:00'] }))).field).toBe('setup');
    expect(refusal(() => sge.renderScript(spec({ workdir: '/tmp/$(id)' }))).field).toBe('workdir');
    expect(refusal(() => sge.renderScript(spec({ command: '' }))).field).toBe('command');
  });
});

describe('sge: submit', () => {
  it('submits with -terse and reads the id', () => {
    expect(sge.submitCommand('/home/a/job one.sh')).toBe("qsub -terse '/home/a/job one.sh'");
    expect(sge.parseSubmit(ok('3064076\n'))).toBe('3064076');
    expect(sge.parseSubmit(ok('12345.1-10:1\n'))).toBe('12345');
    expect(() => sge.parseSubmit(ok('Your job 1 ("x") has been submitted\n'))).toThrow(/no job id/);
  });

  it("turns a refusal into InvalidRequestError with Grid Engine's words", () => {
    const err = refusal(() => sge.parseSubmit(ok('', read('qsub-unknown-queue.stderr'), 1)));
    expect(err.message).toBe(
      'Grid Engine refused the job: Job was rejected because job requests unknown queue "all.q". Exiting.'
    );
    expect(err.field).toBe('partition');
  });

  it('is SchedulerUnavailableError when qmaster does not answer', () => {
    expect(() => sge.parseSubmit(ok('', read('qstat-qmaster-down.stderr'), 1))).toThrow(SchedulerUnavailableError);
    expect(() => sge.parseSubmit(ok('', '', null))).toThrow(SchedulerUnavailableError);
  });
});

describe('sge: status', () => {
  it("lists the user's jobs in one call", () => {
    expect(sge.statusCommand(['88', '44'])).toBe('qstat -xml -u "$(id -un)"');
    expect(refusal(() => sge.statusCommand(['88.1'])).field).toBe('jobId');
    expect(refusal(() => sge.statusCommand([])).field).toBe('jobIds');
  });

  it('reads running (node from the queue instance), queued and held jobs; missing ids left the queue', () => {
    const map = sge.parseStatus(['88', '1045', '44', '999'], ok(read('qstat-ood-core.xml')));
    // -f output: no queue_name, the job sits in its queue instance general.q@worker
    expect(map.get('88')).toMatchObject({ phase: 'running', nativeState: 'r', node: 'worker' });
    expect(map.get('1045')).toMatchObject({ phase: 'pending', nativeState: 'qw', reason: 'waiting to be scheduled' });
    expect(map.get('44')).toMatchObject({ phase: 'pending', nativeState: 'hqw', reason: 'held (qrls to release it)' });
    expect(map.get('999')).toMatchObject({ phase: 'ended', nativeState: '', reason: 'left the queue' });
  });

  it('Eqw is pending and blocked, with the way to see why', () => {
    const map = sge.parseStatus(['3064076', '3050948'], ok(read('qstat-running-eqw.xml')));
    expect(map.get('3064076')).toMatchObject({ phase: 'running', node: 'cluster' });
    expect(map.get('3050948')).toMatchObject({ phase: 'pending', nativeState: 'Eqw', blocked: true });
    expect(map.get('3050948')?.reason).toContain('qstat -j 3050948');
  });

  it('takes the node from queue_name', () => {
    const st = sge.parseStatus(['344911'], ok(read('qstat-running-tacc.xml'))).get('344911');
    expect(st).toMatchObject({ phase: 'running', node: 'c327-104.ls4.tacc.utexas.edu' });
    expect(queueHost('all.q@node1')).toBe('node1');
    expect(queueHost('')).toBeUndefined();
  });

  it.each([
    ['t', 'running', 'starting (being transferred to the node)'],
    ['Rr', 'running', 'restarted'],
    ['s', 'running', 'suspended by the scheduler'],
    ['rS', 'running', 'suspended by the scheduler'],
    ['Rq', 'pending', 'rescheduled, waiting to be scheduled again'],
    ['dr', 'ended', 'cancelled (being deleted)'],
    ['dt', 'ended', 'cancelled (being deleted)'],
    ['z', 'ended', 'ended'],
    ['x', 'unknown', 'unrecognised Grid Engine state x']
  ])('state %s is %s: %s', (state, phase, reason) => {
    expect(sge.parseStatus(['5'], ok(oneJob('5', state))).get('5')).toMatchObject({
      phase,
      reason,
      nativeState: state
    });
  });

  it('prefers a running entry of a job listed several times (array / parallel tasks)', () => {
    const xml = read('qstat-ood-core.xml').replace(
      '<JB_job_number>1045</JB_job_number>',
      '<JB_job_number>88</JB_job_number>'
    );
    expect(sge.parseStatus(['88'], ok(xml)).get('88')?.phase).toBe('running');
  });

  it('an unreachable qmaster makes every job unknown, never ended', () => {
    const map = sge.parseStatus(['1', '2'], ok('', read('qstat-qmaster-down.stderr'), 1));
    expect([...map.values()].map(s => s.phase)).toEqual(['unknown', 'unknown']);
    expect(map.get('1')?.reason).toMatch(/qmaster not reachable/);
  });

  it('other failures and output that is not qstat XML are unknown, not "no jobs"', () => {
    expect(sge.parseStatus(['1'], ok('', '', null)).get('1')?.phase).toBe('unknown');
    expect(sge.parseStatus(['1'], ok('', 'qstat: command not found', 127)).get('1')?.phase).toBe('unknown');
    expect(sge.parseStatus(['1'], ok('')).get('1')?.phase).toBe('unknown');
    expect(sge.parseStatus(['1'], ok('Welcome!\n<job_info>')).get('1')?.phase).toBe('unknown');
    // a job name that mentions "timeout" is not a communication error
    const named = oneJob('5', 'r').replace('jrc-x', 'timeout-test');
    expect(sge.parseStatus(['5'], ok(named)).get('5')?.phase).toBe('running');
  });

  it('parses the XML with entities and attributes', () => {
    const jobs = parseQstatXml(oneJob('7', 'qw', '', 'pending').replace('jrc-x', 'a&amp;b &lt;c&gt;'));
    expect(jobs).toEqual([
      {
        listState: 'pending',
        fields: { JB_job_number: '7', JB_name: 'a&b <c>', state: 'qw', queue_name: '', slots: '1' }
      }
    ]);
    const ood = parseQstatXml(read('qstat-ood-core.xml'));
    expect(ood?.map(j => j.fields['JB_job_number'])).toEqual(['88', '1045', '1046', '44']);
    expect(ood?.map(j => j.fields['queue_name'])).toEqual(['general.q@worker', undefined, undefined, undefined]);
  });

  it('cancels with qdel', () => {
    expect(
      runWithFake(sge.cancelCommand('3064076'), 'qdel', 'alice has registered the job 3064076 for deletion', 0)
    ).toMatchObject({ code: 0 });
    expect(runWithFake(sge.cancelCommand('3064076'), 'qdel', '', 0).stdout).toContain('args: 3064076');
    expect(runWithFake(sge.cancelCommand('3064076'), 'qdel', 'denied: job "3064076" does not exist', 1).code).toBe(0);
    const down = runWithFake(
      sge.cancelCommand('3064076'),
      'qdel',
      'error: commlib error: got select error (Connection refused)',
      1
    );
    expect(down.code).toBe(1);
    expect(down.stderr).toContain('commlib error');
    expect(refusal(() => sge.cancelCommand('1 2')).field).toBe('jobId');
  });
});
