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

/**
 * After the far end refused a connection (its kernel or helper is gone), connections
 * are turned away here, without SSH, for 0.2 s, doubling per refusal up to 2 s. ZMQ
 * retries every 100 ms per socket: with a cancelled job's six kernel sockets that was
 * 43 channel opens a second through every hop, slowing the link that must tell the
 * session's end. Only refusals by the far end count: a link that is down costs nothing
 * and must be used again the moment it is back.
 */
const REFUSED_FIRST_MS = 200;
const REFUSED_MAX_MS = 2_000;

export class LocalForward {
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  /** Consecutive refusals by the far end, and until when connections are turned away. */
  private refusals = 0;
  private refusedUntil = 0;
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
    if (Date.now() < this.refusedUntil) {
      sock.destroy();
      return;
    }
    sock.setNoDelay(true);
    this.sockets.add(sock);
    sock.once('close', () => this.sockets.delete(sock));
    sock.pause();
    this.open().then(
      channel => {
        this.refusals = 0;
        bridge(sock, channel);
        sock.resume();
      },
      (err: Error & { code?: string }) => {
        if (err.code === 'forward-failed') {
          this.refusals++;
          this.refusedUntil = Date.now() + Math.min(REFUSED_MAX_MS, REFUSED_FIRST_MS * 2 ** (this.refusals - 1));
        }
        // the first refusal and then fewer and fewer: the log must not drown
        if (this.refusals <= 1 || (this.refusals & (this.refusals - 1)) === 0) {
          const times = this.refusals > 1 ? ` (refused ${this.refusals} times in a row)` : '';
          this.log(`forward 127.0.0.1:${this.port}: ${err.message}${times}`);
        }
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
    this.refusals = 0;
    this.refusedUntil = 0;
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
