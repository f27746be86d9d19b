/**
 * LocalForward turns connections away locally while the far end refuses them (a
 * cancelled job's kernel ports), so a client reconnecting every 100 ms (ZMQ) does not
 * cost a channel open through every hop each time; a link that is down is not a refusal.
 * Real sockets on loopback, a fake channel opener that counts.
 */
import * as net from 'node:net';
import { PassThrough } from 'node:stream';

import { SshConnectionError } from '../ssh/types';
import { LocalForward } from '../tunnels/local-forward';

/** Connect to the forward every `everyMs` for `forMs`, like ZMQ's reconnect loop. */
async function hammer(port: number, everyMs: number, forMs: number): Promise<void> {
  const end = Date.now() + forMs;
  while (Date.now() < end) {
    await new Promise<void>(resolve => {
      const c = net.connect(port, '127.0.0.1');
      c.on('error', () => resolve());
      c.on('close', () => resolve());
    });
    await new Promise(r => setTimeout(r, everyMs));
  }
}

function forwardFailing(code: string): { fwd: LocalForward; opens: () => number; logs: string[] } {
  let n = 0;
  const logs: string[] = [];
  const fwd = new LocalForward(
    () => {
      n++;
      return Promise.reject(new SshConnectionError('login could not open a connection to node1:4 (refused).', code));
    },
    msg => logs.push(msg)
  );
  return { fwd, opens: () => n, logs };
}

describe('LocalForward and a far end that refuses', () => {
  it('turns reconnects away locally, backing off to 2 s, and logs fewer and fewer', async () => {
    const { fwd, opens, logs } = forwardFailing('forward-failed');
    const port = await fwd.listen();
    await hammer(port, 20, 3_000);
    fwd.close();
    // without the backoff: one channel open per connect (~100 in 3 s); with it: 0.2+0.4+0.8+1.6 s
    expect(opens()).toBeGreaterThanOrEqual(4);
    expect(opens()).toBeLessThanOrEqual(6);
    expect(logs.length).toBeLessThan(opens());
    expect(logs[logs.length - 1]).toMatch(/refused \d+ times in a row/);
  });

  it('a link that is down is no refusal: every connect tries again', async () => {
    const { fwd, opens } = forwardFailing('not-connected');
    const port = await fwd.listen();
    await hammer(port, 20, 1_000);
    fwd.close();
    expect(opens()).toBeGreaterThanOrEqual(20);
  });

  it('a retarget (the kernel restarted) forgets the refusals', async () => {
    const { fwd } = forwardFailing('forward-failed');
    const port = await fwd.listen();
    await hammer(port, 20, 1_000); // refused for a while now
    let opened = 0;
    fwd.retarget(() => {
      opened++;
      return Promise.resolve(new PassThrough());
    });
    const c = net.connect(port, '127.0.0.1');
    await new Promise(r => c.once('connect', r));
    await new Promise(r => setTimeout(r, 100));
    c.destroy();
    fwd.close();
    expect(opened).toBe(1);
  });
});
