/**
 * Slurm-only resources (QoS, node features, reservations, memory per CPU) given to a
 * batch system that has no such field are refused, naming the field and what to do,
 * never silently dropped.
 */
import type { IResources } from '../../common/api';
import { HtcondorAdapter } from '../schedulers/htcondor';
import { LsfAdapter } from '../schedulers/lsf';
import { PbsAdapter } from '../schedulers/pbs';
import { SgeAdapter } from '../schedulers/sge';
import type { ISchedulerAdapter } from '../schedulers/types';
import { refusal } from './helpers/adapters';

const adapters: [string, ISchedulerAdapter][] = [
  ['PBS', new PbsAdapter()],
  ['Grid Engine', new SgeAdapter()],
  ['LSF', new LsfAdapter()],
  ['HTCondor', new HtcondorAdapter()]
];
const fields: [keyof IResources, string][] = [
  ['qos', 'short'],
  ['constraint', 'bigmem'],
  ['reservation', 'r1'],
  ['memoryPerCpu', '2G']
];

describe.each(adapters)('%s: fields of other batch systems', (title, adapter) => {
  it.each(fields)('refuses %s, naming the field and what to do instead', (field, value) => {
    const err = refusal(() => adapter.validate({ [field]: value } as IResources));
    expect(err.field).toBe(field);
    expect(err.message).toMatch(new RegExp(`^Invalid \\w+ "[^"]+": ${title} does not take .+: leave it empty`));
  });
});
