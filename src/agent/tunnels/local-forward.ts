/**
 * A local TCP listener on 127.0.0.1 (an ephemeral port, never pre-picked) whose
 * connections are carried to a remote host:port by an SSH channel. Kernel channels use
 * one each. Closing the forward closes its listener and every open connection, so ZMQ
 * on the client side notices and reconnects instead of sitting on a half-open socket.
 */
import * as net from 'node:net';
import type { Duplex } from 'node:stream';

import { bridge } from './bridge';

export type OpenChannel = () => Promise<Duplex>;

export class LocalForward {
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  port = 0;

  constructor(
    private open: OpenChannel,
    private readonly log: (msg: string) => void = () => undefined
  ) {
    this.server = net.createServer({ allowHalfOpen: true, noDelay: true }, sock => this.accept(sock));
  }

  /** Listen on an ephemeral port, or on `port` to take over a forward after an agent restart. */
  async listen(port = 0): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, '127.0.0.1', () => resolve());
    });
    this.port = (this.server.address() as net.AddressInfo).port;
    return this.port;
  }

  private accept(sock: net.Socket): void {
    sock.setNoDelay(true);
    this.sockets.add(sock);
    sock.once('close', () => this.sockets.delete(sock));
    sock.pause();
    this.open().then(
      channel => {
        bridge(sock, channel);
        sock.resume();
      },
      (err: Error) => {
        this.log(`forward 127.0.0.1:${this.port}: ${err.message}`);
        sock.destroy();
      }
    );
  }

  /**
   * Point the same local port at another remote endpoint (a restarted kernel): clients
   * keep their connection info; their old connections are dropped and ZMQ reconnects.
   */
  retarget(open: OpenChannel): void {
    this.open = open;
    this.dropConnections();
  }

  /** Drop open connections (e.g. the SSH link died) but keep listening. */
  dropConnections(): void {
    for (const s of this.sockets) {
      s.destroy();
    }
  }

  close(): void {
    this.dropConnections();
    this.server.close();
  }
}
