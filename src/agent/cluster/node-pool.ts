/**
 * One SSH connection per compute node (connectivity node-ssh), shared by every session
 * and kernel on that node and closed once no stream has used it for `idleMs`.
 * Generic over the connection so the sharing rules are unit-tested without SSH.
 */
import type { Duplex } from 'node:stream';

import type { INodeLink } from './link';

export interface IPoolableNode {
  forwardOut(host: string, port: number): Promise<Duplex>;
  forwardOutStreamLocal(socketPath: string): Promise<Duplex>;
  onClose(listener: (message: string) => void): void;
  close(): void;
}

interface IEntry {
  conn: Promise<IPoolableNode>;
  /** Streams open right now. */
  open: number;
  idle?: NodeJS.Timeout;
}

export class NodePool {
  private readonly nodes = new Map<string, IEntry>();
  private closed = false;

  constructor(
    private readonly connect: (node: string) => Promise<IPoolableNode>,
    private readonly idleMs = 60_000,
    private readonly log: (msg: string) => void = () => undefined
  ) {}

  /** Nodes with a connection (being made or up). */
  get size(): number {
    return this.nodes.size;
  }

  get(node: string): Promise<INodeLink> {
    if (this.closed) {
      return Promise.reject(new Error('the cluster connection is closed'));
    }
    let entry = this.nodes.get(node);
    if (!entry) {
      const e: IEntry = { conn: this.connect(node), open: 0 };
      entry = e;
      this.nodes.set(node, e);
      e.conn.then(
        c => {
          c.onClose(message => {
            if (this.nodes.get(node) === e) {
              this.forget(node, e);
              this.log(`node connection to ${node} closed: ${message}`);
            }
          });
          if (this.nodes.get(node) !== e) {
            c.close(); // the pool was closed meanwhile
          } else {
            this.touch(node, e);
          }
        },
        () => {
          // A failed attempt is not cached: the next use tries again.
          if (this.nodes.get(node) === e) {
            this.forget(node, e);
          }
        }
      );
    }
    const e = entry;
    const track = async (open: (c: IPoolableNode) => Promise<Duplex>): Promise<Duplex> => {
      const c = await e.conn;
      e.open++;
      this.touch(node, e);
      let stream: Duplex;
      try {
        stream = await open(c);
      } catch (err) {
        e.open--;
        this.touch(node, e);
        throw err;
      }
      stream.once('close', () => {
        e.open--;
        this.touch(node, e);
      });
      return stream;
    };
    return e.conn.then(() => ({
      forwardOut: (host: string, port: number) => track(c => c.forwardOut(host, port)),
      forwardOutStreamLocal: (socketPath: string) => track(c => c.forwardOutStreamLocal(socketPath))
    }));
  }

  /** (Re)arms the idle timer when nothing is open, disarms it otherwise. */
  private touch(node: string, e: IEntry): void {
    if (e.idle) {
      clearTimeout(e.idle);
      e.idle = undefined;
    }
    if (e.open <= 0 && this.nodes.get(node) === e) {
      e.idle = setTimeout(() => {
        if (this.nodes.get(node) === e && e.open <= 0) {
          this.log(`closing the unused connection to ${node}`);
          this.forget(node, e);
          e.conn.then(
            c => c.close(),
            () => undefined
          );
        }
      }, this.idleMs);
      e.idle.unref?.();
    }
  }

  private forget(node: string, e: IEntry): void {
    if (e.idle) {
      clearTimeout(e.idle);
    }
    this.nodes.delete(node);
  }

  /**
   * The cluster link dropped (node connections went through it): forget them all; the
   * next use makes new ones. `final` (the link was closed for good): refuse new ones.
   */
  closeAll(final = false): void {
    this.closed ||= final;
    for (const [node, e] of [...this.nodes]) {
      this.forget(node, e);
      e.conn.then(
        c => c.close(),
        () => undefined
      );
    }
  }
}
