/**
 * HTTP and WebSocket proxying of one request (routed by ../http/proxy-server.ts) to a
 * service a session's job serves (the Dask dashboard), over the cluster's SSH link. The
 * upstream path keeps the public prefix, because the dashboard was started with it
 * (`--dashboard-prefix`), so its own links and websockets resolve through the proxy.
 */
import * as http from 'node:http';
import type { Duplex } from 'node:stream';

import { bridge } from './bridge';

/** A stream to port `port` of the session whose proxy key is `key`. */
export type OpenPort = (key: string, port: number) => Promise<Duplex>;

/** Headers that describe one hop and must not be forwarded as they are. */
const HOP_HEADERS = [
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'cookie',
  'authorization'
];

function cleanHeaders(h: http.IncomingHttpHeaders): http.OutgoingHttpHeaders {
  const out: http.OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(h)) {
    if (!HOP_HEADERS.includes(k)) {
      out[k] = v;
    }
  }
  return out;
}

export async function proxyHttp(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  target: { key: string; port: number; path: string },
  open: OpenPort
): Promise<void> {
  const channel = await open(target.key, target.port);
  const upstream = http.request(
    {
      createConnection: () => channel as any,
      method: req.method,
      path: target.path,
      headers: { ...cleanHeaders(req.headers), host: `127.0.0.1:${target.port}`, connection: 'close' }
    },
    up => {
      const headers = cleanHeaders(up.headers);
      delete headers['set-cookie']; // the dashboard has no business setting cookies on Jupyter's origin
      res.writeHead(up.statusCode ?? 502, headers);
      up.pipe(res);
    }
  );
  upstream.on('error', err => {
    if (!res.headersSent) {
      res.writeHead(502, { 'Content-Type': 'application/json' });
    }
    res.end(
      JSON.stringify({
        error: { code: 'upstream', message: `The session's port ${target.port} did not answer: ${err.message}` }
      })
    );
  });
  req.pipe(upstream);
  // A relayed stream comes paused (openRelay); http attaches its reader on the next tick, first.
  channel.resume();
}

export async function proxyUpgrade(
  req: http.IncomingMessage,
  socket: Duplex,
  head: Buffer,
  target: { key: string; port: number; path: string },
  open: OpenPort
): Promise<void> {
  const channel = await open(target.key, target.port);
  const lines = [`${req.method} ${target.path} HTTP/1.1`];
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i];
    const lower = name.toLowerCase();
    if (lower === 'host' || lower === 'cookie' || lower === 'authorization') {
      continue;
    }
    lines.push(`${name}: ${req.rawHeaders[i + 1]}`);
  }
  lines.push(`Host: 127.0.0.1:${target.port}`);
  channel.write(lines.join('\r\n') + '\r\n\r\n');
  if (head.length) {
    channel.write(head);
  }
  bridge(socket, channel);
}
