/**
 * The agent's proxy to what sessions serve (the Dask dashboard), on a socket of its own:
 * no request to it can reach the agent's API, whatever its path or encoding, because this
 * server knows one route only:
 *
 *   *   /proxy/<key>/<port>/<rest>      HTTP and WebSocket to the port the session with
 *                                        proxy key <key> reported, on its node only
 *
 * <key> is the session's proxy key: the capability in the proxied URL (docs/security.md,
 * "The browser side"). Paths are taken raw: a `.` or `..` segment, raw or percent-encoded
 * once or twice, is refused, never normalised; encoded separators (`%2F`) pass unchanged.
 */
import * as http from 'node:http';
import type { Duplex } from 'node:stream';

import { proxiedPrefix } from '../../common/routes';
import { proxyHttp, proxyUpgrade, type IPortRequest, type OpenPort } from '../tunnels/http-proxy';
import { listenPrivately } from './private-socket';

export const PROXY_PATH_RE = /^\/proxy\/([A-Za-z0-9_-]{43})\/([0-9]{1,5})(\/[^?#]*)?$/;

export interface IProxyServer {
  readonly socketPath: string;
  close(): Promise<void>;
}

/** A `.` or `..` segment in a raw path, also when percent-encoded (once or twice). */
export function hasDotSegment(rawPath: string): boolean {
  let p = rawPath;
  for (let i = 0; i < 3; i++) {
    if (p.split(/[/\\]/).some(seg => seg === '.' || seg === '..')) {
      return true;
    }
    let decoded: string;
    try {
      decoded = decodeURIComponent(p);
    } catch {
      return true; // not valid percent-encoding: nothing we forward
    }
    if (decoded === p) {
      return false;
    }
    p = decoded;
  }
  return true; // encoded three times or more: no dashboard links like that
}

/** The proxied request's target, or an error message (400/404) for the client. */
export function proxyTarget(rawUrl: string, baseUrl: string): IPortRequest | { status: number; message: string } {
  const q = rawUrl.indexOf('?');
  const rawPath = q < 0 ? rawUrl : rawUrl.slice(0, q);
  const search = q < 0 ? '' : rawUrl.slice(q);
  const m = rawPath.match(PROXY_PATH_RE);
  if (!m) {
    return { status: 404, message: `No proxy route ${rawPath.slice(0, 200)}.` };
  }
  const [, key, port, rest = '/'] = m;
  if (hasDotSegment(rest)) {
    return { status: 400, message: 'Dot segments (. and ..) are not allowed in proxied paths.' };
  }
  return {
    key,
    port: Number(port),
    path: `${proxiedPrefix(baseUrl, key)}/${Number(port)}${rest}${search}`,
    rest: `${rest}${search}`
  };
}

function refuse(res: http.ServerResponse, status: number, message: string): void {
  const body = JSON.stringify({ error: { code: status === 404 ? 'not-found' : 'invalid', message } });
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

export async function startProxyServer(socketPath: string, baseUrl: string, open: OpenPort): Promise<IProxyServer> {
  const server = http.createServer((req, res) => {
    const target = proxyTarget(req.url ?? '/', baseUrl);
    if ('status' in target) {
      refuse(res, target.status, target.message);
      return;
    }
    proxyHttp(req, res, target, open).catch((err: Error & { status?: number }) => {
      if (!res.headersSent) {
        refuse(res, err.status ?? 400, err.message);
      } else {
        res.destroy();
      }
    });
  });
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    const target = proxyTarget(req.url ?? '/', baseUrl);
    if ('status' in target) {
      socket.end(`HTTP/1.1 ${target.status} Refused\r\nConnection: close\r\n\r\n`);
      return;
    }
    proxyUpgrade(req, socket, head, target, open).catch(() => socket.destroy());
  });
  await listenPrivately(server, socketPath);
  return {
    socketPath,
    close: () =>
      new Promise<void>(resolve => {
        server.close(() => resolve());
        server.closeAllConnections();
      })
  };
}
