import { promises as fs } from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';

import {
  autoOrder,
  kernelSockets,
  kernelTransport,
  ModeMemory,
  openControl,
  requestOver,
  withTimeout,
  type IRoute,
  type ResolvedMode
} from '../sessions/connectivity';
import { parseProfile } from '../../common/profile';
import type { IClusterLink } from '../cluster/link';

const CH = ['shell_port', 'iopub_port', 'stdin_port', 'control_port', 'hb_port'];

describe('connectivity', () => {
  it('auto tries via-login, node-ssh, reverse, the remembered mode first', () => {
    expect(autoOrder()).toEqual(['via-login', 'node-ssh', 'reverse']);
    expect(autoOrder('reverse')).toEqual(['reverse', 'via-login', 'node-ssh']);
    expect(autoOrder('node-ssh')).toEqual(['node-ssh', 'via-login', 'reverse']);
    expect(autoOrder('auto')).toEqual(['via-login', 'node-ssh', 'reverse']);
  });

  it('asks protocol 2 helpers for kernels on Unix sockets in every mode; protocol 1 for TCP via the login node', () => {
    expect(kernelTransport('via-login')).toEqual({ transport: 'ipc' });
    expect(kernelTransport('node-ssh')).toEqual({ transport: 'ipc' });
    expect(kernelTransport('reverse')).toEqual({ transport: 'ipc', reverse: true });
    expect(kernelTransport('via-login', 1)).toEqual({ transport: 'tcp' });
  });

  it("finds the sockets of a kernel from its connection file, only in the session's private directory", () => {
    const ports = { shell_port: 1, iopub_port: 2, stdin_port: 3, control_port: 4, hb_port: 5 };
    const file = { transport: 'ipc', ip: '/tmp/jrc-a1b2c3d4/k3', ...ports };
    const st = {
      host: 'node3',
      runtimeDir: '/tmp/jrc-a1b2c3d4',
      reverse: { status: 'up' as const, dir: '/tmp/jrc-Zx9Yw8Vu7T' }
    };
    expect(kernelSockets('node-ssh', 'abc', file, st, CH)).toEqual({
      shell_port: '/tmp/jrc-a1b2c3d4/k3-1',
      iopub_port: '/tmp/jrc-a1b2c3d4/k3-2',
      stdin_port: '/tmp/jrc-a1b2c3d4/k3-3',
      control_port: '/tmp/jrc-a1b2c3d4/k3-4',
      hb_port: '/tmp/jrc-a1b2c3d4/k3-5'
    });
    // through the tunnel: the same names in the login node's directory
    expect(kernelSockets('reverse', 'abc', file, st, CH).hb_port).toBe('/tmp/jrc-Zx9Yw8Vu7T/k3-5');
    // a connection file pointing elsewhere (another user's socket, a path of the agent's choosing) is refused
    for (const ip of ['/tmp/jrc-other/k3', '/tmp/jrc-a1b2c3d4/../x/k3', '/home/bob/k3', '/tmp/jrc-a1b2c3d4/sub/k3']) {
      expect(() => kernelSockets('node-ssh', 'abc', { ...file, ip }, st, CH)).toThrow(
        /outside the session's private directory/
      );
    }
    expect(() => kernelSockets('reverse', 'abc', file, { ...st, reverse: undefined }, CH)).toThrow(/no reverse tunnel/);
    expect(() => kernelSockets('node-ssh', 'abc', { ...file, transport: 'tcp' }, st, CH)).toThrow(/Unix sockets/);
    expect(() => kernelSockets('node-ssh', 'abc', { ...file, hb_port: 0 }, st, CH)).toThrow(/no hb_port/);
    // protocol 1 (sessions of an earlier release): its own socket names
    const old = { transport: 'ipc', ip: '/tmp/jrc-1001/s1/k-abc', ...ports };
    expect(kernelSockets('node-ssh', 'abc', old, { host: 'n' }, CH, 1).hb_port).toBe('/tmp/jrc-1001/s1/k-abc-5');
    expect(
      kernelSockets('reverse', 'abc', old, { host: 'n', reverse: { status: 'up', dir: '/tmp/jrc-1001/s1-rev' } }, CH, 1)
        .hb_port
    ).toBe('/tmp/jrc-1001/s1-rev/k-abc-5');
  });

  describe('openControl says why a mode cannot work', () => {
    const link = { forwardOut: async () => new PassThrough() } as unknown as IClusterLink;
    const route = (mode: ResolvedMode, state: IRoute['state'], protocol = 2): IRoute => ({
      mode,
      state,
      protocol,
      host: state.host
    });
    it('via-login needs the relay (protocol 2) or a TCP control port (protocol 1)', async () => {
      await expect(openControl(route('via-login', { host: 'node3', relayPort: null }), link)).rejects.toThrow(
        /node3 has no relay/
      );
      await expect(openControl(route('via-login', { host: 'node3', controlPort: null }, 1), link)).rejects.toThrow(
        /node3 does not listen on TCP/
      );
    });
    it('reverse needs a tunnel that is up, and names its error', async () => {
      await expect(
        openControl(
          route('reverse', { host: 'node4', reverse: { status: 'failed', error: 'Host key verification failed.' } }),
          link
        )
      ).rejects.toThrow(/no reverse tunnel from node4: Host key verification failed/);
    });
    it('node-ssh needs a link that can reach nodes', async () => {
      await expect(
        openControl(route('node-ssh', { host: 'node3', controlSocket: '/tmp/x/control.sock' }), link)
      ).rejects.toThrow(/cannot open SSH connections to nodes/);
    });
  });

  it('withTimeout gives up and destroys a stream that arrives late', async () => {
    const late = new PassThrough();
    let deliver!: (s: PassThrough) => void;
    const p = new Promise<PassThrough>(r => (deliver = r));
    await expect(withTimeout(p, 30, 'connecting to node4')).rejects.toThrow(
      'connecting to node4: no answer within 0.03 s'
    );
    deliver(late);
    await new Promise(r => setImmediate(r));
    expect(late.destroyed).toBe(true);
  });

  it('remembers the working mode per profile in a private file', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'jrc-conn-'));
    try {
      const m = new ModeMemory(dir);
      expect(await m.get('p')).toBeUndefined();
      await m.set('p', 'reverse');
      await m.set('q', 'node-ssh');
      const again = new ModeMemory(dir);
      expect(await again.get('p')).toBe('reverse');
      expect(await again.get('q')).toBe('node-ssh');
      const st = await fs.stat(path.join(dir, 'connectivity.json'));
      expect(st.mode & 0o777).toBe(0o600);
      // a hand-edited file with nonsense: ignored, not trusted
      await fs.writeFile(path.join(dir, 'connectivity.json'), JSON.stringify({ p: 'telepathy', q: 'via-login' }));
      const third = new ModeMemory(dir);
      expect(await third.get('p')).toBeUndefined();
      expect(await third.get('q')).toBe('via-login');
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it('profiles take an optional reverseHost, a plain host name', () => {
    const base = { name: 'p', ssh: { host: 'login' }, resources: {} };
    expect(parseProfile({ ...base, connectivity: 'reverse', reverseHost: 'login01.cluster' }, 0)).toMatchObject({
      connectivity: 'reverse',
      reverseHost: 'login01.cluster'
    });
    expect(parseProfile(base, 0).reverseHost).toBeUndefined();
    expect(() => parseProfile({ ...base, reverseHost: 'login; rm -rf ~' }, 0)).toThrow(
      /"reverseHost" has an invalid value/
    );
    expect(() => parseProfile({ ...base, reverseHost: '-oProxyCommand=x' }, 0)).toThrow(
      /"reverseHost" has an invalid value/
    );
  });
});

describe('a request to the helper', () => {
  it('fails at once, naming it, when the helper closed the stream before http listened', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'jrc-req-'));
    const refusing = net.createServer(s => s.destroy());
    const sock = path.join(dir, 'control.sock');
    await new Promise<void>(r => refusing.listen(sock, r));
    try {
      const stream = net.connect(sock);
      stream.on('error', () => undefined);
      await new Promise(r => stream.once('close', r));
      const started = Date.now();
      await expect(requestOver(stream, 'GET', '/health', 't', undefined, 30_000, 'node1')).rejects.toThrow(
        'the helper closed the connection before answering GET /health'
      );
      expect(Date.now() - started).toBeLessThan(5000); // not the 30 s timeout
    } finally {
      await new Promise(r => refusing.close(r));
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
