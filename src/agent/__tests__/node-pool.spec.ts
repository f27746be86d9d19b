import { PassThrough } from 'node:stream';

import { NodePool, type IPoolableNode } from '../cluster/node-pool';

/** A stand-in node connection: streams are PassThroughs, close() fires the close listeners. */
class FakeNode implements IPoolableNode {
  closed = false;
  private listeners: ((m: string) => void)[] = [];
  constructor(readonly node: string) {}
  async forwardOut(): Promise<PassThrough> {
    return new PassThrough();
  }
  async forwardOutStreamLocal(p: string): Promise<PassThrough> {
    if (p === '/missing') {
      throw new Error('no such socket');
    }
    return new PassThrough();
  }
  onClose(l: (m: string) => void): void {
    this.listeners.push(l);
  }
  close(): void {
    this.closed = true;
    this.listeners.splice(0).forEach(l => l('closed'));
  }
}

const tick = () => new Promise(r => setImmediate(r));

describe('NodePool', () => {
  let made: FakeNode[];
  const connect = async (node: string) => {
    const c = new FakeNode(node);
    made.push(c);
    return c;
  };
  beforeEach(() => {
    made = [];
  });

  it('makes one connection per node, shared by every user', async () => {
    const pool = new NodePool(connect, 1000);
    const [a, b, c] = await Promise.all([pool.get('node3'), pool.get('node3'), pool.get('node4')]);
    await a.forwardOutStreamLocal('/s1');
    await b.forwardOut('127.0.0.1', 8787);
    await c.forwardOutStreamLocal('/s2');
    expect(made.map(m => m.node)).toEqual(['node3', 'node4']);
    pool.closeAll();
  });

  it('closes a connection only after it has been unused for idleMs, then makes a new one', async () => {
    const pool = new NodePool(connect, 50);
    const link = await pool.get('node3');
    const s = await link.forwardOutStreamLocal('/k');
    await new Promise(r => setTimeout(r, 120));
    expect(made[0].closed).toBe(false); // a stream is open
    s.destroy();
    await tick();
    await new Promise(r => setTimeout(r, 120));
    expect(made[0].closed).toBe(true);
    expect(pool.size).toBe(0);
    await (await pool.get('node3')).forwardOut('127.0.0.1', 1);
    expect(made).toHaveLength(2);
    pool.closeAll();
  });

  it('a failed stream does not keep the connection busy', async () => {
    const pool = new NodePool(connect, 50);
    const link = await pool.get('node3');
    await expect(link.forwardOutStreamLocal('/missing')).rejects.toThrow('no such socket');
    await new Promise(r => setTimeout(r, 120));
    expect(made[0].closed).toBe(true);
  });

  it('does not cache a failed connection attempt', async () => {
    let fail = true;
    const pool = new NodePool(async node => {
      if (fail) {
        throw new Error('host key rejected');
      }
      return connect(node);
    }, 1000);
    await expect(pool.get('node3')).rejects.toThrow('host key rejected');
    await tick();
    fail = false;
    await pool.get('node3');
    expect(made).toHaveLength(1);
    pool.closeAll();
  });

  it('forgets a connection that closed (login link dropped) and reconnects on next use', async () => {
    const pool = new NodePool(connect, 1000);
    await pool.get('node3');
    made[0].close();
    expect(pool.size).toBe(0);
    await pool.get('node3');
    expect(made).toHaveLength(2);
    pool.closeAll();
  });

  it('closeAll closes every node connection; new ones are made unless it was final', async () => {
    const pool = new NodePool(connect, 1000);
    await pool.get('node3');
    await pool.get('node4');
    pool.closeAll();
    await tick();
    expect(made.every(m => m.closed)).toBe(true);
    await pool.get('node3'); // the login link came back: a new node connection
    expect(made).toHaveLength(3);
    pool.closeAll(true);
    await tick();
    expect(made[2].closed).toBe(true);
    await expect(pool.get('node3')).rejects.toThrow(/closed/);
  });
});
