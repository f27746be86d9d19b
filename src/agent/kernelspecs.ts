/**
 * Remote kernels as ordinary kernelspecs, so any notebook, nbclient or papermill can
 * pick them: one per profile (starts a new job with the profile's defaults) and one
 * per running session (attaches to that allocation), plus one per other kernel of the
 * job's environment (R, bash...: its language and interrupt mode copied). Each names our
 * provisioner; the argv is never run. We only ever touch directories carrying our marker.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';

import remoteClusterSvg from '../../style/icons/remote-cluster.svg';
import type { IClusterProfile, IRemoteKernelspec, ISession } from '../common/api';
import {
  KERNEL_NAME_PREFIX,
  KERNELSPEC_MARKER as MARKER,
  PROVISIONER_NAME,
  profileKernelName,
  sessionKernelName
} from '../common/routes';

export { PROVISIONER_NAME, profileKernelName, sessionKernelName };

function spec(
  displayName: string,
  config: Record<string, string>,
  kind: Pick<IRemoteKernelspec, 'language' | 'interruptMode'> = { language: 'python', interruptMode: 'signal' }
): string {
  return JSON.stringify(
    {
      argv: ['python', '-c', 'raise SystemExit("started by the remote-cluster provisioner")', '{connection_file}'],
      display_name: displayName,
      language: kind.language,
      // "message": jupyter_client interrupts over the control channel, not with our signal route
      interrupt_mode: kind.interruptMode,
      metadata: {
        [MARKER]: config,
        kernel_provisioner: { provisioner_name: PROVISIONER_NAME, config }
      }
    },
    null,
    1
  );
}

export class KernelspecWriter {
  constructor(private readonly kernelsDir: string) {}

  private async write(name: string, json: string): Promise<void> {
    const dir = path.join(this.kernelsDir, name);
    await fs.mkdir(dir, { recursive: true });
    // the product's icon: JupyterLab shows a kernelspec's logo-svg wherever it shows one
    for (const [file, text] of [
      ['logo-svg.svg', remoteClusterSvg],
      ['kernel.json', json]
    ]) {
      const old = await fs.readFile(path.join(dir, file), 'utf8').catch(() => '');
      if (old !== text) {
        await fs.writeFile(path.join(dir, file), text);
      }
    }
  }

  private async ours(): Promise<string[]> {
    const names = await fs.readdir(this.kernelsDir).catch(() => [] as string[]);
    const result: string[] = [];
    for (const n of names.filter(x => x.startsWith(KERNEL_NAME_PREFIX))) {
      const text = await fs.readFile(path.join(this.kernelsDir, n, 'kernel.json'), 'utf8').catch(() => '');
      if (text.includes(`"${MARKER}"`)) {
        result.push(n);
      }
    }
    return result;
  }

  /** Make the directory match the profiles and running sessions exactly. */
  async sync(profiles: IClusterProfile[], sessions: ISession[]): Promise<void> {
    const wanted = new Map<string, string>();
    for (const p of profiles) {
      wanted.set(profileKernelName(p.name), spec(`Python 3 · ${p.title ?? p.name} (new job)`, { profile: p.name }));
    }
    for (const s of sessions.filter(x => x.state === 'running')) {
      const where = s.resources.partition ? `${s.resources.partition}@${s.cluster}` : s.cluster;
      const job = `${where} · job ${s.jobId ?? s.id}`;
      wanted.set(sessionKernelName(s.id), spec(`Python 3 · ${job}`, { session: s.id }));
      for (const k of s.kernelspecs ?? []) {
        wanted.set(
          sessionKernelName(s.id, k.name),
          spec(`${k.displayName} · ${job}`, { session: s.id, kernelspec: k.name }, k)
        );
      }
    }
    for (const [name, json] of wanted) {
      await this.write(name, json);
    }
    for (const name of await this.ours()) {
      if (!wanted.has(name)) {
        await fs.rm(path.join(this.kernelsDir, name), { recursive: true, force: true });
      }
    }
  }
}
