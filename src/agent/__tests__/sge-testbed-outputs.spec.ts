/**
 * The Grid Engine adapter against outputs recorded from a REAL Grid Engine (Debian's
 * gridengine 8.1.9 on the testbed, testbed/addons/sge.sh), with job scripts rendered by the
 * adapter itself: fixtures/sge/*-testbed.* (recipe: fixtures/sge/record-testbed.sh).
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';

import { parseQstatXml, SgeAdapter } from '../schedulers/sge';
import { SchedulerUnavailableError, type ICommandResult } from '../schedulers/types';
import { refusal } from './helpers/adapters';

const FIXTURES = path.join(__dirname, 'fixtures', 'sge');
const read = (name: string) => readFileSync(path.join(FIXTURES, name), 'utf8');
const result = (stdout: string, stderr = '', code: number | null = 0): ICommandResult => ({ code, stdout, stderr });

const sge = new SgeAdapter();

// the recording (a fresh cell): 1 = cpus 2 + memory + walltime + gpus 1 (running on node2,
// then qdel), 2 = no resources (running on node1), 3 = gpus 1 (waits for node2's only GPU),
// 4 = submitted with -h (held), 5 = -wd to a missing directory (error state)
const ALL = ['1', '2', '3', '4', '5'];

describe('sge on the testbed: qsub', () => {
  it('reads the job id that qsub -terse printed', () => {
    expect(sge.parseSubmit(result(read('qsub-testbed.stdout')))).toBe('1');
  });

  it.each([
    [
      'qsub-testbed-unknown-queue.stderr',
      'partition',
      'Job was rejected because job requests unknown queue "nosuch.q" Exiting.'
    ],
    [
      'qsub-testbed-unknown-pe.stderr',
      'cpus',
      'job rejected: the requested parallel environment "nosuch" does not exist Exiting.'
    ],
    ['qsub-testbed-unknown-resource.stderr', undefined, 'unknown resource "nosuch" Exiting.']
  ])('%s (exit 1) is a refusal in Grid Engine words, field %s', (file, field, words) => {
    const err = refusal(() => sge.parseSubmit(result('', read(file), 1)));
    expect(err.message).toBe(`Grid Engine refused the job: ${words}`);
    expect(err.field).toBe(field);
  });

  it('a qmaster that is down makes the submission unavailable, not refused', () => {
    expect(() => sge.parseSubmit(result('', read('qsub-testbed-qmaster-down.stderr'), 1))).toThrow(
      SchedulerUnavailableError
    );
  });
});

describe('sge on the testbed: qstat -xml', () => {
  it('finds every job of the recording, running ones with their queue instance', () => {
    const jobs = parseQstatXml(read('qstat-xml-testbed.xml'));
    expect(jobs?.map(j => [j.fields['JB_job_number'], j.listState, j.fields['state'], j.fields['queue_name']])).toEqual(
      [
        ['1', 'running', 'r', 'all.q@node2'],
        ['2', 'running', 'r', 'all.q@node1'],
        ['3', 'pending', 'qw', ''],
        ['5', 'pending', 'Eqw', ''],
        ['4', 'pending', 'hqw', '']
      ]
    );
  });

  it('maps running (with the node), queued, held and error jobs', () => {
    const map = sge.parseStatus(ALL, result(read('qstat-xml-testbed.xml')));
    expect(map.get('1')).toMatchObject({ phase: 'running', nativeState: 'r', node: 'node2' });
    expect(map.get('2')).toMatchObject({ phase: 'running', nativeState: 'r', node: 'node1' });
    expect(map.get('3')).toMatchObject({ phase: 'pending', nativeState: 'qw', reason: 'waiting to be scheduled' });
    expect(map.get('4')).toMatchObject({ phase: 'pending', nativeState: 'hqw', reason: 'held (qrls to release it)' });
    expect(map.get('5')).toMatchObject({ phase: 'pending', nativeState: 'Eqw', blocked: true });
    expect(map.get('5')?.reason).toContain('qstat -j 5');
    expect(map.get('3')?.node).toBeUndefined();
  });

  it('a job just cancelled with qdel (dr) has ended; the others are unchanged', () => {
    expect(read('qdel-testbed.stdout')).toMatch(/^alice has registered the job 1 for deletion\n$/);
    const map = sge.parseStatus(ALL, result(read('qstat-xml-testbed-deleting.xml')));
    expect(map.get('1')).toMatchObject({ phase: 'ended', nativeState: 'dr', reason: 'cancelled (being deleted)' });
    expect(map.get('2')).toMatchObject({ phase: 'running', node: 'node1' });
    expect(map.get('5')).toMatchObject({ phase: 'pending', blocked: true });
  });

  it('no jobs left: every job left the queue', () => {
    expect(parseQstatXml(read('qstat-xml-testbed-empty.xml'))).toEqual([]);
    const map = sge.parseStatus(ALL, result(read('qstat-xml-testbed-empty.xml')));
    expect([...map.values()].map(s => [s.phase, s.reason])).toEqual(ALL.map(() => ['ended', 'left the queue']));
  });

  it('qstat against a qmaster that is down (exit 1): every job unknown, never ended', () => {
    const map = sge.parseStatus(ALL, result('', read('qstat-testbed-qmaster-down.stderr'), 1));
    expect([...map.values()].map(s => s.phase)).toEqual(ALL.map(() => 'unknown'));
    expect(map.get('1')?.reason).toMatch(/^Grid Engine qmaster not reachable: error: commlib error/);
  });
});
