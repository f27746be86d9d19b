/**
 * A forgotten session's directory on the cluster goes with it (logs, config, job script:
 * a home's quota is small), over the cluster's link when it is up, never by a new login.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import type { SessionManager } from '../sessions/manager';
import { CountingLink } from './helpers/counting-link';
import { slurmManager } from './helpers/slurm-manager';

let dir: string;
let link: CountingLink;
let manager: SessionManager;

beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'rc-forget-'));
  await fs.writeFile(path.join(dir, 'helper.py'), '# helper\n');
  link = new CountingLink();
});

afterEach(async () => {
  await manager.shutdown();
  await fs.rm(dir, { recursive: true, force: true });
});

const removals = () => link.commands.filter(c => c.startsWith('rm -rf'));
const settle = () => new Promise(resolve => setTimeout(resolve, 50));

async function endedSession(): Promise<string> {
  const s = await manager.submit('hpc');
  await manager.cancel(s.id);
  return s.id;
}

describe('forgetting a session', () => {
  it('removes its directory on the cluster, that one only', async () => {
    manager = slurmManager(dir, link);
    const id = await endedSession();
    const other = await manager.submit('hpc');
    expect(removals()).toEqual([]);
    expect(manager.remove(id)).toBe(true);
    await settle();
    expect(removals()).toEqual([`rm -rf /home/u/.jupyter-remote-cluster/sessions/${id}`]);
    expect(removals().join()).not.toContain(other.id);
  });

  it('past the retention rule, the same', async () => {
    manager = slurmManager(dir, link, undefined, { retention: { days: 30, sessions: 0 } });
    const id = await endedSession();
    await settle();
    expect(manager.list().map(s => s.id)).not.toContain(id);
    expect(removals()).toEqual([`rm -rf /home/u/.jupyter-remote-cluster/sessions/${id}`]);
  });

  it('with no link up, the directory stays: nothing logs in for it', async () => {
    manager = slurmManager(dir, link);
    const id = await endedSession();
    await manager.shutdown();
    let connects = 0;
    manager = slurmManager(dir, link, undefined, {
      connect: async () => {
        connects++;
        return link;
      }
    });
    await manager.load();
    expect(manager.remove(id)).toBe(true);
    await settle();
    expect(connects).toBe(0);
    expect(removals()).toEqual([]);
  });
});
