/**
 * Dask beyond one node (docs/scale-out.md), what the agent does for it:
 *  - several nodes in the allocation: how the helper lists them and starts a worker on
 *    each (workersConfig);
 *  - elastic workers from a notebook (dask-jobqueue): what the helper needs to
 *    preconfigure the batch system's dask-jobqueue cluster class in the kernels'
 *    environment, so that `SLURMCluster()` with no argument submits worker jobs that join
 *    on the session's TLS (elasticConfig), and the tag that finds those jobs again to
 *    cancel them;
 *  - "Add workers" without code: worker jobs joining the session's own scheduler
 *    (submitWorkerJobs).
 */
import { randomBytes } from 'node:crypto';

import type { IClusterProfile, IResources } from '../../common/api';
import type { IClusterLink } from '../cluster/link';
import { shQuote } from '../schedulers/shell';
import { ConflictError, type ISchedulerAdapter } from '../schedulers/types';
import { parseWalltime } from '../schedulers/validate';
import { MAX_SMALL_FILE_BYTES } from './helper-client';
import { onLogin, type IHelperState, type ISessionRecord } from './records';

/**
 * Several nodes: one Dask worker per node with the node's CPUs, started by the helper
 * through the batch system's launcher; nothing for one node.
 */
export function workersConfig(
  r: IResources,
  adapter: ISchedulerAdapter,
  profile: IClusterProfile,
  helperPath: string,
  dir: string
): { workers?: { hosts: string; launch: string }; daskWorkerThreads?: number } {
  if ((r.nodes ?? 1) <= 1 || !adapter.multiNode || profile.dask === false) {
    return {};
  }
  const command = `${helperCommand(profile, helperPath)} worker --session-dir ${shQuote(dir)} --name {name} --nthreads {threads}`;
  return {
    workers: { hosts: adapter.multiNode.hosts, launch: adapter.multiNode.launch.replace('{command}', command) },
    ...(r.cpus && { daskWorkerThreads: Number(r.cpus) })
  };
}

/** The helper as the profile runs it (inside its container, if any). */
function helperCommand(profile: IClusterProfile, helperPath: string): string {
  return `${profile.container ? profile.container + ' ' : ''}${shQuote(profile.python)} ${shQuote(helperPath)}`;
}

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
  /** The profile's setup lines, run by each worker job before the worker (job-script-prologue). */
  setup: string[];
  /** More of the class's config, by its key. */
  extra?: Record<string, unknown>;
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
      launcher: `${helperCommand(profile, helperPath)} job-worker --session-dir ${shQuote(dir)}`,
      ...(r.partition && { queue: r.partition }),
      ...(r.account && { account: r.account }),
      ...(r.walltime && { walltime: adapter.elastic.walltime?.(r.walltime) ?? r.walltime }),
      cores: r.cpus ?? 1,
      memory: r.memory ?? '1G',
      setup: profile.setup ?? [],
      ...(adapter.elastic.extra && {
        extra: JSON.parse(JSON.stringify(adapter.elastic.extra).replaceAll('{name}', name)) as Record<string, unknown>
      })
    }
  };
}

/** The shell line that cancels the session's worker jobs (undefined: none can exist). */
export function cancelElasticCommand(s: ISessionRecord, adapter: ISchedulerAdapter): string | undefined {
  return adapter.elastic?.cancelTagged.replace('{name}', shQuote(elasticTag(s.id)));
}

/** Worker jobs are not submitted for a session that ends sooner than this. */
const MIN_WORKER_SECONDS = 180;

export interface IAddWorkers {
  s: ISessionRecord;
  profile: IClusterProfile;
  adapter: ISchedulerAdapter;
  link: IClusterLink;
  helper: IHelperState | undefined;
  count: number;
}

/**
 * "Add workers" (the sidebar, no code): `count` batch jobs, each one Dask worker that
 * joins the session's own scheduler over its TLS (`helper.pyz job-worker` with the
 * scheduler file, like a dask-jobqueue worker), with the session's resources for one
 * node, tagged with the session, their walltime capped at the session's end. Checked
 * before anything is submitted; a refusal submits nothing.
 */
export async function submitWorkerJobs(a: IAddWorkers): Promise<{ jobIds: string[]; walltime: string }> {
  const { s, profile, adapter, link, helper, count } = a;
  if (!adapter.elastic) {
    throw new ConflictError(`Adding Dask workers is not supported by this product for ${adapter.title}.`);
  }
  if (helper?.dask?.status !== 'running') {
    throw new ConflictError(
      profile.dask === false
        ? `Session ${s.id} runs no Dask scheduler (the profile has Dask off): there is nothing for workers to join.`
        : `Session ${s.id} has no running Dask scheduler (${helper?.dask?.error ?? helper?.dask?.status ?? 'not started yet'}).`
    );
  }
  const config = JSON.parse(
    (await link.readFile(`${s.remoteDir}/config.json`, MAX_SMALL_FILE_BYTES)).toString('utf8')
  ) as { jobqueue?: IElasticConfig };
  if (!config.jobqueue?.launcher) {
    throw new ConflictError(
      `Session ${s.id} was started without elastic workers (an earlier release): start a new one.`
    );
  }
  const walltime = cappedWalltime(s, profile.resources?.walltime ?? s.resources.walltime);
  const resources = { ...stripNodes(s.resources), walltime };
  adapter.validate(resources);
  const jobIds: string[] = [];
  for (let i = 0; i < count; i++) {
    const name = `${elasticTag(s.id)}-${randomBytes(3).toString('hex')}`;
    const script = adapter.renderScript({
      name: elasticTag(s.id),
      workdir: s.remoteDir,
      stdoutPath: `${s.remoteDir}/jobqueue/${name}.out`,
      stderrPath: `${s.remoteDir}/jobqueue/${name}.err`,
      resources,
      setup: profile.setup ?? [],
      command:
        `${config.jobqueue.launcher} -m distributed.cli.dask_worker --scheduler-file ` +
        `${shQuote(`${s.remoteDir}/dask-scheduler.json`)} --name ${name} --nthreads ${resources.cpus ?? 1} ` +
        '--nworkers 1 --death-timeout 60'
    });
    const path = `${s.remoteDir}/jobqueue/${name}.sh`;
    await link.exec(`mkdir -p -m 700 ${shQuote(`${s.remoteDir}/jobqueue`)}`);
    await link.writeFile(path, script, 0o700);
    const result = await link.exec(onLogin(profile, adapter.submitCommand(path)), { timeoutMs: 60_000 });
    jobIds.push(adapter.parseSubmit(result));
  }
  return { jobIds, walltime };
}

/** The profile's walltime, but no later than the session's end (whole minutes, HH:MM:SS). */
function cappedWalltime(s: ISessionRecord, asked: string | undefined): string {
  const left = s.endsAt === undefined ? Infinity : (Date.parse(s.endsAt) - Date.now()) / 1000;
  if (left < MIN_WORKER_SECONDS) {
    throw new ConflictError(
      `Session ${s.id} ends in ${Math.max(0, Math.floor(left / 60))} min: too soon for new worker jobs to be useful.`
    );
  }
  const seconds = Math.floor(Math.min(asked ? parseWalltime(asked) : Infinity, left) / 60) * 60;
  if (!Number.isFinite(seconds)) {
    return '01:00:00';
  }
  const hh = Math.floor(seconds / 3600);
  const mm = Math.floor((seconds % 3600) / 60);
  return `${String(hh).padStart(2, '0')}:${String(mm).padStart(2, '0')}:00`;
}

function stripNodes(r: IResources): IResources {
  const { nodes: _n, ...one } = r;
  return one;
}
