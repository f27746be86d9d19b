/**
 * Channels from a hop to elsewhere: direct-tcpip to host:port (the next hop of a chain, a
 * compute node's sshd, ClusterConnection.forwardOut) and streamlocal to a Unix socket,
 * failures in one sentence naming the hop.
 */
import type { ClientChannel } from 'ssh2';

import type { IHop } from './hop';
import { SshConnectionError, type IConnectionLogger } from './types';

/** A direct-tcpip channel from `hop` to host:port. */
export function openForward(
  hop: Pick<IHop, 'client' | 'label'>,
  host: string,
  port: number,
  forHop: boolean,
  log: Required<IConnectionLogger>
): Promise<ClientChannel> {
  return new Promise((resolve, reject) => {
    try {
      hop.client.forwardOut('127.0.0.1', 0, host, port, (err, ch) => {
        if (err) {
          const reason = err.message.replace(/^\(SSH\) Channel open failure: /, '');
          reject(
            new SshConnectionError(
              `${hop.label} could not open a connection to ${host}:${port} (${reason || 'refused'}).`,
              forHop ? 'jump-failed' : 'forward-failed',
              hop.label
            )
          );
          return;
        }
        ch.on('error', (e: Error) => log.debug(`ssh: channel to ${host}:${port}: ${e.message}`));
        resolve(ch);
      });
    } catch (err) {
      reject(
        new SshConnectionError(`Not connected to ${hop.label} (${(err as Error).message}).`, 'not-connected', hop.label)
      );
    }
  });
}

/** A connection from `hop` to a Unix socket on it (streamlocal). */
export function openStreamLocal(
  hop: Pick<IHop, 'client' | 'label'>,
  socketPath: string,
  log: Required<IConnectionLogger>
): Promise<ClientChannel> {
  return new Promise((resolve, reject) => {
    try {
      hop.client.openssh_forwardOutStreamLocal(socketPath, (err, ch) => {
        if (err) {
          const reason = err.message.replace(/^\(SSH\) Channel open failure: /, '');
          reject(
            new SshConnectionError(
              `${hop.label} could not connect to the socket ${socketPath} (${reason || 'refused'}).`,
              'forward-failed',
              hop.label
            )
          );
          return;
        }
        ch.on('error', (e: Error) => log.debug(`ssh: channel to ${socketPath}: ${e.message}`));
        resolve(ch);
      });
    } catch (err) {
      reject(
        new SshConnectionError(`Not connected to ${hop.label} (${(err as Error).message}).`, 'not-connected', hop.label)
      );
    }
  });
}
