/** The session manager the specs drive: state in `dir`, the real Slurm adapter, one link. */
import * as path from 'node:path';

import type { IClusterProfile } from '../../../common/api';
import { SlurmAdapter } from '../../schedulers/slurm';
import type { IClusterLink } from '../../cluster/link';
import { SessionManager, type ISessionManagerOptions } from '../../sessions/manager';
import { HPC_PROFILE } from './profile';

/** `profiles` is asked on every read (a spec may change what it returns); `dir/helper.py` is the helper. */
export function slurmManager(
  dir: string,
  link: IClusterLink,
  profiles: () => IClusterProfile[] = () => [HPC_PROFILE],
  extra: Partial<ISessionManagerOptions> = {}
): SessionManager {
  return new SessionManager({
    stateDir: dir,
    helperPath: path.join(dir, 'helper.py'),
    baseUrl: '/',
    profiles: async () => profiles(),
    adapters: { slurm: new SlurmAdapter() },
    connect: async () => link,
    log: () => undefined,
    ...extra
  });
}
