/**
 * The code uploaded to the cluster: the helper and its companions (the files next to
 * it), their digest (one versioned directory on the cluster per content) and the
 * agent-helper protocol the helper speaks.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';

/** The files uploaded into one versioned directory on the cluster (helper.py's siblings). */
const REMOTE_FILES = ['helper.py', 'jrc_kernel.py', 'jrc_dask_private.py'];

export interface IRemoteFiles {
  files: { name: string; text: string }[];
  digest: string;
  /** The protocol the helper speaks (its PROTOCOL_VERSION; 1 before it had one). */
  protocol: number;
}

export async function readRemoteFiles(helperPath: string): Promise<IRemoteFiles> {
  const dir = path.dirname(helperPath);
  const files: { name: string; text: string }[] = [];
  const hash = createHash('sha256');
  for (const name of REMOTE_FILES) {
    const file = name === 'helper.py' ? helperPath : path.join(dir, name);
    let text: string;
    try {
      text = await fs.readFile(file, 'utf8');
    } catch (err) {
      if (name === 'helper.py') {
        throw err;
      }
      continue; // a helper of protocol 1 had no companions
    }
    files.push({ name, text });
    hash.update(`${name}\0${text.length}\0${text}`);
  }
  const protocol = Number(/^PROTOCOL_VERSION = (\d+)$/m.exec(files[0].text)?.[1] ?? 1);
  return { files, digest: hash.digest('hex').slice(0, 16), protocol };
}
