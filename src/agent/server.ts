/**
 * The agent's HTTP server on a private Unix socket. Routes are plain functions of the
 * request; the server extension in front of it has already authenticated the user.
 */
import { promises as fs } from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';

import type { IAgentHealth, IApiError } from '../common/api';
import { ssh2Info } from './ssh2-info';

declare const AGENT_VERSION: string | undefined;

export interface IAgentServerOptions {
  socketPath: string;
}

export interface IAgentServer {
  readonly socketPath: string;
  close(): Promise<void>;
}

const startedAt = Date.now();

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const data = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(data),
    'Cache-Control': 'no-store'
  });
  res.end(data);
}

function sendError(
  res: http.ServerResponse,
  status: number,
  code: string,
  message: string
): void {
  const body: IApiError = { error: { code, message } };
  sendJson(res, status, body);
}

export function health(): IAgentHealth {
  return {
    status: 'ok',
    agentVersion: typeof AGENT_VERSION === 'string' ? AGENT_VERSION : 'dev',
    nodeVersion: process.version,
    pid: process.pid,
    uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
    ssh: { library: 'ssh2', ...ssh2Info() }
  };
}

function route(req: http.IncomingMessage, res: http.ServerResponse): void {
  const url = new URL(req.url ?? '/', 'http://agent');
  if (url.pathname === '/api/health') {
    if (req.method !== 'GET') {
      sendError(res, 405, 'method-not-allowed', `${req.method} is not allowed on ${url.pathname}.`);
      return;
    }
    sendJson(res, 200, health());
    return;
  }
  sendError(res, 404, 'not-found', `No agent route ${url.pathname}.`);
}

/** Refuse to start on a path some other live process is serving. */
async function removeStaleSocket(socketPath: string): Promise<void> {
  let stat;
  try {
    stat = await fs.lstat(socketPath);
  } catch {
    return;
  }
  if (!stat.isSocket()) {
    throw new Error(`${socketPath} exists and is not a socket; refusing to replace it.`);
  }
  const live = await new Promise<boolean>(resolve => {
    const probe = http.get({ socketPath, path: '/api/health', timeout: 2000 }, r => {
      r.resume();
      resolve(true);
    });
    probe.on('error', () => resolve(false));
    probe.on('timeout', () => {
      probe.destroy();
      resolve(false);
    });
  });
  if (live) {
    throw new Error(`Another agent is already listening on ${socketPath}.`);
  }
  await fs.unlink(socketPath);
}

export async function startAgentServer(options: IAgentServerOptions): Promise<IAgentServer> {
  const { socketPath } = options;
  const dir = path.dirname(socketPath);
  const dirStat = await fs.stat(dir);
  // The socket is the agent's only access control: its directory must be ours alone.
  if ((dirStat.mode & 0o077) !== 0 || (process.getuid && dirStat.uid !== process.getuid())) {
    throw new Error(`${dir} must be owned by this user with mode 0700.`);
  }
  await removeStaleSocket(socketPath);

  const server = http.createServer((req, res) => {
    try {
      route(req, res);
    } catch (err) {
      sendError(res, 500, 'internal', err instanceof Error ? err.message : String(err));
    }
  });
  const oldUmask = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } finally {
    process.umask(oldUmask);
  }
  await fs.chmod(socketPath, 0o600);

  return {
    socketPath,
    close: () =>
      new Promise<void>(resolve => {
        server.close(() => resolve());
        server.closeAllConnections();
      })
  };
}
