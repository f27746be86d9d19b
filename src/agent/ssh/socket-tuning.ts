/**
 * Latency and throughput of the SSH transport (ssh/README.md, "Latency" and "One writev
 * per tick"): no Nagle on our own socket to the first hop, a pty session kept open on
 * every hop (sshd turns on TCP_NODELAY only then), and the writes of one tick sent
 * together. In ssh/ because it is about ssh2's transport; tunnels/relay.ts uses
 * oneWritePerTick on the channels it opens (ssh/ imports nothing from tunnels/).
 */
import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';

import type { Client } from 'ssh2';

import type { IHop } from './hop';
import type { IConnectionLogger } from './types';

/**
 * Right after `client.connect()`. `ownSocket`: ssh2 opened the TCP connection itself (the
 * first hop without a ProxyCommand), not a stream we gave it.
 */
export function tuneClientSocket(client: Client, ownSocket: boolean): void {
  // Our own TCP socket to the first hop: no Nagle either (small kernel messages
  // would otherwise wait for the server's delayed ACK, ~40 ms per round trip).
  client.setNoDelay(true);
  // ...and one writev per tick instead of one write per SSH packet (coalesceWrites).
  const own = (client as unknown as { _sock?: unknown })._sock;
  if (ownSocket && own instanceof Socket) {
    coalesceWrites(own);
  }
}

/** The pty session that makes sshd switch the connection to TCP_NODELAY. */
export function openKeeper(hop: IHop, log: Required<IConnectionLogger>): Promise<void> {
  return new Promise(resolve => {
    try {
      hop.client.exec('cat', { pty: { term: 'dumb', rows: 24, cols: 80 } }, (err, ch) => {
        if (err) {
          log.debug(`ssh: no pty session on ${hop.label} (${err.message}); interactive latency may suffer`);
          resolve();
          return;
        }
        hop.keeper = ch;
        ch.on('data', () => undefined);
        ch.stderr.on('data', () => undefined);
        ch.on('error', () => undefined);
        ch.on('close', () => {
          if (hop.keeper === ch) {
            hop.keeper = undefined;
          }
        });
        resolve();
      });
    } catch (err) {
      log.debug(`ssh: no pty session on ${hop.label}: ${(err as Error).message}`);
      resolve();
    }
  });
}

/**
 * Send what is written to a socket within one tick as one writev. ssh2 writes every SSH
 * packet on its own: a bulk upload through a jump host costs two syscalls per 32 KiB (the
 * nested hop's packet and its few-byte remainder), and a burst of small kernel messages a
 * syscall each. Corked until process.nextTick, they leave together before the event loop
 * polls for I/O again, so nothing waits for a timer or for more data.
 * Measured on the testbed (bench/README.md, one same-run comparison): upload 216 -> 321 MB/s,
 * echo round trip 0.262 -> 0.217 ms p50.
 */
export function coalesceWrites(sock: Socket): void {
  const write = sock.write.bind(sock) as (...args: unknown[]) => boolean;
  let corked = false;
  sock.write = ((...args: unknown[]) => {
    if (!corked && !sock.destroyed) {
      corked = true;
      sock.cork();
      process.nextTick(() => {
        corked = false;
        sock.uncork();
      });
    }
    return write(...args);
  }) as Socket['write'];
}

/**
 * Everything written to `stream` within one tick, as one write (the TLS records of a TLS
 * stream on an SSH channel, 16 KiB each, come one write at a time): ssh2's channel has no
 * `_writev`, so every buffer would become an SSH packet of its own, each with its cipher
 * setup, random padding and MAC. One write is split into packets of the channel's maximum
 * size (32 KiB with OpenSSH) instead. Corked until process.nextTick: nothing waits for a
 * timer or for more data.
 */
export function oneWritePerTick(stream: Duplex): void {
  const s = stream as Duplex & { _writev?: unknown };
  if (s._writev) {
    return;
  }
  // (the stream's own _write, which ssh2 implements: it splits into packets)
  const writeOne = (
    s as unknown as { _write(c: Buffer, e: string, cb: (err?: Error | null) => void): void }
  )._write.bind(s);
  s._writev = (chunks: { chunk: Buffer }[], cb: (err?: Error | null) => void): void => {
    writeOne(chunks.length === 1 ? chunks[0].chunk : Buffer.concat(chunks.map(c => c.chunk)), 'buffer', cb);
  };
  const write = s.write.bind(s) as (...args: unknown[]) => boolean;
  let corked = false;
  s.write = ((...args: unknown[]) => {
    if (!corked && !s.destroyed) {
      corked = true;
      s.cork();
      process.nextTick(() => {
        corked = false;
        s.uncork();
      });
    }
    return write(...args);
  }) as Duplex['write'];
}
