/**
 * The agent's proxy and API routes: apart, and taken raw (issue 10). What a proxied path
 * can encode, it cannot turn into another route.
 */
import { promises as fs } from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import * as net from 'node:net';
import { PassThrough } from 'node:stream';

import { hasDotSegment, proxyTarget, startProxyServer } from '../http/proxy-server';
import { startAgentServer } from '../server';

const KEY = 'K'.repeat(43);

function request(socketPath: string, urlPath: string, method = 'GET'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, path: urlPath, method }, res => {
      let data = '';
      res.on('data', c => (data += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: data }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('proxied paths', () => {
  it('refuse dot segments however they are encoded, and keep encoded separators', () => {
    for (const p of [
      '/..',
      '/a/../b',
      '/%2e%2e/x',
      '/%2E%2e/x',
      '/.%2e/x',
      '/%252e%252e/x',
      '/a%2F..%2Fb',
      '/a/%2e',
      '/a\\..\\b',
      '/%25252e%25252e/x',
      '/%zz'
    ]) {
      expect([p, hasDotSegment(p)]).toEqual([p, true]);
    }
    for (const p of ['/status', '/info/worker/tls%3A%2F%2F127.0.0.1%3A40001.html', '/a/.b/c..d', '/...', '/x%20y']) {
      expect([p, hasDotSegment(p)]).toEqual([p, false]);
    }
  });

  it('map to the session prefix with the rest and the query unchanged, or say why not', () => {
    expect(proxyTarget(`/proxy/${KEY}/0/info/worker/tls%3A%2F%2Fa.html?x=1`, '/base/')).toEqual({
      key: KEY,
      port: 0,
      path: `/base/remote-cluster/proxied/${KEY}/0/info/worker/tls%3A%2F%2Fa.html?x=1`,
      rest: '/info/worker/tls%3A%2F%2Fa.html?x=1'
    });
    expect(proxyTarget(`/proxy/${KEY}/12`, '/')).toMatchObject({ port: 12, rest: '/' });
    expect(proxyTarget(`/proxy/${KEY}/0/%2e%2e/%2e%2e/api/v1/sessions`, '/')).toMatchObject({ status: 400 });
    expect(proxyTarget('/api/v1/sessions', '/')).toMatchObject({ status: 404 });
    expect(proxyTarget('/proxy/short/0/', '/')).toMatchObject({ status: 404 });
    expect(proxyTarget(`/proxy/${KEY}/login:22/`, '/')).toMatchObject({ status: 404 });
  });
});

describe('the proxy socket and the API socket', () => {
  let dir: string;
  const opened: string[] = [];
  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('serve one route each: nothing proxied reaches the API, no API path reaches the proxy', async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'jrc-split-'));
    await fs.chmod(dir, 0o700);
    const api = await startAgentServer({ socketPath: path.join(dir, 'agent.sock') });
    const proxy = await startProxyServer(path.join(dir, 'proxy.sock'), '/', async (key, port) => {
      opened.push(`${key}:${port}`);
      const s = new PassThrough();
      setImmediate(() => s.destroy(new Error('no upstream in this test')));
      return { stream: s, stripPrefix: false };
    });
    try {
      // the API socket has no proxy route, raw or normalised
      for (const p of [`/proxy/${KEY}/0/status`, `/proxy/${KEY}/0/../../api/v1/health`]) {
        expect((await request(api.socketPath, p)).status).toBe(404);
      }
      // and does not normalise its own paths either
      expect((await request(api.socketPath, '/api/v1/x/../health')).status).toBe(404);
      expect((await request(api.socketPath, '/api/v1/health')).status).toBe(200);
      // the proxy socket has no API
      for (const p of [
        '/api/v1/health',
        '/api/v1/sessions',
        `/proxy/${KEY}/0/../../api/v1/health`,
        `/proxy/${KEY}/0/%2e%2e%2f%2e%2e%2fapi`
      ]) {
        const r = await request(proxy.socketPath, p, 'POST');
        expect([p, r.status]).toEqual([p, p.startsWith('/proxy/') ? 400 : 404]);
      }
      expect(opened).toEqual([]); // nothing of those was opened upstream
      await request(proxy.socketPath, `/proxy/${KEY}/0/status`);
      expect(opened).toEqual([`${KEY}:0`]);
    } finally {
      await api.close();
      await proxy.close();
    }
  });
});

