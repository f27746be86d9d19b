/**
 * Elastic Dask workers from a notebook (dask-jobqueue; docs/scale-out.md): what the
 * helper needs to preconfigure the batch system's dask-jobqueue cluster class in the
 * kernels' environment, so that `SLURMCluster()` with no argument submits worker jobs
 * that join on the session's TLS; and the tag that finds those jobs again to cancel them.
 */
import type { IClusterProfile } from '../../common/api';
import type { ISchedulerAdapter } from '../schedulers/types';
import { shQuote } from '../schedulers/shell';
import type { ISessionRecord } from './records';

/** The job name of every worker job of session `id`: how they are found and cancelled. */
export function elasticTag(id: string): string {
  return `jrc-w-${id}`;
}

export interface IElasticConfig {
  /** dask-jobqueue's config name ("slurm": SLURMCluster). */
  config: string;
  name: string;
  /** Cancels every worker job of the session (run by the helper when it stops). */
  cancel: string;
  /** What the worker jobs run instead of `python`: the helper's job-worker (TLS, private dirs). */
  launcher: string;
  queue?: string;
  account?: string;
  walltime?: string;
  cores: number;
  memory: string;
}

/** config.json's `jobqueue` for a session, or nothing where the adapter has no elastic workers. */
export function elasticConfig(
  s: ISessionRecord,
  adapter: ISchedulerAdapter,
  profile: IClusterProfile,
  helperPath: string,
  dir: string
): { jobqueue?: IElasticConfig } {
  if (!adapter.elastic) {
    return {};
  }
  const r = s.resources;
  const name = elasticTag(s.id);
  return {
    jobqueue: {
      config: adapter.elastic.config,
      name,
      cancel: adapter.elastic.cancelTagged.replace('{name}', shQuote(name)),
      launcher:
        `${profile.container ? profile.container + ' ' : ''}${shQuote(profile.python)} ${shQuote(helperPath)} ` +
        `job-worker --session-dir ${shQuote(dir)}`,
      ...(r.partition && { queue: r.partition }),
      ...(r.account && { account: r.account }),
      ...(r.walltime && { walltime: r.walltime }),
      cores: r.cpus ?? 1,
      memory: r.memory ?? '1G'
    }
  };
}

/** The shell line that cancels the session's worker jobs (undefined: none can exist). */
export function cancelElasticCommand(s: ISessionRecord, adapter: ISchedulerAdapter): string | undefined {
  return adapter.elastic?.cancelTagged.replace('{name}', shQuote(elasticTag(s.id)));
}
