/**
 * A ProxyCommand as the byte stream of an SSH hop: its stdout is what the server says,
 * its stdin what we say (ssh(1) runs it the same way, with `exec` through /bin/sh).
 *
 * Not `Duplex.from({readable: stdout, writable: stdin})`: when the command exits while
 * its stdin is still open (the usual end: the server closed the connection and
 * `ssh -W`/`nc` leave), Node destroys that stdin, and Duplex.from turns a writable closed
 * before it finished into a "Premature close" error, which ssh2 reported instead of the
 * server's own reason (a refused host key, a failed login). Here the stream ends when
 * the command's output ends, like a TCP socket whose peer closed; writes after the command
 * stopped reading are dropped (its output, already ended or ending, tells the rest).
 *
 * spawnProxyCommand expands a hop's ProxyCommand (`%h`, `%p`, ...) and starts it.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { Duplex } from 'node:stream';

import { hopLabel } from './hop';
import type { IResolvedHost } from './ssh-config';
import { percentExpand } from './ssh-config-syntax';
import { SshConnectionError, type IConnectionLogger } from './types';

export interface IProxyCommandLog {
  debug(message: string): void;
  warn(message: string): void;
}

export class ProxyCommandStream extends Duplex {
  private readonly child: ChildProcessWithoutNullStreams;
  private stdinGone = false;

  /** `command` is already %-expanded; `label` names it in the log. */
  constructor(command: string, label: string, log: IProxyCommandLog) {
    // (not half-open: when the command's output ends, our side ends too, as a TCP socket does)
    super({ allowHalfOpen: false });
    this.child = spawn('/bin/sh', ['-c', `exec ${command}`], { stdio: ['pipe', 'pipe', 'pipe'] });
    const { child } = this;
    child.stderr.on('data', (d: Buffer) => log.debug(`ssh: ProxyCommand (${label}): ${d.toString().trim()}`));
    child.on('error', err => {
      // (spawn failed: no output will ever come)
      log.warn(`ssh: ProxyCommand for ${label} failed: ${err.message}`);
      this.destroy(err);
    });
    child.stdout.on('data', (chunk: Buffer) => {
      if (!this.push(chunk)) {
        child.stdout.pause();
      }
    });
    child.stdout.on('end', () => this.push(null));
    child.stdin.on('error', () => {
      this.stdinGone = true; // EPIPE: the command no longer reads
    });
    child.stdin.on('close', () => {
      this.stdinGone = true;
    });
  }

  _read(): void {
    this.child.stdout.resume();
  }

  _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.stdinGone || this.child.stdin.destroyed) {
      callback();
      return;
    }
    if (this.child.stdin.write(chunk)) {
      callback();
    } else {
      let done = false;
      const once = () => {
        if (!done) {
          done = true;
          this.child.stdin.off('drain', once);
          this.child.stdin.off('close', once);
          callback();
        }
      };
      this.child.stdin.on('drain', once);
      this.child.stdin.on('close', once);
    }
  }

  _final(callback: (error?: Error | null) => void): void {
    if (this.stdinGone || this.child.stdin.destroyed) {
      callback();
    } else {
      this.child.stdin.end(() => callback());
    }
  }

  _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill();
    }
    this.child.stdout.destroy();
    this.child.stdin.destroy();
    callback(error);
  }
}

/** The first hop's ProxyCommand, %-expanded and started: the stream ssh2 talks over. */
export function spawnProxyCommand(
  cfg: IResolvedHost,
  localUser: string,
  homeDir: string,
  log: Required<IConnectionLogger>
): Duplex {
  let command: string;
  try {
    command = percentExpand(cfg.proxyCommand!, {
      h: cfg.hostName,
      p: String(cfg.port),
      r: cfg.user,
      n: cfg.alias,
      u: localUser,
      d: homeDir
    });
  } catch (err) {
    throw new SshConnectionError(
      `The ProxyCommand for ${hopLabel(cfg)} cannot be used: ${(err as Error).message}.`,
      'config'
    );
  }
  log.info(`ssh: reaching ${hopLabel(cfg)} through its ProxyCommand`);
  return new ProxyCommandStream(command, cfg.alias, log);
}
