/**
 * The adapters, one per `scheduler` value of a profile (SCHEDULERS in common/api.ts). A
 * new batch system is one adapter file and one line here (CONTRIBUTING.md); nothing else
 * in the agent names a batch system.
 */
import type { SchedulerName } from '../../common/api';
import { HtcondorAdapter } from './htcondor';
import { LsfAdapter } from './lsf';
import { PbsAdapter } from './pbs';
import { SgeAdapter } from './sge';
import { SlurmAdapter } from './slurm';
import { SshHostAdapter } from './ssh-host';
import type { ISchedulerAdapter } from './types';

export function schedulerAdapters(): Record<SchedulerName, ISchedulerAdapter> {
  return {
    slurm: new SlurmAdapter(),
    pbs: new PbsAdapter({ flavour: 'pbspro' }),
    torque: new PbsAdapter({ flavour: 'torque' }),
    sge: new SgeAdapter(),
    lsf: new LsfAdapter(),
    htcondor: new HtcondorAdapter(),
    ssh: new SshHostAdapter()
  };
}
