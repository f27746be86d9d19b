/**
 * HTTP servers on Unix sockets only this user can open: the agent's API socket and its
 * proxy socket. The socket is their only access control, so its directory must be ours
 * alone (0700), the socket is made 0600, and a live server already there is never
 * replaced.
 */
import { promises as fs } from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';

/** Refuse to start on a path some other live process is serving. */
async function removeStaleSocket(socketPath: string): Promise<void> {
  let stat;
  try {
    stat = await fs.lstat(socketPath);
  } catch {
    return;
  }
  if (!stat.isSocket()) {
    throw new Error(`${socketPath} exists and is not a socket; refusing to replace it.`);
  }
  const live = await new Promise<boolean>(resolve => {
    const probe = http.get({ socketPath, path: '/api/v1/health', timeout: 2000 }, r => {
      r.resume();
      resolve(true);
    });
    probe.on('error', () => resolve(false));
    probe.on('timeout', () => {
      probe.destroy();
      resolve(false);
    });
  });
  if (live) {
    throw new Error(`Another agent is already listening on ${socketPath}.`);
  }
  await fs.unlink(socketPath);
}

export async function listenPrivately(server: http.Server, socketPath: string): Promise<void> {
  const dir = path.dirname(socketPath);
  const dirStat = await fs.stat(dir);
  if ((dirStat.mode & 0o077) !== 0 || (process.getuid && dirStat.uid !== process.getuid())) {
    throw new Error(`${dir} must be owned by this user with mode 0700.`);
  }
  await removeStaleSocket(socketPath);
  const oldUmask = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } finally {
    process.umask(oldUmask);
  }
  await fs.chmod(socketPath, 0o600);
}
