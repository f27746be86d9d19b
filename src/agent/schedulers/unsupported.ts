/**
 * Resource fields that only some batch systems have (Slurm's QoS, node features,
 * reservations, memory per CPU). An adapter that cannot honour one refuses it, naming the
 * field, instead of submitting a job that silently lacks what was asked for.
 */
import type { IResources } from '../../common/api';
import { invalid, isSet } from './validate';

export type OptionalField = 'qos' | 'constraint' | 'reservation' | 'memoryPerCpu';

/** Throws for the first field of `hints` that is set; the hint says what to do instead. */
export function refuseUnsupported(resources: IResources, system: string, hints: Partial<Record<OptionalField, string>>): void {
  for (const [field, hint] of Object.entries(hints) as [OptionalField, string][]) {
    if (isSet(resources[field])) {
      throw invalid(field, resources[field], `${system} does not take ${FIELD_WORDS[field]}: ${hint}`);
    }
  }
}

const FIELD_WORDS: Record<OptionalField, string> = {
  qos: 'a QoS',
  constraint: 'a node-feature constraint this way',
  reservation: 'a reservation this way',
  memoryPerCpu: 'memory per CPU'
};
