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
    expect(readdirSync(dir).sort()).toEqual([
      'remote-cluster-hpc',
      'remote-cluster-hpc--python3',
      'remote-cluster-session-ab12cd'
    ]);
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

  it('keeps a stable kernelspec per profile and kernel of its job environment, after the job ends, until the profile goes', async () => {
    const writer = new KernelspecWriter(dir);
    const bash = { name: 'Bash', displayName: 'Bash', language: 'bash', interruptMode: 'message' as const };
    const ofHpc = { ...session, profile: 'HPC', kernelspecs: [bash] } as ISession;
    await writer.sync([profile], [ofHpc]);
    const read = (name: string) => JSON.parse(readFileSync(path.join(dir, name, 'kernel.json'), 'utf8'));
    expect(read('remote-cluster-hpc--python3')).toMatchObject({
      display_name: 'Python 3 · The HPC',
      language: 'python',
      metadata: { kernel_provisioner: { config: { profile: 'HPC', prefer_running: true } } }
    });
    const stable = read('remote-cluster-hpc--bash');
    expect(stable).toMatchObject({ display_name: 'Bash · The HPC', language: 'bash', interrupt_mode: 'message' });
    expect(stable.metadata.kernel_provisioner.config).toEqual({
      profile: 'HPC',
      kernelspec: 'Bash',
      prefer_running: true
    });
    expect(stable.metadata.jupyterlab_remote_cluster.kernel_display_name).toBe('Bash');
    // the job ended (and the agent restarted: a new writer): the same name, the same spec
    await new KernelspecWriter(dir).sync([profile], [{ ...ofHpc, state: 'ended' } as ISession]);
    expect(readdirSync(dir).sort()).toEqual([
      'remote-cluster-hpc',
      'remote-cluster-hpc--bash',
      'remote-cluster-hpc--python3'
    ]);
    expect(read('remote-cluster-hpc--bash')).toEqual(stable);
    // another profile's session offers nothing to this one
    await writer.sync(
      [profile],
      [{ ...ofHpc, id: 'ef34ab', profile: 'other', kernelspecs: [{ ...bash, name: 'zsh' }] } as ISession]
    );
    expect(
      readdirSync(dir)
        .filter(n => n.startsWith('remote-cluster-hpc--'))
        .sort()
    ).toEqual(['remote-cluster-hpc--bash', 'remote-cluster-hpc--python3']);
    // the profile goes: its stable kernelspecs too
    await writer.sync([], []);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('makes a profile\'s default kernel its "(new job)" kernel, described as its sessions described it', async () => {
    const writer = new KernelspecWriter(dir);
    const withR = { ...profile, defaultKernel: 'ir' } as IClusterProfile;
    const read = () => JSON.parse(readFileSync(path.join(dir, 'remote-cluster-hpc', 'kernel.json'), 'utf8'));
    await writer.sync([withR], []);
    expect(read()).toMatchObject({ display_name: 'ir · The HPC (new job)' });
    expect(read().metadata.kernel_provisioner.config).toEqual({ profile: 'HPC', kernelspec: 'ir' });
    const r = { name: 'ir', displayName: 'R', language: 'R', interruptMode: 'signal' as const };
    await writer.sync([withR], [{ ...session, profile: 'HPC', kernelspecs: [r] } as ISession]);
    expect(read()).toMatchObject({ display_name: 'R · The HPC (new job)', language: 'R' });
  });
});
