/**
 * Files over the connection's SFTP session: written with their mode set before any data,
 * read with a size cap, directories made as `mkdir -p`. The session itself (one per
 * connection, opened on first use) is ClusterConnection.sftp(); `label` names the target
 * in errors.
 */
import type { SFTPWrapper } from 'ssh2';

import type { IHop } from './hop';
import { SshConnectionError, type IConnectionLogger } from './types';

/** Starts an SFTP session on `hop` (see ClusterConnection.sftp); `onClose` when it ends. */
export function openSftp(
  hop: Pick<IHop, 'client' | 'label'>,
  log: Required<IConnectionLogger>,
  onClose: () => void
): Promise<SFTPWrapper> {
  return new Promise((resolve, reject) => {
    try {
      hop.client.sftp((err, sftp) => {
        if (err) {
          reject(
            new SshConnectionError(`Could not start SFTP on ${hop.label}: ${err.message}.`, 'sftp-failed', hop.label)
          );
          return;
        }
        sftp.on('error', (e: Error) => log.debug(`ssh: sftp on ${hop.label}: ${e.message}`));
        sftp.on('close', onClose);
        resolve(sftp);
      });
    } catch (err) {
      reject(
        new SshConnectionError(`Not connected to ${hop.label} (${(err as Error).message}).`, 'not-connected', hop.label)
      );
    }
  });
}

/** See ClusterConnection.writeFile. */
export async function sftpWriteFile(
  sftp: SFTPWrapper,
  label: string,
  remotePath: string,
  data: string | Buffer,
  mode: number
): Promise<void> {
  const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  const wrap = (what: string) => (err: Error) =>
    new SshConnectionError(`Could not ${what} ${remotePath} on ${label}: ${err.message}.`, 'sftp-failed', label);
  const handle = await new Promise<Buffer>((resolve, reject) =>
    sftp.open(remotePath, 'w', { mode }, (err, h) => (err ? reject(wrap('write')(err)) : resolve(h)))
  );
  try {
    await new Promise<void>((resolve, reject) =>
      sftp.fchmod(handle, mode, err => (err ? reject(wrap('set the mode of')(err)) : resolve()))
    );
    let off = 0;
    const CHUNK = 32 * 1024;
    while (off < buf.length) {
      const len = Math.min(CHUNK, buf.length - off);
      await new Promise<void>((resolve, reject) =>
        sftp.write(handle, buf, off, len, off, err => (err ? reject(wrap('write')(err)) : resolve()))
      );
      off += len;
    }
  } finally {
    await new Promise<void>(resolve => sftp.close(handle, () => resolve()));
  }
}

/** See ClusterConnection.readFile. */
export async function sftpReadFile(
  sftp: SFTPWrapper,
  label: string,
  remotePath: string,
  maxBytes: number
): Promise<Buffer> {
  const failed = (why: string): SshConnectionError =>
    new SshConnectionError(`Could not read ${remotePath} on ${label}: ${why}.`, 'sftp-failed', label);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    // `end` is inclusive: one byte more than allowed tells a file that is too big.
    const stream = sftp.createReadStream(remotePath, { start: 0, end: maxBytes });
    stream.on('data', (c: Buffer) => {
      size += c.length;
      chunks.push(c);
      if (size > maxBytes) {
        stream.destroy();
        reject(failed(`it is larger than ${maxBytes} bytes`));
      }
    });
    stream.on('error', (err: Error) => reject(failed(err.message)));
    stream.on('end', () => resolve(Buffer.concat(chunks)));
  });
}

/** See ClusterConnection.mkdirp. */
export async function sftpMkdirp(sftp: SFTPWrapper, label: string, remotePath: string, mode: number): Promise<void> {
  const parts = remotePath.split('/');
  let cur = remotePath.startsWith('/') ? '' : '.';
  for (const part of parts) {
    if (!part || part === '.') {
      continue;
    }
    cur = cur === '' ? `/${part}` : `${cur}/${part}`;
    const isDir = await new Promise<boolean | undefined>(resolve =>
      sftp.stat(cur, (err, st) => resolve(err ? undefined : st.isDirectory()))
    );
    if (isDir === false) {
      throw new SshConnectionError(
        `Cannot create ${remotePath} on ${label}: ${cur} is not a directory.`,
        'sftp-failed',
        label
      );
    }
    if (isDir === undefined) {
      await new Promise<void>((resolve, reject) =>
        sftp.mkdir(cur, { mode }, err => {
          if (!err) {
            resolve();
            return;
          }
          // Someone else may have created it meanwhile.
          sftp.stat(cur, (e2, st) =>
            !e2 && st.isDirectory()
              ? resolve()
              : reject(
                  new SshConnectionError(`Cannot create ${cur} on ${label}: ${err.message}.`, 'sftp-failed', label)
                )
          );
        })
      );
    }
  }
}
