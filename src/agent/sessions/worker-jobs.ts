/**
 * A session's worker jobs (docs/scale-out.md): those "Add workers" submitted (the agent
 * knows their ids) and those a notebook's dask-jobqueue cluster submitted (the helper
 * reports them: state.json `workerJobs`). Their ids go into the cluster's one batched
 * status query with the sessions' own jobs; what the scheduler says is kept on the
 * session record for the sidebar. Pure bookkeeping: the poller asks, the manager saves.
 */
import type { IWorkerJob } from '../../common/api';
import type { IJobStatus } from '../schedulers/types';

/** Ended jobs are kept (so that a reported id is not asked about again) up to this many. */
const MAX_KEPT = 200;

/**
 * The session's worker jobs with `ids` added as `submitted` where new; undefined when
 * nothing is new (the record stays as it is).
 */
export function withReported(jobs: IWorkerJob[] | undefined, ids: readonly unknown[]): IWorkerJob[] | undefined {
  const known = new Set((jobs ?? []).map(j => j.id));
  const added = ids
    .filter((id): id is string => typeof id === 'string' && /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(id))
    .filter(id => !known.has(id) && (known.add(id), true))
    .map(id => ({ id, state: 'submitted' as const }));
  return added.length ? bounded([...(jobs ?? []), ...added]) : undefined;
}

/** The ids to ask the scheduler about: every job not known to have ended. */
export function idsToAsk(jobs: IWorkerJob[] | undefined): string[] {
  return (jobs ?? []).filter(j => j.state !== 'ended').map(j => j.id);
}

/** Whether the scheduler should be asked now: a job never asked about, or one waiting. */
export function askAbout(jobs: IWorkerJob[] | undefined): 'new' | 'waiting' | undefined {
  const live = jobs ?? [];
  return live.some(j => j.state === 'submitted') ? 'new' : live.some(j => j.state === 'queued') ? 'waiting' : undefined;
}

/**
 * The jobs as the scheduler now says (`unknown`: as they were); undefined when nothing
 * changed.
 */
export function withStatuses(
  jobs: IWorkerJob[] | undefined,
  statuses: ReadonlyMap<string, IJobStatus>
): IWorkerJob[] | undefined {
  let changed = false;
  const next = (jobs ?? []).map((j): IWorkerJob => {
    const st = statuses.get(j.id);
    if (!st || st.phase === 'unknown' || j.state === 'ended') {
      return j;
    }
    const state: IWorkerJob['state'] = st.phase === 'pending' ? 'queued' : st.phase;
    const reason = state === 'running' ? undefined : st.reason;
    if (state === j.state && reason === j.reason) {
      return j;
    }
    changed = true;
    return { id: j.id, state, ...(reason && { reason }) };
  });
  return changed ? bounded(next) : undefined;
}

/** At most MAX_KEPT jobs: the oldest ended ones go first. */
function bounded(jobs: IWorkerJob[]): IWorkerJob[] {
  let drop = jobs.length - MAX_KEPT;
  return drop <= 0 ? jobs : jobs.filter(j => !(j.state === 'ended' && drop-- > 0));
}
