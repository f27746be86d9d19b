/**
 * "Fastest start" (docs/allocation.md): when the batch system expects a session of a
 * profile to start on each of its candidate partitions, asked in one round trip to the
 * login node without submitting anything (Slurm: `sbatch --test-only`). Times are the
 * cluster's: its clock is read in the same command, so the laptop's clock does not matter.
 */
import type { IClusterProfile, IStartEstimate } from '../../common/api';
import type { IClusterLink } from '../cluster/link';
import type { ISchedulerAdapter } from '../schedulers/types';
import { onLogin } from './records';

const SEPARATOR = '@@jrc-estimate@@';
const LOCAL_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$/;

export async function startEstimates(
  profile: IClusterProfile,
  adapter: ISchedulerAdapter,
  link: IClusterLink
): Promise<IStartEstimate[]> {
  const candidates = profile.candidates ?? [];
  if (!adapter.startEstimateCommand || !adapter.parseStartEstimate) {
    return candidates.map(c => ({ ...c, error: `${adapter.title} gives no start estimate.` }));
  }
  // a candidate the adapter refuses (a bad walltime) is said, not asked
  const commands = candidates.map(c => {
    try {
      return adapter.startEstimateCommand!({
        ...profile.resources,
        partition: c.partition,
        ...(c.walltime && { walltime: c.walltime })
      });
    } catch (err) {
      return err as Error;
    }
  });
  const asked = commands.filter((c): c is string => typeof c === 'string');
  // the cluster's clock, then each candidate's answer, each followed by the separator
  const script = [
    `date +%Y-%m-%dT%H:%M:%S; echo ${SEPARATOR}`,
    ...asked.map(c => `{ ${c}\n} 2>&1; echo ${SEPARATOR}`)
  ].join('; ');
  const r = await link.exec(onLogin(profile, script), { timeoutMs: 60_000 });
  const [now, ...outputs] = r.stdout.split(new RegExp(`\\n?${SEPARATOR}\\n?`));
  const clock = now.split('\n')[0].trim();
  let next = 0;
  return candidates.map((c, i) => {
    const command = commands[i];
    if (command instanceof Error) {
      return { ...c, error: command.message };
    }
    const output = outputs[next++];
    if (output === undefined || !LOCAL_TIME.test(clock)) {
      return { ...c, error: `no answer from the login node: ${(r.stderr || r.stdout).trim().slice(0, 200)}` };
    }
    const { start, error } = adapter.parseStartEstimate!(output);
    if (!start) {
      return { ...c, error: error ?? 'no estimate' };
    }
    // both in the cluster's local time: their difference is right whatever its zone
    const seconds = (Date.parse(`${start}Z`) - Date.parse(`${clock}Z`)) / 1000;
    return { ...c, startsInSeconds: Math.max(0, Math.round(seconds)) };
  });
}

/** One probe round per profile (as it is) a minute: the dialog's, however often it opens. */
const CACHE_MS = 60_000;

export class StartEstimates {
  private readonly cache = new Map<string, { at: number; value: Promise<IStartEstimate[]> }>();

  get(
    profile: IClusterProfile,
    adapter: ISchedulerAdapter,
    link: () => Promise<IClusterLink>
  ): Promise<IStartEstimate[]> {
    const key = JSON.stringify(profile);
    const hit = this.cache.get(key);
    if (hit && Date.now() - hit.at < CACHE_MS) {
      return hit.value;
    }
    const value = link().then(l => startEstimates(profile, adapter, l));
    this.cache.set(key, { at: Date.now(), value });
    value.catch(() => this.cache.delete(key)); // a failure is not kept
    return value;
  }
}
