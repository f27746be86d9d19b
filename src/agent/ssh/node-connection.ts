/**
 * NodeConnection: an SSH connection to a compute node that ClusterConnection.connectNode
 * made through the login node (connectivity node-ssh). Only forwards are opened on it,
 * to a port or a Unix socket on the node.
 */
import type { Client, ClientChannel } from 'ssh2';

import { SshConnectionError, type IConnectionLogger } from './types';

/** An SSH connection to a compute node (see ClusterConnection.connectNode). */
export class NodeConnection {
  private closed = false;
  private readonly closeListeners: ((message: string) => void)[] = [];

  constructor(
    private readonly client: Client,
    readonly label: string,
    private readonly log: Required<IConnectionLogger>
  ) {
    let lastError = '';
    client.on('error', (e: Error) => {
      lastError = e.message;
      log.warn(`ssh: ${label}: ${e.message}`);
    });
    client.on('close', () => {
      this.closed = true;
      this.closeListeners
        .splice(0)
        .forEach(l => l(`Connection to ${label} closed${lastError ? `: ${lastError}` : ''}.`));
    });
  }

  get isClosed(): boolean {
    return this.closed;
  }

  onClose(listener: (message: string) => void): void {
    if (this.closed) {
      listener(`Connection to ${this.label} closed.`);
    } else {
      this.closeListeners.push(listener);
    }
  }

  /** A TCP connection from the node to host:port (e.g. its own loopback). */
  forwardOut(host: string, port: number): Promise<ClientChannel> {
    if (!/^[A-Za-z0-9._:-]+$/.test(host) || !Number.isInteger(port) || port < 1 || port > 65535) {
      return Promise.reject(
        new SshConnectionError(`Refusing to forward to ${JSON.stringify(host)}:${port}.`, 'bad-request')
      );
    }
    return this.open(`${host}:${port}`, cb => this.client.forwardOut('127.0.0.1', 0, host, port, cb));
  }

  /** A connection to a Unix socket on the node (streamlocal). */
  forwardOutStreamLocal(socketPath: string): Promise<ClientChannel> {
    if (!socketPath.startsWith('/')) {
      return Promise.reject(
        new SshConnectionError(`Refusing to forward to the socket ${JSON.stringify(socketPath)}.`, 'bad-request')
      );
    }
    return this.open(`the socket ${socketPath}`, cb => this.client.openssh_forwardOutStreamLocal(socketPath, cb));
  }

  private open(
    what: string,
    start: (cb: (err: Error | undefined, ch: ClientChannel) => void) => void
  ): Promise<ClientChannel> {
    if (this.closed) {
      return Promise.reject(new SshConnectionError(`Not connected to ${this.label}.`, 'not-connected', this.label));
    }
    return new Promise((resolve, reject) => {
      try {
        start((err, ch) => {
          if (err) {
            const reason = err.message.replace(/^\(SSH\) Channel open failure: /, '');
            reject(
              new SshConnectionError(
                `${this.label} could not connect to ${what} (${reason || 'refused'}).`,
                'forward-failed',
                this.label
              )
            );
            return;
          }
          ch.on('error', (e: Error) => this.log.debug(`ssh: channel to ${what} on ${this.label}: ${e.message}`));
          resolve(ch);
        });
      } catch (err) {
        reject(
          new SshConnectionError(
            `Not connected to ${this.label} (${(err as Error).message}).`,
            'not-connected',
            this.label
          )
        );
      }
    });
  }

  close(): void {
    if (!this.closed) {
      this.client.end();
    }
  }
}
