import type { IClusterProfile } from '../../../common/api';

/** The cluster profile the session-manager tests drive: Slurm on `login`, via-login. */
export const HPC_PROFILE: IClusterProfile = {
  name: 'hpc',
  ssh: { host: 'login' },
  scheduler: 'slurm',
  resources: {},
  python: 'python3',
  dask: false,
  connectivity: 'via-login'
};
