/**
 * What the session manager trusts of a running helper (issue 9, items 4 and 7), with a
 * fake cluster link that records every file read and every stream opened:
 * - a helper whose heartbeat is stale is not connected to (what it listened on may be
 *   someone else's by now);
 * - a session started with protocol 2 is never talked to as protocol 1 (no downgrade);
 *   one started by an earlier release (protocol 1) is, with a warning;
 * - files of the cluster side are read with a size bound, connection files only at the
 *   path the helper writes them to.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Duplex } from 'node:stream';

import { FIELD_SEPARATOR } from '../schedulers/slurm';
import { makeSessionTls } from '../tls/x509';
import type { ICommandResult } from '../schedulers/types';
import type { IClusterLink } from '../cluster/link';
import { SessionManager } from '../sessions/manager';
import { slurmManager } from './helpers/slurm-manager';

class FakeLink implements IClusterLink {
  /** what state.json says; `heartbeatAge` in seconds */
  helper: Record<string, unknown> & { heartbeatAge: number } = {
    heartbeatAge: 1,
    status: 'ready',
    host: 'node1',
    version: 2
  };
  readonly reads: { path: string; maxBytes?: number }[] = [];
  readonly opened: string[] = [];

  async exec(command: string): Promise<ICommandResult> {
    if (command.includes('printf %s "$HOME"')) {
      return { code: 0, stdout: '/home/u', stderr: '' };
    }
    if (command.includes('mkdir -p')) {
      return { code: 0, stdout: 'helper-present\n', stderr: '' };
    }
    if (command.startsWith('sbatch')) {
      return { code: 0, stdout: '7\n', stderr: '' };
    }
    if (command.includes('squeue')) {
      return {
        code: 0,
        stdout: ['7', 'RUNNING', 'None', 'node1', '59:00', 'N/A'].join(FIELD_SEPARATOR) + '\n',
        stderr: ''
      };
    }
    return { code: 0, stdout: '', stderr: '' };
  }
  async writeFile(): Promise<void> {}
  async readFile(p: string, maxBytes?: number): Promise<Buffer> {
    this.reads.push({ path: p, maxBytes });
    if (p.endsWith('/state.json')) {
      const { heartbeatAge, ...rest } = this.helper;
      return Buffer.from(
        JSON.stringify({ ...rest, heartbeat: Date.now() / 1000 - heartbeatAge, relayPort: 4242, controlPort: 4343 })
      );
    }
    if (p.endsWith('/config.json')) {
      const t = makeSessionTls('ab12cd');
      return Buffer.from(JSON.stringify({ token: 't'.repeat(64), tls: { ca: t.caCert, cert: t.cert, key: t.key } }));
    }
    throw new Error('ENOENT');
  }
  async forwardOut(host: string, port: number): Promise<Duplex> {
    this.opened.push(`${host}:${port}`);
    // takes what is written, answers nothing, then fails
    const s = new Duplex({ read: () => undefined, write: (_c, _e, cb) => cb() });
    setImmediate(() => s.destroy(new Error('nothing listens here')));
    return s;
  }
  onClose(): void {}
  close(): void {}
}

let dir: string;
let link: FakeLink;

async function manager(helperText: string): Promise<SessionManager> {
  await fs.writeFile(path.join(dir, 'helper.py'), helperText);
  return slurmManager(dir, link);
}

async function runningSession(m: SessionManager): Promise<string> {
  const s = await m.submit('hpc');
  for (let i = 0; i < 200 && m.get(s.id)?.state !== 'running'; i++) {
    await new Promise(r => setTimeout(r, 20));
  }
  expect(m.get(s.id)?.state).toBe('running');
  return s.id;
}

beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'rc-protocol-'));
  link = new FakeLink();
});
afterEach(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

describe('what the agent trusts of a running helper', () => {
  it('connects to nothing a helper with a stale heartbeat reported', async () => {
    const m = await manager('PROTOCOL_VERSION = 2\n');
    try {
      // the job runs, but its helper has been silent for 200 s (killed, node hung)
      link.helper.heartbeatAge = 200;
      const sid = await runningSession(m);
      expect(m.get(sid)?.reason).toMatch(/no heartbeat from the helper/);
      await expect(m.startKernel(sid)).rejects.toThrow(/has not written its heartbeat for 2\d\d s/);
      expect(link.opened).toEqual([]);
      // alive again: the same request goes to the helper's relay (which the fake refuses)
      link.helper.heartbeatAge = 1;
      await expect(m.startKernel(sid)).rejects.toThrow(/relay/);
      expect(link.opened).toEqual(['node1:4242']);
    } finally {
      await m.shutdown();
    }
  });

  it('never talks to a protocol 2 session as protocol 1 (no downgrade)', async () => {
    const m = await manager('PROTOCOL_VERSION = 2\n');
    try {
      link.helper.version = 1; // a state.json claiming the old protocol
      const sid = await runningSession(m);
      await expect(m.startKernel(sid)).rejects.toThrow(
        /speaks protocol 1, but the session was started with protocol 2/
      );
      expect(link.opened).toEqual([]); // not the old TCP control port either
      expect(m.get(sid)?.warnings).toBeUndefined();
    } finally {
      await m.shutdown();
    }
  });

  it('keeps talking to a session of an earlier release (protocol 1), and says it is unprotected', async () => {
    const m = await manager('# a helper of protocol 1: no PROTOCOL_VERSION\n');
    try {
      link.helper.version = 1;
      const sid = await runningSession(m);
      expect(m.get(sid)?.warnings?.[0]).toMatch(/earlier version .* other users of the cluster can connect to/);
      await expect(m.startKernel(sid)).rejects.toThrow(/nothing listens here/);
      expect(link.opened).toEqual(['node1:4343']); // its TCP control channel, as it expects
    } finally {
      await m.shutdown();
    }
  });

  it("reads the helper's files with a size bound, a connection file only where the helper writes it", async () => {
    const m = await manager('PROTOCOL_VERSION = 2\n');
    try {
      const sid = await runningSession(m);
      await m.adoptKernel(sid, 'k1').catch(() => undefined);
      const state = link.reads.find(r => r.path.endsWith('/state.json'));
      const config = link.reads.find(r => r.path.endsWith('/config.json'));
      expect(state?.maxBytes).toBe(1 << 20);
      expect(config?.maxBytes).toBe(64 * 1024);
      expect(link.reads.every(r => r.maxBytes !== undefined)).toBe(true);
    } finally {
      await m.shutdown();
    }
  });
});