describe('the upstream path', () => {
  let dir: string;
  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it("keeps our prefix for the session's dashboard and strips it for a notebook's scheduler, HTTP and WebSocket", async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'jrc-strip-'));
    // the upstream: says which path it got (a notebook's dashboard knows no prefix)
    const seen: string[] = [];
    const upstream = http.createServer((req, res) => {
      seen.push(`GET ${req.url}`);
      res.end(req.url);
    });
    upstream.on('upgrade', (req, socket: net.Socket) => {
      seen.push(`WS ${req.url}`);
      socket.end('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
    });
    const upPath = path.join(dir, 'up.sock');
    await new Promise<void>(r => upstream.listen(upPath, r));
    const proxy = await startProxyServer(path.join(dir, 'proxy.sock'), '/base/', async (_key, port) => ({
      stream: net.connect(upPath),
      stripPrefix: port !== 0
    }));
    const upgrade = (urlPath: string) =>
      new Promise<number>((resolve, reject) => {
        const req = http.request({
          socketPath: proxy.socketPath,
          path: urlPath,
          headers: { Connection: 'Upgrade', Upgrade: 'websocket' }
        });
        req.on('upgrade', (res, socket) => {
          socket.destroy();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        req.end();
      });
    try {
      expect((await request(proxy.socketPath, `/proxy/${KEY}/0/status?x=1`)).body).toBe(
        `/base/remote-cluster/proxied/${KEY}/0/status?x=1`
      );
      expect((await request(proxy.socketPath, `/proxy/${KEY}/3/status?x=1`)).body).toBe('/status?x=1');
      expect(await upgrade(`/proxy/${KEY}/3/status/ws`)).toBe(101);
      expect(await upgrade(`/proxy/${KEY}/0/status/ws`)).toBe(101);
      expect(seen).toEqual([
        `GET /base/remote-cluster/proxied/${KEY}/0/status?x=1`,
        'GET /status?x=1',
        'WS /status/ws',
        `WS /base/remote-cluster/proxied/${KEY}/0/status/ws`
      ]);
    } finally {
      await proxy.close();
      await new Promise(r => upstream.close(r));
    }
  });
});

describe('a stream the far end closed before the proxy used it', () => {
  // What the relay hands over when a session's server refuses at once (a web port another
  // user took since the helper's scan): a "200", then the close, maybe before http listens.
  let dir: string;
  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  async function closedStream(upPath: string): Promise<net.Socket> {
    const s = net.connect(upPath);
    s.on('error', () => undefined);
    await new Promise(r => s.once('close', r));
    return s;
  }

  it('gets a 502 at once over HTTP and a closed socket over WebSocket, never a request left waiting', async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'jrc-closed-'));
    const refusing = net.createServer(s => s.destroy());
    const upPath = path.join(dir, 'up.sock');
    await new Promise<void>(r => refusing.listen(upPath, r));
    const proxy = await startProxyServer(path.join(dir, 'proxy.sock'), '/base/', async () => ({
      stream: await closedStream(upPath),
      stripPrefix: true
    }));
    const withinSeconds = <T>(p: Promise<T>): Promise<T> =>
      Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error('left waiting')), 5000))]);
    try {
      const r = await withinSeconds(request(proxy.socketPath, `/proxy/${KEY}/8123/`));
      expect(r.status).toBe(502);
      expect(JSON.parse(r.body).error.message).toMatch(/port 8123 did not answer: the connection closed/);
      const ws = await withinSeconds(
        new Promise<string>(resolve => {
          const req = http.request({
            socketPath: proxy.socketPath,
            path: `/proxy/${KEY}/8123/ws`,
            headers: { Connection: 'Upgrade', Upgrade: 'websocket' }
          });
          req.on('upgrade', () => resolve('upgraded'));
          req.on('error', err => resolve(err.message));
          req.end();
        })
      );
      expect(ws).toBe('socket hang up');
    } finally {
      await proxy.close();
      await new Promise(r => refusing.close(r));
    }
  });
});
