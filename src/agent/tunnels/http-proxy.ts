/**
 * HTTP and WebSocket proxying of one request (routed by ../http/proxy-server.ts) to a
 * service a session's job serves (a Dask dashboard), over the cluster's SSH link. The
 * upstream path keeps the public prefix for the session's dashboard, started with it
 * (`--dashboard-prefix`); a notebook's scheduler knows no prefix (Dask has no setting
 * for it) and gets the path without it: its links are relative, and Bokeh's websocket
 * follows the page's URL, so both resolve through the proxy. Without the prefix, the
 * session's proxy key does not reach the upstream either.
 */
import * as http from 'node:http';
import type { Duplex } from 'node:stream';

import { bridge, whenClosed } from './bridge';

/** A stream to a served port, and whether that server wants our prefix stripped. */
export interface IOpenedPort {
  stream: Duplex;
  stripPrefix: boolean;
}

/** A stream to port `port` of the session whose proxy key is `key`. */
export type OpenPort = (key: string, port: number) => Promise<IOpenedPort>;

/** What a proxied request is: the port, the upstream path with our prefix and without. */
export interface IPortRequest {
  key: string;
  port: number;
  /** The public prefix, then the rest (and the query). */
  path: string;
  /** The rest (and the query), from its `/`. */
  rest: string;
}

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
  target: IPortRequest,
  open: OpenPort
): Promise<void> {
  const { stream: channel, stripPrefix } = await open(target.key, target.port);
  let answered = false;
  const upstream = http.request(
    {
      createConnection: () => channel as any,
      method: req.method,
      path: stripPrefix ? target.rest : target.path,
      headers: { ...cleanHeaders(req.headers), host: `127.0.0.1:${target.port}`, connection: 'close' }
    },
    up => {
      answered = true;
      const headers = cleanHeaders(up.headers);
      delete headers['set-cookie']; // the dashboard has no business setting cookies on Jupyter's origin
      res.writeHead(up.statusCode ?? 502, headers);
      up.pipe(res);
    }
  );
  let failed = false;
  const fail = (err: Error): void => {
    if (answered) {
      res.destroy(); // cut mid-answer: the client sees it cut, not a made-up ending
    } else if (!failed) {
      failed = true;
      res.writeHead(502, { 'Content-Type': 'application/json' });
      res.end(
        JSON.stringify({
          error: { code: 'upstream', message: `The session's port ${target.port} did not answer: ${err.message}` }
        })
      );
    }
  };
  upstream.on('error', fail);
  // Closed before it answered, maybe before http listened: http then never hears of it
  // (and destroying the request emits nothing), so we answer ourselves.
  whenClosed(channel, () => {
    if (!answered) {
      fail(new Error('the connection closed before an answer'));
      upstream.destroy();
    }
  });
  req.pipe(upstream);
  // A relayed stream comes paused (openRelay); http attaches its reader on the next tick, first.
  channel.resume();
}

export async function proxyUpgrade(
  req: http.IncomingMessage,
  socket: Duplex,
  head: Buffer,
  target: IPortRequest,
  open: OpenPort
): Promise<void> {
  const { stream: channel, stripPrefix } = await open(target.key, target.port);
  const lines = [`${req.method} ${stripPrefix ? target.rest : target.path} HTTP/1.1`];
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
