/** The kernelspecs the agent keeps in Jupyter's kernels directory, on a real temp directory. */
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import type { IClusterProfile, ISession } from '../../common/api';
import { KernelspecWriter } from '../kernelspecs';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'jrc-kernels-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const profile = { name: 'HPC', title: 'The HPC', python: 'python3' } as IClusterProfile;
const session = {
  id: 'ab12cd',
  state: 'running',
  cluster: 'hpc',
  jobId: '42',
  resources: { partition: 'debug' }
} as unknown as ISession;
const icon = readFileSync(path.join(__dirname, '..', '..', '..', 'style', 'icons', 'remote-cluster.svg'), 'utf8');

describe('KernelspecWriter', () => {
  it("writes one kernelspec per profile and running session, each with the product's icon", async () => {
    await new KernelspecWriter(dir).sync([profile], [session]);
    expect(readdirSync(dir).sort()).toEqual(['remote-cluster-hpc', 'remote-cluster-session-ab12cd']);
    for (const name of readdirSync(dir)) {
      expect(readdirSync(path.join(dir, name)).sort()).toEqual(['kernel.json', 'logo-svg.svg']);
      expect(readFileSync(path.join(dir, name, 'logo-svg.svg'), 'utf8')).toBe(icon);
    }
    const spec = JSON.parse(readFileSync(path.join(dir, 'remote-cluster-session-ab12cd', 'kernel.json'), 'utf8'));
    expect(spec.display_name).toBe('Python 3 · debug@hpc · job 42');
    expect(spec.metadata.jupyterlab_remote_cluster).toEqual({ session: 'ab12cd' });
  });

  it("writes one kernelspec per other kernel of a running job's environment, with its language and interrupt mode", async () => {
    const writer = new KernelspecWriter(dir);
    const kernelspecs = [
      { name: 'IR', displayName: 'R', language: 'R', interruptMode: 'signal' },
      { name: 'bash', displayName: 'Bash', language: 'bash', interruptMode: 'message' }
    ];
    await writer.sync([], [{ ...session, kernelspecs } as ISession]);
    expect(readdirSync(dir).sort()).toEqual([
      'remote-cluster-session-ab12cd',
      'remote-cluster-session-ab12cd--bash',
      'remote-cluster-session-ab12cd--ir'
    ]);
    const bash = JSON.parse(readFileSync(path.join(dir, 'remote-cluster-session-ab12cd--bash', 'kernel.json'), 'utf8'));
    expect(bash).toMatchObject({
      display_name: 'Bash · debug@hpc · job 42',
      language: 'bash',
      interrupt_mode: 'message'
    });
    expect(bash.metadata.kernel_provisioner.config).toEqual({ session: 'ab12cd', kernelspec: 'bash' });
    const r = JSON.parse(readFileSync(path.join(dir, 'remote-cluster-session-ab12cd--ir', 'kernel.json'), 'utf8'));
    expect(r.metadata.jupyterlab_remote_cluster).toEqual({ session: 'ab12cd', kernelspec: 'IR' });
    expect(r.interrupt_mode).toBe('signal');
    // the session ended: its kernels of every language go with it
    await writer.sync([], [{ ...session, state: 'ended', kernelspecs } as ISession]);
    expect(readdirSync(dir)).toEqual([]);
  });

  it("removes only its own kernelspecs when they go (a user's look-alike stays)", async () => {
    const writer = new KernelspecWriter(dir);
    await writer.sync([profile], [session]);
    mkdirSync(path.join(dir, 'remote-cluster-mine'));
    writeFileSync(path.join(dir, 'remote-cluster-mine', 'kernel.json'), '{"display_name": "mine"}');
    await writer.sync([], []);
    expect(readdirSync(dir)).toEqual(['remote-cluster-mine']);
  });
});
