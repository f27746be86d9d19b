import * as net from 'node:net';
import { Duplex } from 'node:stream';

import { coalesceWrites, oneWritePerTick } from '../ssh/socket-tuning';

/** A connected pair of real TCP sockets on loopback. */
async function pair(): Promise<{ client: net.Socket; server: net.Socket; close: () => void }> {
  const srv = net.createServer();
  await new Promise<void>(r => srv.listen(0, '127.0.0.1', r));
  const accepted = new Promise<net.Socket>(r => srv.once('connection', r));
  const client = net.connect((srv.address() as net.AddressInfo).port, '127.0.0.1');
  await new Promise(r => client.once('connect', r));
  const server = await accepted;
  return {
    client,
    server,
    close: () => {
      client.destroy();
      server.destroy();
      srv.close();
    }
  };
}

describe('coalesceWrites', () => {
  it('sends the writes of one tick in one writev, in order, and later ticks again', async () => {
    const { client, server, close } = await pair();
    try {
      coalesceWrites(client);
      const writev = jest.spyOn(client as unknown as { _writev: (...a: unknown[]) => void }, '_writev');
      const write = jest.spyOn(client as unknown as { _write: (...a: unknown[]) => void }, '_write');
      let got = '';
      server.on('data', (d: Buffer) => (got += d.toString()));

      const callbacks: number[] = [];
      client.write('one,', () => callbacks.push(1));
      client.write(Buffer.from('two,'), () => callbacks.push(2));
      client.write('three;', 'utf8', () => callbacks.push(3));
      expect(writev).not.toHaveBeenCalled(); // still corked within this tick
      await new Promise(r => process.nextTick(r));
      expect(writev).toHaveBeenCalledTimes(1);
      expect((writev.mock.calls[0][0] as unknown[]).length).toBe(3);

      client.write('four;');
      await new Promise(r => setImmediate(r));
      expect(writev.mock.calls.length + write.mock.calls.length).toBe(2);

      client.end('five.');
      await new Promise(r => server.once('end', r));
      expect(got).toBe('one,two,three;four;five.');
      expect(callbacks).toEqual([1, 2, 3]);
    } finally {
      close();
    }
  });

  it('leaves a destroyed socket alone', async () => {
    const { client, close } = await pair();
    try {
      coalesceWrites(client);
      client.destroy();
      const cork = jest.spyOn(client, 'cork');
      client.write('late', () => undefined);
      expect(cork).not.toHaveBeenCalled();
    } finally {
      close();
    }
  });
});

describe('oneWritePerTick', () => {
  it('hands what is written within one tick to the stream as one write, in order', async () => {
    const writes: string[] = [];
    const stream = new Duplex({
      read: () => undefined,
      write: (c: Buffer, _e, cb) => {
        writes.push(c.toString());
        cb();
      }
    });
    oneWritePerTick(stream);
    stream.write(Buffer.from('a'.repeat(3)));
    stream.write(Buffer.from('b'));
    stream.write(Buffer.from('c'));
    await new Promise(r => setImmediate(r));
    stream.write(Buffer.from('d'));
    await new Promise(r => setImmediate(r));
    // without it, every buffer was its own write (an SSH packet each on an ssh2 channel)
    expect(writes).toEqual(['aaabc', 'd']);
  });
});
