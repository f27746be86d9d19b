/**
 * What the agent gives the helper for elastic workers, per batch system: the
 * dask-jobqueue config name, the walltime in that system's words, the tag and the
 * command that cancels every job with it; nothing where it is not supported.
 */
import type { IClusterProfile } from '../../common/api';
import { schedulerAdapters } from '../schedulers/registry';
import type { ISessionRecord } from '../sessions/records';
import { cancelElasticCommand, elasticConfig } from '../sessions/scale-out';

const session = {
  id: 'abc123',
  resources: { partition: 'debug', account: 'proj', walltime: '01:30:00', cpus: 4, memory: '8G' }
} as unknown as ISessionRecord;
const profile = {
  name: 'p',
  python: '/opt/py/bin/python3',
  container: 'apptainer exec img.sif',
  setup: ['module load python']
} as unknown as IClusterProfile;

describe('elastic workers: per batch system', () => {
  const adapters = schedulerAdapters();
  const config = (name: keyof typeof adapters) =>
    elasticConfig(session, adapters[name], profile, '/h/helper.pyz', '/h/s/abc123').jobqueue;

  it('slurm, sge, pbs, lsf: the class config, the session resources, the launcher in the container', () => {
    expect(config('slurm')).toEqual({
      config: 'slurm',
      name: 'jrc-w-abc123',
      cancel: 'scancel --name=jrc-w-abc123 --user="$(id -un)"',
      launcher: 'apptainer exec img.sif /opt/py/bin/python3 /h/helper.pyz job-worker --session-dir /h/s/abc123',
      queue: 'debug',
      account: 'proj',
      walltime: '01:30:00',
      cores: 4,
      memory: '8G',
      setup: ['module load python']
    });
    expect(config('sge')).toMatchObject({ config: 'sge', cancel: 'qdel jrc-w-abc123', walltime: '01:30:00' });
    expect(config('pbs')).toMatchObject({ config: 'pbs', walltime: '01:30:00' });
    expect(config('pbs')!.cancel).toBe('qselect -N jrc-w-abc123 -u "$(id -un)" | xargs -r qdel');
    // LSF's -W is [hours:]minutes
    expect(config('lsf')).toMatchObject({ config: 'lsf', cancel: 'bkill -J jrc-w-abc123 0', walltime: '1:30' });
  });

  it('htcondor: the tag as batch_name (HTCondorCluster names jobs per worker), a disk request', () => {
    expect(config('htcondor')).toMatchObject({
      config: 'htcondor',
      cancel: 'condor_rm -constraint \'JobBatchName == "jrc-w-abc123"\'',
      extra: { 'job-extra-directives': { batch_name: 'jrc-w-abc123' }, disk: '1GB' }
    });
  });

  it('the plain host: no batch system, nothing to cancel', () => {
    expect(elasticConfig(session, adapters.ssh, profile, '/h', '/d')).toEqual({});
    expect(cancelElasticCommand(session, adapters.ssh)).toBeUndefined();
    expect(cancelElasticCommand(session, adapters.slurm)).toBe(config('slurm')!.cancel);
  });
});
