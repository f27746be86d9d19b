/**
 * Remote kernels as ordinary kernelspecs, so any notebook, nbclient or papermill can
 * pick them: one per profile (starts a new job with the profile's defaults) and one
 * per running session (attaches to that allocation), plus one per other kernel of the
 * job's environment (R, bash...: its language and interrupt mode copied). And the stable
 * ones a notebook is saved with: one per profile and kernel of its job environment
 * (`remote-cluster-<profile>--<kernel>`, Python's is `--python3`), naming no job: each start
 * goes to a running session of the profile or submits one (sessions/notebook-sessions.ts).
 * A kernel a profile's session once offered keeps its stable spec after the job ends (the
 * spec on disk is the memory), until the profile goes. Each names our provisioner; the
 * argv is never run. We only ever touch directories carrying our marker.
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
  sessionKernelName,
  stableKernelName
} from '../common/routes';

export { PROVISIONER_NAME, profileKernelName, sessionKernelName };

type SpecConfig = Record<string, string | boolean>;

function spec(
  displayName: string,
  config: SpecConfig,
  kind: Pick<IRemoteKernelspec, 'language' | 'interruptMode'> = { language: 'python', interruptMode: 'signal' },
  /** Kept with our marker only (what a stable spec remembers), never given to the provisioner. */
  remembered: SpecConfig = {}
): string {
  return JSON.stringify(
    {
      argv: ['python', '-c', 'raise SystemExit("started by the remote-cluster provisioner")', '{connection_file}'],
      display_name: displayName,
      language: kind.language,
      // "message": jupyter_client interrupts over the control channel, not with our signal route
      interrupt_mode: kind.interruptMode,
      metadata: {
        [MARKER]: { ...config, ...remembered },
        kernel_provisioner: { provisioner_name: PROVISIONER_NAME, config }
      }
    },
    null,
    1
  );
}

/**
 * A profile's "(new job)" kernelspec: its default kernel (as its sessions described it,
 * else by name alone), or the job's Python.
 */
function newJobSpec(p: IClusterProfile, title: string, known: Map<string, IRemoteKernelspec>): string {
  if (!p.defaultKernel) {
    return spec(`Python 3 · ${title} (new job)`, { profile: p.name });
  }
  const k = known.get(p.defaultKernel.toLowerCase()) ?? {
    name: p.defaultKernel,
    displayName: p.defaultKernel,
    language: '',
    interruptMode: 'signal' as const
  };
  return spec(`${k.displayName} · ${title} (new job)`, { profile: p.name, kernelspec: k.name }, k);
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

  /** Our kernelspecs on disk: name -> kernel.json's text. */
  private async ours(): Promise<Map<string, string>> {
    const names = await fs.readdir(this.kernelsDir).catch(() => [] as string[]);
    const result = new Map<string, string>();
    for (const n of names.filter(x => x.startsWith(KERNEL_NAME_PREFIX))) {
      const text = await fs.readFile(path.join(this.kernelsDir, n, 'kernel.json'), 'utf8').catch(() => '');
      if (text.includes(`"${MARKER}"`)) {
        result.set(n, text);
      }
    }
    return result;
  }

  /** The kernels of `profile`'s job environment its stable specs on disk remember. */
  private static remembered(ours: Map<string, string>, profile: string): IRemoteKernelspec[] {
    const found: IRemoteKernelspec[] = [];
    for (const text of ours.values()) {
      try {
        const json = JSON.parse(text);
        const config = json.metadata?.[MARKER] ?? {};
        if (config.profile === profile && config.prefer_running === true && typeof config.kernelspec === 'string') {
          found.push({
            name: config.kernelspec,
            displayName: String(config.kernel_display_name ?? config.kernelspec),
            language: String(json.language ?? ''),
            interruptMode: json.interrupt_mode === 'message' ? 'message' : 'signal'
          });
        }
      } catch {
        // (an unreadable spec of ours is rewritten or removed below)
      }
    }
    return found;
  }

  /** Make the directory match the profiles and running sessions exactly. */
  async sync(profiles: IClusterProfile[], sessions: ISession[]): Promise<void> {
    const wanted = new Map<string, string>();
    const ours = await this.ours();
    for (const p of profiles) {
      const title = p.title ?? p.name;
      const offered = sessions
        .filter(s => s.profile === p.name && s.state === 'running')
        .flatMap(s => s.kernelspecs ?? []);
      const kernels = new Map<string, IRemoteKernelspec>();
      for (const k of [...KernelspecWriter.remembered(ours, p.name), ...offered]) {
        kernels.set(k.name.toLowerCase(), k); // (what runs now wins over what was remembered)
      }
      wanted.set(profileKernelName(p.name), newJobSpec(p, title, kernels));
      // stable: the profile's Python, and every kernel its sessions offered (now or before)
      wanted.set(stableKernelName(p.name), spec(`Python 3 · ${title}`, { profile: p.name, prefer_running: true }));
      for (const k of kernels.values()) {
        const config = { profile: p.name, kernelspec: k.name, prefer_running: true };
        const remembered = { kernel_display_name: k.displayName };
        wanted.set(stableKernelName(p.name, k.name), spec(`${k.displayName} · ${title}`, config, k, remembered));
      }
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
    for (const name of ours.keys()) {
      if (!wanted.has(name)) {
        await fs.rm(path.join(this.kernelsDir, name), { recursive: true, force: true });
      }
    }
  }
}
