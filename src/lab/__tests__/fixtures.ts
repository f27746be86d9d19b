/** A session as the agent shows it, for the page's tests (not a spec itself). */
import type { ISession } from '../../common/api';

/** Session `id` of profile "hpc" on "HPC", running job 42, created at `createdAt`; `over` wins. */
export function testSession(id: string, over: Partial<ISession> = {}, createdAt = Date.parse('2026-12-06T10:00:00Z')) {
  const at = new Date(createdAt).toISOString();
  const s: ISession = {
    id,
    profile: 'hpc',
    cluster: 'HPC',
    resources: {},
    state: 'running',
    jobId: '42',
    createdAt: at,
    updatedAt: at,
    ...over
  };
  return s;
}
