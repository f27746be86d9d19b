/**
 * The batch systems' accounting of a finished job (accounting.ts), read from their
 * outputs: Slurm's sacct (the testbed's real refusal without slurmdbd; the rest in sacct's
 * documented format, fixtures/slurm), PBS Pro's and Torque's job history (published
 * outputs, fixtures/pbs/README.md), LSF's bjobs (fixtures/lsf/README.md), Grid Engine's
 * qacct (recorded on the testbed's real Grid Engine, fixtures/sge/README.md), HTCondor's
 * condor_history (composed in its documented layout, fixtures/htcondor/README.md); and the agent
 * asking again when the database has not recorded the end yet.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';

import type { IClusterProfile } from '../../common/api';
import type { IClusterLink } from '../cluster/link';
import { durationSeconds, memoryBytes } from '../schedulers/accounting';
import { HtcondorAdapter } from '../schedulers/htcondor';
import { LsfAdapter } from '../schedulers/lsf';
import { PbsAdapter } from '../schedulers/pbs';
import { SgeAdapter } from '../schedulers/sge';
import { SlurmAdapter } from '../schedulers/slurm';
import type { ICommandResult } from '../schedulers/types';
import { jobAccounting } from '../sessions/ending';
import type { ISessionRecord } from '../sessions/records';
import { readFixture } from './helpers/adapters';

interface IFixture extends ICommandResult {
  command: string;
  jobIds: string[];
}
const slurm = new SlurmAdapter({ version: [22, 5] });
const pbsText = (name: string) => readFileSync(path.join(__dirname, 'fixtures', 'pbs', name), 'utf8');
const ok = (stdout: string): ICommandResult => ({ code: 0, stdout, stderr: '' });

describe('units as batch systems print them', () => {
  it('memory in 1024s, with each system suffix', () => {
    expect(memoryBytes('125440K')).toBe(125440 * 1024);
    expect(memoryBytes('1.20G')).toBe(Math.round(1.2 * 1024 ** 3));
    expect(memoryBytes('5620kb')).toBe(5620 * 1024);
    expect(memoryBytes('5.2 Gbytes')).toBe(Math.round(5.2 * 1024 ** 3));
    expect(memoryBytes('233 Mbytes')).toBe(233 * 1024 ** 2);
    expect(memoryBytes('0')).toBe(0);
    expect(memoryBytes('')).toBeUndefined();
    expect(memoryBytes('lots')).toBeUndefined();
  });

  it('durations: MM:SS.mmm, HH:MM:SS, D-HH:MM:SS, "N second(s)"', () => {
    expect(durationSeconds('01:02.512')).toBeCloseTo(62.512);
    expect(durationSeconds('00:00:20')).toBe(20);
    expect(durationSeconds('1-02:03:04')).toBe(86400 + 2 * 3600 + 3 * 60 + 4);
    expect(durationSeconds('20.4 second(s)')).toBeCloseTo(20.4);
    expect(durationSeconds('185')).toBe(185);
    expect(durationSeconds('soon')).toBeUndefined();
  });
});

describe('Slurm: sacct', () => {
  it('asks for the allocation and its steps, parsable', () => {
    const f = readFixture<IFixture>('slurm', 'sacct-completed');
    expect(slurm.accountingCommand('4242')).toBe(f.command);
    expect(() => slurm.accountingCommand('42; rm -rf ~')).toThrow();
  });

  it('the allocation line gives the CPU time, the largest step the peak memory', () => {
    const f = readFixture<IFixture>('slurm', 'sacct-completed');
    expect(slurm.parseAccounting('4242', f)).toEqual({
      source: 'sacct',
      state: 'COMPLETED',
      exitCode: '0:0',
      elapsedSeconds: 185,
      cpuSeconds: 62.512,
      maxRssBytes: Math.round(1.2 * 1024 ** 3)
    });
  });

  it('none without accounting (the testbed: no slurmdbd), or before the end is recorded', () => {
    expect(slurm.parseAccounting('1', readFixture<IFixture>('slurm', 'sacct-accounting-disabled'))).toBeUndefined();
    expect(slurm.parseAccounting('4243', readFixture<IFixture>('slurm', 'sacct-not-final'))).toBeUndefined();
    expect(slurm.parseAccounting('9999', readFixture<IFixture>('slurm', 'sacct-completed'))).toBeUndefined();
  });
});

describe('PBS: job history', () => {
  it('PBS Pro: qstat -x -f -F json of a finished job (F)', () => {
    const pbs = new PbsAdapter();
    expect(pbs.accountingCommand('40.pbs')).toBe('qstat -f -F json -x 40.pbs');
    expect(pbs.parseAccounting('40.pbs', ok(pbsText('pbspro-finished.json')))).toEqual({
      source: 'qstat',
      state: 'F',
      exitCode: '0',
      elapsedSeconds: 10,
      cpuSeconds: 0,
      maxRssBytes: 5620 * 1024
    });
    // a short id finds the job the server named in full
    expect(pbs.parseAccounting('40', ok(pbsText('pbspro-finished.json')))?.maxRssBytes).toBe(5620 * 1024);
  });

  it('Torque: qstat -f of a completed job (C); a running one has no final figures', () => {
    const torque = new PbsAdapter({ flavour: 'torque' });
    expect(torque.parseAccounting('9.torque01.bcgsc.ca', ok(pbsText('torque-completed.txt')))).toEqual({
      source: 'qstat',
      state: 'C',
      exitCode: '0',
      elapsedSeconds: 60,
      cpuSeconds: 0,
      maxRssBytes: 3624 * 1024
    });
    expect(torque.parseAccounting('114621.mike.bw.nitech.ac.jp', ok(pbsText('torque-running.txt')))).toBeUndefined();
    expect(torque.parseAccounting('1', ok('not qstat'))).toBeUndefined();
  });
});

describe('LSF: bjobs', () => {
  it('a DONE job with its usage; a running one gives none', () => {
    const lsf = new LsfAdapter();
    const f = readFixture<IFixture>('lsf', 'accounting-bjobs-json-done');
    expect(lsf.accountingCommand('22005')).toBe(f.command);
    expect(lsf.parseAccounting('22005', f)).toEqual({
      source: 'bjobs',
      state: 'DONE',
      exitCode: '0',
      elapsedSeconds: 1,
      cpuSeconds: 1,
      maxRssBytes: Math.round(5.2 * 1024 ** 3)
    });
    expect(lsf.parseAccounting('22005', readFixture<IFixture>('lsf', 'bjobs-json-running'))).toBeUndefined();
    expect(lsf.parseAccounting('22005', ok('LSF is down. Please wait ...'))).toBeUndefined();
  });
});

describe('Grid Engine: qacct', () => {
  const sgeText = (name: string) => readFileSync(path.join(__dirname, 'fixtures', 'sge', name), 'utf8');

  it("a finished job's record; its ru_maxrss is KiB on a thousands scale", () => {
    const sge = new SgeAdapter();
    expect(sge.accountingCommand('9')).toBe('qacct -j 9');
    expect(() => sge.accountingCommand('9; rm -rf ~')).toThrow(/digits/);
    const acct = sge.parseAccounting('9', ok(sgeText('qacct-testbed-burn.stdout')));
    expect(acct).toEqual({
      source: 'qacct',
      state: 'finished',
      exitCode: '0',
      elapsedSeconds: 1,
      cpuSeconds: 0.926,
      maxRssBytes: 207758 * 1024
    });
    // the job held a 200 MiB bytearray: the peak is a little above it
    expect(acct!.maxRssBytes! / 2 ** 20).toBeGreaterThan(200);
    expect(acct!.maxRssBytes! / 2 ** 20).toBeLessThan(210);
  });

  it('none before the record is written, and a killed job says so', () => {
    const sge = new SgeAdapter();
    const notFound = { code: 1, stdout: '', stderr: sgeText('qacct-testbed-not-found.stderr') };
    expect(sge.parseAccounting('99999', notFound)).toBeUndefined();
    expect(sge.parseAccounting('9', ok('garbage'))).toBeUndefined();
    const killed = sgeText('qacct-testbed-burn.stdout')
      .replace(/^failed\s+0\s*$/m, 'failed       100 : assumedly after job')
      .replace(/^exit_status\s+0\s*$/m, 'exit_status  137');
    expect(sge.parseAccounting('9', ok(killed))).toMatchObject({
      state: 'failed 100 : assumedly after job',
      exitCode: '137'
    });
  });
});

describe('HTCondor: condor_history', () => {
  it('a completed job: user + system CPU, the peak resident set (KiB); a job still queued gives none', () => {
    const condor = new HtcondorAdapter();
    const f = readFixture<IFixture>('htcondor', 'accounting-history-completed');
    expect(condor.accountingCommand('31.0')).toBe(
      'condor_history -json -limit 1 -attributes ClusterId,ProcId,JobStatus,ExitCode,ExitBySignal,ExitSignal,' +
        "RemoteUserCpu,RemoteSysCpu,RemoteWallClockTime,ResidentSetSize -constraint 'ClusterId == 31 && ProcId == 0'"
    );
    expect(() => condor.accountingCommand('31; rm -rf ~')).toThrow(/cluster\.proc/);
    expect(condor.parseAccounting('31.0', f)).toEqual({
      source: 'condor_history',
      state: 'Completed',
      exitCode: '0',
      elapsedSeconds: 61,
      cpuSeconds: 52.3 + 1.9,
      maxRssBytes: 1153434 * 1024
    });
    expect(condor.parseAccounting('31.1', f)).toBeUndefined(); // not that job
    const running = f.stdout.replace('"JobStatus": 4', '"JobStatus": 2');
    expect(condor.parseAccounting('31.0', ok(running))).toBeUndefined();
    const killed = f.stdout.replace('"ExitBySignal": false', '"ExitBySignal": true, "ExitSignal": 9');
    expect(condor.parseAccounting('31.0', ok(killed))).toMatchObject({ exitCode: 'signal 9' });
    expect(condor.parseAccounting('31.0', { code: 1, stdout: '', stderr: 'Failed to connect' })).toBeUndefined();
  });
});

describe('asking the cluster', () => {
  const profile = { name: 'hpc', ssh: { host: 'login' }, scheduler: 'slurm' } as unknown as IClusterProfile;
  const session = { id: 's1', jobId: '4243' } as ISessionRecord;

  it('asks again once when the database has not recorded the end yet', async () => {
    const answers = [
      readFixture<IFixture>('slurm', 'sacct-not-final'),
      readFixture<IFixture>('slurm', 'sacct-completed')
    ];
    const commands: string[] = [];
    const link = {
      exec: async (command: string) => {
        commands.push(command);
        const a = answers.shift()!;
        return { ...a, stdout: a.stdout.replace(/4242/g, '4243') };
      }
    } as unknown as IClusterLink;
    const got = await jobAccounting(session, profile, slurm, link, 10);
    expect(commands).toHaveLength(2);
    expect(commands[0]).toContain('sacct -n -P -j 4243');
    expect(got).toMatchObject({ source: 'sacct', state: 'COMPLETED', cpuSeconds: 62.512 });
  });

  it('gives up quietly where there is no accounting', async () => {
    const link = {
      exec: async () => readFixture<IFixture>('slurm', 'sacct-accounting-disabled')
    } as unknown as IClusterLink;
    await expect(jobAccounting(session, profile, slurm, link, 10)).resolves.toBeUndefined();
  });
});
