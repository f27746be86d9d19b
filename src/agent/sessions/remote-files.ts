/**
 * The code uploaded to the cluster: the helper and its companions (the files next to
 * it), their digest (one versioned directory on the cluster per content) and the
 * agent-helper protocol the helper speaks.
 *
 * The helper is a package of modules (jupyterlab_remote_cluster/remote/helper/, runnable
 * as a directory) shipped as one zipapp, `helper.pyz`. A single-file helper (`helper.py`,
 * as earlier releases had; tests use one) is shipped as it is.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';

import { makeZip, pythonSources } from './zipapp';

/** Run by the cluster's Python next to the helper (not inside the zipapp). */
const COMPANIONS = ['jrc_kernel.py', 'jrc_iopub_keeper.py', 'jrc_dask_private.py', 'jrc_carry.py'];

export interface IRemoteFiles {
  files: { name: string; data: Buffer }[];
  /** The file the job runs (`helper.pyz`, or `helper.py` for a single-file helper). */
  entry: string;
  digest: string;
  /** The protocol the helper speaks (its PROTOCOL_VERSION; 1 before it had one). */
  protocol: number;
}

export async function readRemoteFiles(helperPath: string): Promise<IRemoteFiles> {
  let entry: { name: string; data: Buffer };
  let sources: Buffer[];
  if ((await fs.stat(helperPath)).isDirectory()) {
    const modules = await pythonSources(helperPath);
    if (!modules.some(m => m.name === '__main__.py')) {
      throw new Error(`${helperPath} has no __main__.py: it is not the helper's package`);
    }
    entry = { name: 'helper.pyz', data: makeZip(modules) };
    sources = modules.map(m => m.data);
  } else {
    entry = { name: 'helper.py', data: await fs.readFile(helperPath) };
    sources = [entry.data];
  }
  const files = [entry];
  for (const name of COMPANIONS) {
    try {
      files.push({ name, data: await fs.readFile(path.join(path.dirname(helperPath), name)) });
    } catch {
      continue; // a helper of protocol 1 had no companions
    }
  }
  const hash = createHash('sha256');
  for (const f of files) {
    hash.update(`${f.name}\0${f.data.length}\0`).update(f.data);
  }
  const version = sources.map(s => /^PROTOCOL_VERSION = (\d+)$/m.exec(s.toString('utf8'))?.[1]).find(Boolean);
  return { files, entry: entry.name, digest: hash.digest('hex').slice(0, 16), protocol: Number(version ?? 1) };
}
