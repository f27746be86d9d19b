/**
 * A running job keeps the profile it was submitted with: renaming, editing or deleting the
 * profile in the Settings Editor must not stop its polling or make it impossible to cancel
 * (the job would run on, unseen, to its walltime). Also after the agent restarts.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import type { IClusterProfile } from '../../common/api';
import { SessionManager } from '../sessions/manager';
import { CountingLink } from './helpers/counting-link';
import { HPC_PROFILE } from './helpers/profile';
import { slurmManager } from './helpers/slurm-manager';

let dir: string;
let link: CountingLink;
let profiles: IClusterProfile[];
const managers: SessionManager[] = [];

function newManager(): SessionManager {
  const m = slurmManager(dir, link, () => profiles);
  managers.push(m);
  return m;
}

beforeEach(async () => {
  jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate'] });
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'rc-snapshot-'));
  await fs.writeFile(path.join(dir, 'helper.py'), '# helper\n');
  link = new CountingLink();
  profiles = [HPC_PROFILE];
});

afterEach(async () => {
  for (const m of managers.splice(0)) {
    await m.shutdown();
  }
  jest.useRealTimers();
  await fs.rm(dir, { recursive: true, force: true });
});

const edits: [string, () => IClusterProfile[]][] = [
  ['deleted', () => []],
  ['renamed', () => [{ ...HPC_PROFILE, name: 'hpc-renamed' }]],
  // (another batch system: the job is still Slurm's)
  ['changed to another batch system', () => [{ ...HPC_PROFILE, scheduler: 'pbs' }]]
];

describe.each(edits)('a profile %s while its job is queued', (_what, edit) => {
  it('is still polled, shows the job running, and can be cancelled', async () => {
    const manager = newManager();
    const s = await manager.submit('hpc');
    profiles = edit();
    const before = link.queries.length;
    link.jobs.set(s.jobId!, { state: 'RUNNING', reason: 'None' });
    await jest.advanceTimersByTimeAsync(10_000);
    expect(link.queries.length).toBeGreaterThan(before);
    expect(manager.get(s.id)?.state).toBe('starting'); // running, the helper not yet ready
    const ended = await manager.cancel(s.id);
    expect(link.cancels).toEqual([s.jobId]);
    expect(ended.state).toBe('ended');
  });
});

it('keeps the profile of its job across an agent restart', async () => {
  const first = newManager();
  const s = await first.submit('hpc');
  await first.shutdown();
  profiles = [];
  const second = newManager();
  await second.load();
  expect(second.get(s.id)?.profile).toBe('hpc');
  const ended = await second.cancel(s.id);
  expect(link.cancels).toEqual([s.jobId]);
  expect(ended.state).toBe('ended');
  // the snapshot is the agent's own business: not shown to the UI
  expect(Object.keys(second.list()[0])).not.toContain('submittedProfile');
});
