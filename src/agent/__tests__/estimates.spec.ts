/**
 * "Fastest start": one round trip that asks Slurm (`sbatch --test-only`) when a session
 * would start on each candidate, through the real adapter, with a login node that
 * answers as Slurm does; times by the cluster's clock; a candidate the adapter refuses is
 * said and not asked; batch systems without an estimate say so.
 */
import type { IClusterProfile } from '../../common/api';
import type { IClusterLink } from '../cluster/link';
import { PbsAdapter } from '../schedulers/pbs';
import { SlurmAdapter } from '../schedulers/slurm';
import type { ICommandResult } from '../schedulers/types';
import { StartEstimates, startEstimates } from '../sessions/estimates';

const PROFILE = {
  name: 'hpc',
  ssh: { host: 'login' },
  scheduler: 'slurm',
  python: 'python3',
  resources: { partition: 'debug', walltime: '01:00:00', cpus: 2 },
  candidates: [{ partition: 'debug' }, { partition: 'big', walltime: '04:00:00' }, { partition: 'x', walltime: 'soon' }]
} as IClusterProfile;

function link(answer: (command: string) => ICommandResult): IClusterLink & { commands: string[] } {
  const commands: string[] = [];
  return {
    commands,
    exec: async (command: string) => {
      commands.push(command);
      return answer(command);
    }
  } as unknown as IClusterLink & { commands: string[] };
}

const SLURM_SAYS = [
  '2026-12-06T09:50:00',
  '@@jrc-estimate@@',
  'sbatch: Job 77 to start at 2026-12-06T09:50:01 using 2 processors on nodes node1 in partition debug',
  '@@jrc-estimate@@',
  'sbatch: Job 78 to start at 2026-12-06T11:20:00 using 2 processors on nodes node2 in partition big',
  '@@jrc-estimate@@',
  ''
].join('\n');

describe('start estimates', () => {
  it('one command for every candidate; each answer read by the cluster clock', async () => {
    const l = link(() => ({ code: 0, stdout: SLURM_SAYS, stderr: '' }));
    const estimates = await startEstimates(PROFILE, new SlurmAdapter(), l);
    expect(l.commands).toHaveLength(1);
    expect(l.commands[0]).toMatch(
      /^date \+%Y-%m-%dT%H:%M:%S; echo @@jrc-estimate@@; \{ sbatch --test-only .*--partition=debug .*--wrap=true/
    );
    expect(l.commands[0]).toMatch(/--partition=big --time=04:00:00/);
    expect(l.commands[0]).not.toContain('--partition=x');
    expect(estimates).toEqual([
      { partition: 'debug', startsInSeconds: 1 },
      { partition: 'big', walltime: '04:00:00', startsInSeconds: 5400 },
      { partition: 'x', walltime: 'soon', error: expect.stringMatching(/walltime/) }
    ]);
  });

  it("Slurm's refusal is the candidate's error, in its words", async () => {
    const l = link(() => ({
      code: 0,
      stdout:
        '2026-12-06T09:50:00\n@@jrc-estimate@@\nsbatch: error: invalid partition specified: debug\n@@jrc-estimate@@\n' +
        'sbatch: Job 78 to start at 2026-12-06T09:50:00 using 2 processors on nodes node2 in partition big\n@@jrc-estimate@@\n',
      stderr: ''
    }));
    const [debug, big] = await startEstimates(PROFILE, new SlurmAdapter(), l);
    expect(debug).toEqual({ partition: 'debug', error: 'invalid partition specified: debug' });
    expect(big.startsInSeconds).toBe(0);
  });

  it('a batch system without estimates says so, and nothing is run', async () => {
    const l = link(() => {
      throw new Error('not run');
    });
    const estimates = await startEstimates({ ...PROFILE, scheduler: 'pbs' }, new PbsAdapter(), l);
    expect(estimates.map(e => e.error)).toEqual(Array(3).fill('PBS gives no start estimate.'));
    expect(l.commands).toEqual([]);
  });

  it('one probe round a minute per profile, however often the dialog opens', async () => {
    jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate'] });
    try {
      const l = link(() => ({ code: 0, stdout: SLURM_SAYS, stderr: '' }));
      const cache = new StartEstimates();
      await cache.get(PROFILE, new SlurmAdapter(), async () => l);
      await cache.get(PROFILE, new SlurmAdapter(), async () => l);
      expect(l.commands).toHaveLength(1);
      jest.advanceTimersByTime(61_000);
      await cache.get(PROFILE, new SlurmAdapter(), async () => l);
      expect(l.commands).toHaveLength(2);
    } finally {
      jest.useRealTimers();
    }
  });
});
