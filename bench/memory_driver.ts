/**
 * Bench driver for bench/forward_memory.py: relay_driver.ts's kernel forward (a
 * LocalForward whose every connection is direct-tcpip + mutual TLS + CONNECT to the
 * helper's relay, as a via-login kernel channel), plus a measuring line protocol on stdin:
 * each "measure" line forces two garbage collections and prints the process's memory.
 *
 *   node --expose-gc memory_driver.js '{...relay_driver.ts arguments...}'
 *
 * Prints {"ports": [LOCAL...]} once listening, then one JSON line per "measure".
 */
import { createInterface } from 'node:readline';
import { getHeapSpaceStatistics } from 'node:v8';

import { benchConnection, relayForwards, runDriver, type RelayDriverArgs } from './driver_common';

async function main(): Promise<void> {
  const args = JSON.parse(process.argv[2]) as RelayDriverArgs;
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) {
    throw new Error('run with node --expose-gc');
  }
  const conn = benchConnection(args);
  await conn.connect();
  const forwards = relayForwards(conn, args);
  const ports: number[] = [];
  for (const f of forwards) {
    ports.push(await f.listen());
  }
  process.stdout.write(JSON.stringify({ ports }) + '\n');
  const lines = createInterface({ input: process.stdin });
  lines.on('line', () => {
    // Twice, a tick apart: the first pass may only queue finalizers.
    gc();
    setImmediate(() => {
      gc();
      const m = process.memoryUsage();
      // per V8 space: objects (old space) apart from compiled code and metadata
      const spaces = Object.fromEntries(getHeapSpaceStatistics().map(x => [x.space_name, x.space_used_size]));
      process.stdout.write(JSON.stringify({ heapUsed: m.heapUsed, rss: m.rss, external: m.external, spaces }) + '\n');
    });
  });
  lines.on('close', () => {
    forwards.forEach(f => f.close());
    void conn.close().then(() => process.exit(0));
  });
}

runDriver(main);
