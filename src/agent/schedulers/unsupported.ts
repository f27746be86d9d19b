/**
 * Resource fields that only some batch systems have (Slurm's QoS, node features,
 * reservations, memory per CPU). An adapter that cannot honour one refuses it, naming the
 * field, instead of submitting a job that silently lacks what was asked for.
 */
import type { IResources } from '../../common/api';
import { InvalidRequestError } from './types';
import { invalid, isSet, nameField } from './validate';

export type OptionalField = 'qos' | 'constraint' | 'reservation' | 'memoryPerCpu' | 'parallelEnvironment';

/**
 * Throws for the first field of `hints` that is set; the hint says what to do instead
 * (`null`: the system has the field after all).
 */
export function refuseUnsupported(
  resources: IResources,
  system: string,
  hints: Partial<Record<OptionalField, string | null>>
): void {
  for (const [field, hint] of Object.entries(hints) as [OptionalField, string | null][]) {
    if (hint !== null && isSet(resources[field])) {
      throw invalid(field, resources[field], `${system} does not take ${FIELD_WORDS[field]}: ${hint}`);
    }
  }
}

const FIELD_WORDS: Record<OptionalField, string> = {
  qos: 'a QoS',
  constraint: 'a node-feature constraint this way',
  reservation: 'a reservation this way',
  memoryPerCpu: 'memory per CPU',
  parallelEnvironment: 'a parallel environment (a Grid Engine setting)'
};

/**
 * What every batch adapter checks first: the resources are an object, and no field this
 * system lacks is set (see refuseUnsupported).
 */
export function checkedResources(
  resources: IResources,
  system: string,
  hints: Partial<Record<OptionalField, string | null>>
): IResources {
  if (typeof resources !== 'object' || resources === null) {
    throw new InvalidRequestError('Resources must be an object.', 'resources');
  }
  refuseUnsupported(resources, system, { parallelEnvironment: 'leave it empty', ...hints });
  return resources;
}

/** `-q QUEUE` and `<accountFlag> ACCOUNT` for partition and account, when set (PBS, SGE, LSF). */
export function queueAndAccount(r: IResources, accountFlag: string): string[] {
  return [
    ...(isSet(r.partition) ? [`-q ${nameField('partition', r.partition)}`] : []),
    ...(isSet(r.account) ? [`${accountFlag} ${nameField('account', r.account)}`] : [])
  ];
}
