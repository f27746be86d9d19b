/**
 * Commands on the target over exec sessions (ssh/README.md, "Exec"): a bounded number at
 * a time, a refused session asked for again, output capped per stream, and on timeout a
 * SIGKILL sent on the protocol, the channel closed and the promise rejected at once.
 * ClusterConnection.exec picks the hop; the rest is here.
 */
import type { ClientChannel } from 'ssh2';

import { formatSeconds, type IHop } from './hop';
import { SshConnectionError, type IConnectionLogger, type IExecOptions, type IExecResult } from './types';

const DEFAULT_MAX_OUTPUT = 8 * 1024 * 1024;

/** Waits before asking again for a session the server refused (about 5 s in all). */
const SESSION_RETRY_DELAYS_MS = [50, 100, 200, 400, 800, 1000, 1000, 1500];

/** A counting semaphore for exec sessions. */
export class Semaphore {
  private waiting: (() => void)[] = [];
  constructor(private free: number) {}
  async acquire(): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return;
    }
    await new Promise<void>(resolve => this.waiting.push(resolve));
  }
  release(): void {
    const next = this.waiting.shift();
    if (next) {
      next();
    } else {
      this.free++;
    }
  }
}

/** Runs `command` on `hop` in one of `slots` (see ClusterConnection.exec). */
export async function execOnHop(
  hop: Pick<IHop, 'client' | 'label'>,
  command: string,
  options: IExecOptions,
  slots: Semaphore,
  log: Required<IConnectionLogger>
): Promise<IExecResult> {
  await slots.acquire();
  let released = false;
  const release = (): void => {
    if (!released) {
      released = true;
      slots.release();
    }
  };
  return new Promise<IExecResult>((resolve, reject) => {
    const max = options.maxOutputBytes ?? DEFAULT_MAX_OUTPUT;
    let refusals = 0;
    const onExec = (err: Error | undefined, ch: ClientChannel): void => {
      if (err) {
        // OpenSSH refuses a session (CHANNEL_OPEN_FAILURE "open failed") while it has
        // MaxSessions open, and it still counts sessions we have already closed until a
        // main-loop turn later, so under load a burst can briefly exceed the limit. A
        // refused *session* is transient: try again shortly, for up to about 5 s.
        if (
          typeof (err as Error & { reason?: unknown }).reason === 'number' &&
          refusals < SESSION_RETRY_DELAYS_MS.length
        ) {
          const delay = SESSION_RETRY_DELAYS_MS[refusals++];
          log.debug(`ssh: ${hop.label} refused a session (${err.message}); retrying in ${delay} ms`);
          setTimeout(start, delay).unref();
          return;
        }
        release();
        reject(
          new SshConnectionError(`Could not run a command on ${hop.label}: ${err.message}.`, 'exec-failed', hop.label)
        );
        return;
      }
      const out: Buffer[] = [];
      const errOut: Buffer[] = [];
      let outLen = 0;
      let errLen = 0;
      let truncated = false;
      let exit: { code: number | null; signal?: string } | undefined;
      let timedOut = false;
      const timer =
        options.timeoutMs && options.timeoutMs > 0
          ? setTimeout(() => {
              timedOut = true;
              sendSignal(ch, 'KILL');
              try {
                ch.close();
              } catch {
                // already closing
              }
              setTimeout(release, 5000).unref();
              reject(
                new SshConnectionError(
                  `The command on ${hop.label} did not finish within ${formatSeconds(options.timeoutMs!)} and was stopped.`,
                  'timeout',
                  hop.label
                )
              );
            }, options.timeoutMs)
          : undefined;
      const collect = (chunks: Buffer[], len: number, d: Buffer): number => {
        if (len < max) {
          chunks.push(d.subarray(0, max - len));
        }
        if (len + d.length > max) {
          truncated = true;
        }
        return len + d.length;
      };
      ch.on('data', (d: Buffer) => {
        outLen = collect(out, outLen, d);
      });
      ch.stderr.on('data', (d: Buffer) => {
        errLen = collect(errOut, errLen, d);
      });
      ch.on('exit', (code: number | null, signal?: string) => {
        exit = { code: typeof code === 'number' ? code : null, signal: signal ?? undefined };
      });
      ch.on('error', (e: Error) => log.debug(`ssh: exec channel on ${hop.label}: ${e.message}`));
      ch.on('close', () => {
        release();
        if (timer) {
          clearTimeout(timer);
        }
        if (timedOut) {
          return; // rejected already
        }
        if (!exit) {
          reject(
            new SshConnectionError(
              `The command on ${hop.label} ended without an exit status (was the connection lost?).`,
              'no-exit-status',
              hop.label
            )
          );
          return;
        }
        const result: IExecResult = {
          code: exit.code,
          stdout: Buffer.concat(out).toString('utf8'),
          stderr: Buffer.concat(errOut).toString('utf8')
        };
        if (exit.signal) {
          result.signal = exit.signal;
        }
        if (truncated) {
          result.truncated = true;
        }
        resolve(result);
      });
      if (options.stdin !== undefined) {
        ch.end(options.stdin);
      } else {
        ch.end();
      }
    };
    const start = (): void => {
      try {
        hop.client.exec(command, onExec);
      } catch (err) {
        release();
        reject(
          new SshConnectionError(
            `Not connected to ${hop.label} (${(err as Error).message}).`,
            'not-connected',
            hop.label
          )
        );
      }
    };
    start();
  });
}

/**
 * Sends a signal request on a session channel. ssh2's Channel.signal() is silently
 * a no-op once our side sent EOF (stdin closed), which every exec does at once; the
 * request is still valid in SSH then, so go to the protocol object in that case.
 */
function sendSignal(ch: ClientChannel, name: string): void {
  const c = ch as unknown as {
    outgoing?: { id: number; state: string };
    _client?: { _protocol?: { signal?: (id: number, sig: string) => void } };
  };
  try {
    if (ch.writable) {
      ch.signal(name);
    } else if (c.outgoing?.state === 'open' && typeof c._client?._protocol?.signal === 'function') {
      c._client._protocol.signal(c.outgoing.id, name);
    }
  } catch {
    // channel gone or signal unsupported: closing the channel is all we can do
  }
}
