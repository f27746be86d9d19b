/**
 * The SFTP operations the cluster drive needs (drive.ts), as promises, with SFTP's status
 * codes turned into the HTTP status a Jupyter contents client expects, and the one write
 * every change goes through: a temporary file next to the target, renamed over it with
 * `posix-rename@openssh.com` (atomic; the old file stays whole when anything fails).
 */
import { randomBytes } from 'node:crypto';
import { posix } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

import type { FileEntryWithStats, SFTPWrapper, Stats } from 'ssh2';

/** A refusal or failure with the HTTP status and code the agent answers with. */
export class DriveError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string
  ) {
    super(message);
  }
}

/** Temporary files of saves and uploads: hidden, recognisable, never listed. */
export const TEMP_PREFIX = '.~rc-';

/** SFTP status codes (draft-ietf-secsh-filexfer-02). */
const NO_SUCH_FILE = 2;
const PERMISSION_DENIED = 3;

/** `what` failed on `shown` (the drive-relative path the user sees). */
export function sftpError(err: unknown, what: string, shown: string): DriveError {
  const code = (err as { code?: unknown }).code;
  if (code === NO_SUCH_FILE) {
    return new DriveError(404, 'not-found', `Could not ${what} ${shown}: no such file or folder on the cluster.`);
  }
  if (code === PERMISSION_DENIED) {
    return new DriveError(403, 'permission-denied', `Could not ${what} ${shown}: permission denied on the cluster.`);
  }
  const message = err instanceof Error ? err.message : String(err);
  return new DriveError(502, 'sftp-failed', `Could not ${what} ${shown}: ${message}.`);
}

/** The promise of one SFTP call. */
function call<T>(start: (cb: (err: Error | null | undefined, value: T) => void) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => start((err, value) => (err ? reject(err) : resolve(value))));
}

export class SftpOps {
  constructor(readonly sftp: SFTPWrapper) {}

  stat(path: string): Promise<Stats> {
    return call(cb => this.sftp.stat(path, cb));
  }
  lstat(path: string): Promise<Stats> {
    return call(cb => this.sftp.lstat(path, cb));
  }
  /** undefined when nothing is there (other errors are thrown). */
  async statIfAny(path: string): Promise<Stats | undefined> {
    try {
      return await this.stat(path);
    } catch (err) {
      if ((err as { code?: unknown }).code === NO_SUCH_FILE) {
        return undefined;
      }
      throw err;
    }
  }
  realpath(path: string): Promise<string> {
    return call(cb => this.sftp.realpath(path, cb));
  }
  readdir(path: string): Promise<FileEntryWithStats[]> {
    return call(cb => this.sftp.readdir(path, cb));
  }
  mkdir(path: string): Promise<void> {
    return call<void>(cb => this.sftp.mkdir(path, err => cb(err, undefined)));
  }
  rmdir(path: string): Promise<void> {
    return call<void>(cb => this.sftp.rmdir(path, err => cb(err, undefined)));
  }
  unlink(path: string): Promise<void> {
    return call<void>(cb => this.sftp.unlink(path, err => cb(err, undefined)));
  }
  chmod(path: string, mode: number): Promise<void> {
    return call<void>(cb => this.sftp.chmod(path, mode, err => cb(err, undefined)));
  }
  /** Fails when `to` exists (the SFTP v3 rename of OpenSSH's server). */
  rename(from: string, to: string): Promise<void> {
    return call<void>(cb => this.sftp.rename(from, to, err => cb(err, undefined)));
  }
  /** Replaces `to` atomically (OpenSSH's posix-rename extension). */
  replace(from: string, to: string): Promise<void> {
    return call<void>(cb => this.sftp.ext_openssh_rename(from, to, err => cb(err, undefined)));
  }
  read(path: string, start?: number): Readable {
    return this.sftp.createReadStream(path, start ? { start } : {});
  }
  async unlinkQuietly(path: string): Promise<void> {
    await this.unlink(path).catch(() => undefined);
  }

  /** A new temporary file's path in `dir` (created by the first write, exclusively). */
  static tempPath(dir: string, name: string): string {
    return posix.join(dir, `${TEMP_PREFIX}${randomBytes(6).toString('hex')}-${name}`.slice(0, 255));
  }

  /** Writes `source` from `offset` into `path` (created when `create`). */
  async writeInto(path: string, source: Readable, options: { create: boolean; offset?: number }): Promise<void> {
    const sink = this.sftp.createWriteStream(path, {
      flags: options.create ? 'wx' : 'r+',
      ...(options.offset ? { start: options.offset } : {}),
      ...(options.create ? { mode: 0o600 } : {})
    });
    await pipeline(source, sink);
  }

  /**
   * `target` replaced by `source`, atomically: written into a temporary file next to it
   * (so the rename stays on one file system), given `mode`, then renamed over it. On any
   * failure the temporary file is removed (no quota spent) and `target` is as it was.
   */
  async replaceWith(target: string, source: Readable, mode: number): Promise<void> {
    const temp = SftpOps.tempPath(posix.dirname(target), posix.basename(target));
    try {
      await this.writeInto(temp, source, { create: true });
      await this.chmod(temp, mode);
      await this.replace(temp, target);
    } catch (err) {
      await this.unlinkQuietly(temp);
      throw err;
    }
  }
}
