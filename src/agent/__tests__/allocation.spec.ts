/**
 * The allocation's hours: each batch system's command to extend a job's walltime, tried
 * once through the real adapters with a link that answers like the scheduler; the
 * end-of-walltime warning asked of Slurm, and `--signal` kept out of users' directives.
 */
import type { IResources } from '../../common/api';
import type { IClusterLink } from '../cluster/link';
import { HtcondorAdapter } from '../schedulers/htcondor';
import { LsfAdapter } from '../schedulers/lsf';
import { PbsAdapter } from '../schedulers/pbs';
import { SgeAdapter } from '../schedulers/sge';
import { SlurmAdapter } from '../schedulers/slurm';
import { ConflictError, type ICommandResult, type ISchedulerAdapter } from '../schedulers/types';
import { endWarningLead } from '../schedulers/validate';
import { endedIdle, idleReason, idleView, requestExtension } from '../sessions/allocation';
import { idleConfig } from '../sessions/submit-job';
import type { ISessionRecord } from '../sessions/records';
import { refusal, spec } from './helpers/adapters';

const R: IResources = { walltime: '01:00:00', cpus: 2, memory: '4G' };

function session(over: Partial<ISessionRecord> = {}): ISessionRecord {
  return {
    id: 'ab12cd',
    profile: 'hpc',
    cluster: 'HPC',
    resources: R,
    state: 'running',
    jobId: '42',
    createdAt: '',
    updatedAt: '',
    clusterKey: 'k',
    remoteDir: '/home/alice/s',
    owner: 'user',
    ...over
  };
}

/** A login node that answers every command with `answer`, and remembers the commands. */
function link(answer: ICommandResult): IClusterLink & { commands: string[] } {
  const commands: string[] = [];
  return {
    commands,
    exec: async (command: string) => {
      commands.push(command);
      return answer;
    }
  } as unknown as IClusterLink & { commands: string[] };
}

async function extend(adapter: ISchedulerAdapter, answer: ICommandResult, s = session(), minutes = 30) {
  const l = link(answer);
  const result = await requestExtension({ s, profile: { name: 'hpc' } as never, adapter, link: l, minutes });
  return { result, commands: l.commands };
}

const REFUSED = { code: 1, stdout: '', stderr: 'Access/permission denied for job 42\n' };

describe('Extend: one command per batch system, tried once, its answer shown as it is', () => {
  it.each<[string, ISchedulerAdapter, string]>([
    ['Slurm', new SlurmAdapter(), 'scontrol update JobId=42 TimeLimit=+30'],
    ['PBS', new PbsAdapter(), 'qalter -l walltime=01:30:00 42'],
    ['LSF', new LsfAdapter(), 'bmod -W 1:30 42'],
    // qalter -l replaces the whole hard resource list: the job's other limits go with it
    ['Grid Engine', new SgeAdapter(), 'qalter -l h_rt=01:30:00 -l h_vmem=2048M 42']
  ])('%s: the command, and a refusal as the scheduler words it', async (_name, adapter, command) => {
    const { result, commands } = await extend(adapter, REFUSED);
    expect(commands).toEqual([command]);
    expect(result).toEqual({ granted: false, answer: 'Access/permission denied for job 42' });
  });

  it('granted: the new total walltime comes back; an answer without words says what the exit code means', async () => {
    const ok = await extend(new SlurmAdapter(), { code: 0, stdout: '', stderr: '' });
    expect(ok.result).toEqual({ granted: true, answer: 'Slurm accepted it.', walltime: '01:30:00' });
    const no = await extend(new SlurmAdapter(), { code: 1, stdout: '', stderr: '' });
    expect(no.result).toEqual({ granted: false, answer: 'Slurm refused (exit 1).' });
  });

  it('refused before anything is sent: no command, no job, no walltime of its own', async () => {
    for (const [adapter, s, words] of [
      [new HtcondorAdapter(), session(), /HTCondor has no command/],
      [new SlurmAdapter(), session({ state: 'ended' }), /ended: there is no job/],
      [new SlurmAdapter(), session({ resources: { cpus: 1 } }), /no walltime of its own/]
    ] as const) {
      const l = link(REFUSED);
      await expect(
        requestExtension({ s, profile: { name: 'hpc' } as never, adapter, link: l, minutes: 30 })
      ).rejects.toThrow(words);
      await expect(
        requestExtension({ s, profile: { name: 'hpc' } as never, adapter, link: l, minutes: 30 })
      ).rejects.toBeInstanceOf(ConflictError);
      expect(l.commands).toEqual([]);
    }
  });
});

describe('the end-of-walltime warning', () => {
  it('Slurm signals the helper (the batch shell it replaced) 5 min before the end, sooner for short jobs', () => {
    const line = (walltime?: string) =>
      new SlurmAdapter()
        .renderScript(spec({ resources: walltime ? { walltime } : {} }))
        .split('\n')
        .filter(l => l.startsWith('#SBATCH --signal'));
    expect(line('2:00:00')).toEqual(['#SBATCH --signal=B:USR1@300']);
    expect(line('4')).toEqual(['#SBATCH --signal=B:USR1@60']);
    expect(line()).toEqual(['#SBATCH --signal=B:USR1@300']);
    expect([endWarningLead('1'), endWarningLead('20:00'), endWarningLead('3-00')]).toEqual([30, 300, 300]);
  });

  it("a profile's own --signal (and its abbreviation) is refused: it would replace the helper's", () => {
    for (const d of ['--signal=B:USR2@60', '--sig=USR1']) {
      expect(refusal(() => new SlurmAdapter().renderScript(spec({ resources: { extraDirectives: [d] } }))).field).toBe(
        'extraDirectives'
      );
    }
  });
});

describe('idle reclaim, as the agent passes it on', () => {
  it('asks the helper for the profile timeout in seconds, nothing for 0', () => {
    expect(idleConfig(60)).toEqual({ idle: { timeoutSeconds: 3600 } });
    expect(idleConfig(0)).toEqual({});
  });

  it("shows the helper's idle clock in ms and minutes, and nothing when it has none", () => {
    const helper = { idle: { timeoutSeconds: 3600, lastUse: 1000, lastUseWhy: 'a kernel ran code', reclaimAt: 4600 } };
    expect(idleView(helper as never)).toEqual({
      timeoutMinutes: 60,
      lastUseAt: 1_000_000,
      lastUseWhy: 'a kernel ran code',
      reclaimAt: 4_600_000
    });
    expect(idleView({} as never)).toBeUndefined();
    expect(idleView(undefined)).toBeUndefined();
  });

  it('says why an idle session ended and what it released', () => {
    const idle = endedIdle({ idleEnded: { idleSeconds: 3610, coreHoursReleased: 12.5, at: 1 } } as never)!;
    expect(idle).toEqual({ idleMinutes: 60, coreHoursReleased: 12.5 });
    expect(idleReason(idle)).toBe('idle for 60 min, released 12.5 core-hours');
    // walltime or CPUs unknown: nothing claimed
    const unknown = endedIdle({ idleEnded: { idleSeconds: 120, coreHoursReleased: null, at: 1 } } as never)!;
    expect(idleReason(unknown)).toBe('idle for 2 min');
    expect(endedIdle({} as never)).toBeUndefined();
  });
});
