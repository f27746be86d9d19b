/**
 * The agent's HTTP server on a private Unix socket. The server extension in front of it
 * has already authenticated the user; this socket (0600 in a 0700 directory) is the
 * agent's only access control.
 *
 *   GET    /api/v1/health
 *   GET    /api/v1/profiles                       profiles from the settings file (+ errors)
 *   POST   /api/v1/profiles/<name>/estimates      when each candidate partition would start
 *   GET    /api/v1/ssh-hosts                      concrete Host aliases of ~/.ssh/config, resolved
 *   GET    /api/v1/sessions                       POST {profile, resources?}  -> new session
 *   GET    /api/v1/sessions/<id>                  DELETE -> cancel (ended sessions: forget)
 *   POST   /api/v1/sessions/<id>/kernels          {kernelId?, kernelspec?} -> connection info on 127.0.0.1
 *   POST   /api/v1/sessions/<id>/workers          {count} -> Dask worker jobs submitted (their ids)
 *   POST   /api/v1/sessions/<id>/extend           {minutes} -> the batch system's answer (tried once)
 *   POST   /api/v1/sessions/<id>/relaunch         {continue?, resources?} -> a new session, same profile (and resources)
 *   POST   /api/v1/sessions/<id>/activity         {keep?} -> the session (its helper's idle clock restarted)
 *   POST   /api/v1/sessions/<id>/web-ports        {port} -> the served port (a web server of the session, by number)
 *   GET    /api/v1/sessions/<id>/logs             the ends of its log files on the cluster (job, kernels, Dask)
 *   POST   /api/v1/sessions/<id>/terminals        {rows?, cols?} -> a new shell in the job (sessions/terminals.ts)
 *   GET    /api/v1/sessions/<id>/terminals        its shells
 *   DELETE /api/v1/sessions/<id>/terminals/<tid>  end one
 *   WS     /api/v1/sessions/<id>/terminals/<tid>/stream  terminado's messages to and from that shell
 *   POST   /api/v1/profiles/<name>/terminals      {rows?, cols?} -> a shell on the cluster's login node
 *   GET    /api/v1/profiles/<name>/terminals      its login-node shells (cluster/login-terminals.ts)
 *   DELETE /api/v1/profiles/<name>/terminals/<tid>  end one
 *   WS     /api/v1/profiles/<name>/terminals/<tid>/stream  as a session's terminal
 *   GET|PUT|POST|PATCH|DELETE /api/v1/profiles/<name>/files/<path>  the cluster drive (http/drive-routes.ts)
 *   GET|POST|DELETE /api/v1/profiles/<name>/checkpoints/<path>, GET .../download/<path>
 *   POST   /api/v1/sessions/<id>/notebooks        {path}: that notebook's stable kernel starts in this session
 *   POST   /api/v1/profiles/<name>/kernel-session {notebookPath?} -> {session}: where a stable kernel starts (sessions/notebook-sessions.ts)
 *   GET    /api/v1/kernels/<kid>                  alive / dead / unknown (link down)
 *   POST   /api/v1/kernels/<kid>/signal           {signal}
 *   POST   /api/v1/kernels/<kid>/restart          stop it; the next start of <kid> is its restart
 *   POST   /api/v1/kernels/<kid>/detach           forget it here, leave it running (for attach)
 *   DELETE /api/v1/kernels/<kid>                  shut it down
 *   POST   /api/v1/prompts/<id>                   the user's answer to a prompt
 *   GET    /api/v1/connections                    each profile's SSH link state
 *   POST   /api/v1/connections/<profile>/sign-in  the user signs in (after sign-in-needed)
 *   WS     /api/v1/events                         session/connection/prompt events
 * Errors are JSON {error: {code, message}}: 404 what is named does not exist (any more),
 * 409 it exists but not in a state for this (a session not running yet), 400 the request
 * itself is wrong, 503/500 the agent could not do it now. Callers act on the difference
 * (the provisioner gives a kernel up for gone only on 404/409).
 * The proxy to what sessions serve has a socket of its own (proxy-server.ts).
 */
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Duplex } from 'node:stream';

import { WebSocketServer, type WebSocket } from 'ws';

import type { AgentEvent, IAgentHealth, IApiError } from '../common/api';
import {
  parseAddWorkersRequest,
  parseExtendRequest,
  parseActivityRequest,
  parseWebPortRequest,
  parseTerminalRequest,
  parseRelaunchRequest,
  parseKernelRequest,
  parsePromptAnswer,
  parseSignalRequest,
  parseSubmitRequest,
  parseNotebookPath
} from './http/requests';
import { ConflictError, InvalidRequestError, NotFoundError, SchedulerUnavailableError } from './schedulers/types';
import type { SessionManager } from './sessions/manager';
import { streamTerminal } from './sessions/terminals';
import type { PromptBroker } from './sessions/prompts';
import { listConfiguredHosts } from './ssh/ssh-config';
import { ssh2Info } from './ssh2-info';
import { DRIVE_ROUTE, driveRoute } from './http/drive-routes';
import { sendJson } from './http/json';
import { listenPrivately } from './http/private-socket';
import { DriveError } from './cluster/drive';

declare const AGENT_VERSION: string | undefined;

export interface IAgentServices {
  sessions: SessionManager;
  prompts: PromptBroker;
  profiles: () => Promise<{ profiles: unknown[]; errors: string[]; file: string }>;
  /** Called after profiles or sessions change (kernelspecs follow them). */
  changed?: () => Promise<void>;
  baseUrl: string;
}

export interface IAgentServerOptions {
  socketPath: string;
  services?: IAgentServices;
}

export interface IAgentServer {
  readonly socketPath: string;
  /** Connected event-stream clients. */
  readonly listeners: () => number;
  broadcast(event: AgentEvent): void;
  close(): Promise<void>;
}

const startedAt = Date.now();
const MAX_BODY = 1 << 20;

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string
  ) {
    super(message);
  }
}

function sendError(res: http.ServerResponse, status: number, code: string, message: string): void {
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

async function readJson(req: http.IncomingMessage, maxBytes = MAX_BODY): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > maxBytes) {
      throw new HttpError(413, 'too-large', `Request body too large (at most ${maxBytes} bytes here).`);
    }
    chunks.push(c as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (!text) {
    return {};
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new HttpError(400, 'bad-json', 'The request body is not valid JSON.');
  }
}

function method(req: http.IncomingMessage, ...allowed: string[]): string {
  if (!allowed.includes(req.method ?? '')) {
    throw new HttpError(405, 'method-not-allowed', `${req.method} is not allowed here.`);
  }
  return req.method!;
}

const TERMINAL_STREAM = /^\/api\/v1\/sessions\/([0-9a-f]{6,32})\/terminals\/(t[0-9]{1,6})\/stream$/;
const LOGIN_TERMINAL_STREAM =
  /^\/api\/v1\/profiles\/([A-Za-z0-9][A-Za-z0-9._-]{0,63})\/terminals\/(l[0-9]{1,6})\/stream$/;

async function route(req: http.IncomingMessage, res: http.ServerResponse, svc?: IAgentServices): Promise<void> {
  // Routed on the raw path: no normalisation (`..`) can turn one route into another. The
  // proxy has a listener of its own (proxy-server.ts): nothing proxied reaches this one.
  const url = new URL(req.url ?? '/', 'http://agent');
  const p = (req.url ?? '/').split('?')[0];
  let m: RegExpMatchArray | null;

  if (p === '/api/v1/health') {
    method(req, 'GET');
    return sendJson(res, 200, health());
  }
  if (p === '/api/v1/ssh-hosts') {
    // The hosts a profile can be made from; reads only the user's own ssh_config.
    method(req, 'GET');
    const homeDir = process.env.HOME || os.homedir(); // what os.homedir() reads first, visible to tests
    const file = path.join(homeDir, '.ssh', 'config');
    return sendJson(res, 200, { file, hosts: listConfiguredHosts({ configFile: file, homeDir }) });
  }
  if (!svc) {
    throw new HttpError(404, 'not-found', `No agent route ${p}.`);
  }
  if (p === '/api/v1/profiles') {
    method(req, 'GET');
    const result = await svc.profiles();
    // Answer once the kernelspecs match, so a client can use them right away.
    await svc.changed?.();
    return sendJson(res, 200, result);
  }
  if ((m = p.match(/^\/api\/v1\/profiles\/([A-Za-z0-9][A-Za-z0-9._-]{0,63})\/estimates$/))) {
    // "Fastest start": the batch system's estimates, nothing submitted. POST: it runs
    // commands on the cluster (and may sign in), so it gets the XSRF/origin checks
    method(req, 'POST');
    return sendJson(res, 200, { estimates: await svc.sessions.estimates(m[1]) });
  }
  if (p === '/api/v1/connections') {
    // The SSH link of each profile in use: connecting / connected / reconnecting / sign-in-needed / closed.
    method(req, 'GET');
    return sendJson(res, 200, { connections: svc.sessions.connectionEvents() });
  }
  if ((m = p.match(/^\/api\/v1\/connections\/([A-Za-z0-9][A-Za-z0-9._-]{0,63})\/sign-in$/))) {
    // The user signs in (after sign-in-needed); prompts follow on the event stream.
    method(req, 'POST');
    await svc.sessions.signIn(m[1]);
    return sendJson(res, 202, { cluster: m[1] });
  }
  if (p === '/api/v1/sessions') {
    if (method(req, 'GET', 'POST') === 'GET') {
      return sendJson(res, 200, { sessions: svc.sessions.list() });
    }
    const { profile, resources, owner } = parseSubmitRequest(await readJson(req));
    return sendJson(res, 201, await svc.sessions.submit(profile, resources, owner));
  }
  if ((m = p.match(/^\/api\/v1\/sessions\/([0-9a-f]{6,32})$/))) {
    const id = m[1];
    if (method(req, 'GET', 'DELETE') === 'GET') {
      const s = svc.sessions.get(id);
      if (!s) {
        throw new HttpError(404, 'not-found', `No session ${id}.`);
      }
      return sendJson(res, 200, s);
    }
    const s = svc.sessions.get(id);
    if (!s) {
      throw new HttpError(404, 'not-found', `No session ${id}.`);
    }
    if (s.state === 'ended') {
      svc.sessions.remove(id);
      return sendJson(res, 200, s);
    }
    return sendJson(res, 200, await svc.sessions.cancel(id));
  }
  if ((m = p.match(/^\/api\/v1\/sessions\/([0-9a-f]{6,32})\/kernels$/))) {
    method(req, 'POST');
    const r = parseKernelRequest(await readJson(req));
    if (r.action === 'adopt') {
      return sendJson(res, 200, await svc.sessions.adoptKernel(m[1], r.kernelId, r.ports));
    }
    if (r.action === 'attach') {
      return sendJson(res, 200, await svc.sessions.adoptKernel(m[1], r.kernelId));
    }
    return sendJson(res, 201, await svc.sessions.startKernel(m[1], r.kernelId, r.kernelspec, r.notebookPath));
  }
  if ((m = p.match(/^\/api\/v1\/sessions\/([0-9a-f]{6,32})\/notebooks$/))) {
    // The notebook at `path` was opened on this session: its stable kernel starts here.
    method(req, 'POST');
    svc.sessions.bindNotebook(m[1], parseNotebookPath(await readJson(req), true)!);
    res.writeHead(204).end();
    return;
  }
  if ((m = p.match(/^\/api\/v1\/profiles\/([A-Za-z0-9][A-Za-z0-9._-]{0,63})\/kernel-session$/))) {
    // The provisioner of a stable kernel asks where to start it (null: submit a new job).
    method(req, 'POST');
    const notebookPath = parseNotebookPath(await readJson(req), false);
    return sendJson(res, 200, { session: svc.sessions.kernelSessionFor(m[1], notebookPath) ?? null });
  }
  if ((m = p.match(/^\/api\/v1\/sessions\/([0-9a-f]{6,32})\/workers$/))) {
    method(req, 'POST');
    const { count } = parseAddWorkersRequest(await readJson(req));
    return sendJson(res, 201, await svc.sessions.addWorkers(m[1], count));
  }
  if ((m = p.match(/^\/api\/v1\/sessions\/([0-9a-f]{6,32})\/extend$/))) {
    method(req, 'POST');
    const { minutes } = parseExtendRequest(await readJson(req));
    return sendJson(res, 200, await svc.sessions.extend(m[1], minutes));
  }
  if ((m = p.match(/^\/api\/v1\/sessions\/([0-9a-f]{6,32})\/activity$/))) {
    method(req, 'POST');
    return sendJson(res, 200, await svc.sessions.activity(m[1], parseActivityRequest(await readJson(req)).keep));
  }
  if ((m = p.match(/^\/api\/v1\/sessions\/([0-9a-f]{6,32})\/web-ports$/))) {
    method(req, 'POST');
    return sendJson(res, 200, await svc.sessions.openWebPort(m[1], parseWebPortRequest(await readJson(req)).port));
  }
  if ((m = p.match(/^\/api\/v1\/sessions\/([0-9a-f]{6,32})\/terminals$/))) {
    if (method(req, 'GET', 'POST') === 'GET') {
      return sendJson(res, 200, { terminals: await svc.sessions.terminals(m[1]).list() });
    }
    return sendJson(res, 201, await svc.sessions.terminals(m[1]).open(parseTerminalRequest(await readJson(req))));
  }
  if ((m = p.match(/^\/api\/v1\/sessions\/([0-9a-f]{6,32})\/terminals\/(t[0-9]{1,6})$/))) {
    method(req, 'DELETE');
    await svc.sessions.terminals(m[1]).close(m[2]);
    return sendJson(res, 200, { terminalId: m[2], alive: false });
  }
  if ((m = p.match(DRIVE_ROUTE))) {
    // The cluster's files over SFTP (cluster/drive.ts, http/drive-routes.ts)
    return driveRoute(req, res, svc.sessions.drives.of(m[1]), m, readJson);
  }
  if ((m = p.match(/^\/api\/v1\/profiles\/([A-Za-z0-9][A-Za-z0-9._-]{0,63})\/terminals$/))) {
    if (method(req, 'GET', 'POST') === 'GET') {
      return sendJson(res, 200, { terminals: svc.sessions.loginTerminals.list(m[1]) });
    }
    const size = parseTerminalRequest(await readJson(req));
    return sendJson(res, 201, await svc.sessions.loginTerminals.open(m[1], await svc.sessions.clusterLink(m[1]), size));
  }
  if ((m = p.match(/^\/api\/v1\/profiles\/([A-Za-z0-9][A-Za-z0-9._-]{0,63})\/terminals\/(l[0-9]{1,6})$/))) {
    method(req, 'DELETE');
    svc.sessions.loginTerminals.close(m[1], m[2]);
    return sendJson(res, 200, { terminalId: m[2], alive: false });
  }
  if ((m = p.match(/^\/api\/v1\/sessions\/([0-9a-f]{6,32})\/logs$/))) {
    method(req, 'GET');
    return sendJson(res, 200, await svc.sessions.logs(m[1]));
  }
  if ((m = p.match(/^\/api\/v1\/sessions\/([0-9a-f]{6,32})\/relaunch$/))) {
    method(req, 'POST');
    const r = parseRelaunchRequest(await readJson(req));
    return sendJson(res, 201, await svc.sessions.relaunch(m[1], r.continue, r.resources));
  }
  if ((m = p.match(/^\/api\/v1\/kernels\/([A-Za-z0-9_-]{1,64})(?:\/(signal|restart|detach))?$/))) {
    const [, kid, verb] = m;
    if (verb) {
      method(req, 'POST');
      if (verb === 'signal') {
        await svc.sessions.signalKernel(kid, parseSignalRequest(await readJson(req)).signal);
      } else if (verb === 'restart') {
        await svc.sessions.shutdownKernel(kid, true); // the next start of this id is its restart
      } else {
        svc.sessions.detachKernel(kid); // left running for a later attach
      }
      return sendJson(res, 200, { ok: true });
    }
    if (method(req, 'GET', 'DELETE') === 'GET') {
      return sendJson(res, 200, await svc.sessions.kernelStatus(kid));
    }
    if (url.search) {
      // (verbs were once query flags: never read a restart or a detach as a shutdown)
      throw new HttpError(400, 'invalid', `DELETE ${p} takes no query; restart and detach are POST ${p}/<verb>.`);
    }
    await svc.sessions.shutdownKernel(kid, false);
    return sendJson(res, 200, { ok: true });
  }
  if ((m = p.match(/^\/api\/v1\/prompts\/([0-9a-f]{16})$/))) {
    method(req, 'POST');
    if (!svc.prompts.answer(m[1], parsePromptAnswer(await readJson(req)))) {
      throw new HttpError(404, 'not-found', 'This question is no longer open (answered elsewhere or timed out).');
    }
    return sendJson(res, 200, { ok: true });
  }
  throw new HttpError(404, 'not-found', `No agent route ${p}.`);
}

export async function startAgentServer(options: IAgentServerOptions): Promise<IAgentServer> {
  const { socketPath, services } = options;
  const server = http.createServer((req, res) => {
    route(req, res, services).catch((err: unknown) => {
      if (res.headersSent) {
        console.error(
          `agent: ${req.method} ${(req.url ?? '').split('?')[0]} failed after its answer began: ${String(err)}`
        );
        res.destroy();
      } else if (err instanceof HttpError || err instanceof DriveError) {
        sendError(res, err.status, err.code, err.message);
      } else if (err instanceof NotFoundError) {
        sendError(res, 404, 'not-found', err.message);
      } else if (err instanceof ConflictError) {
        sendError(res, 409, 'conflict', err.message);
      } else if (err instanceof InvalidRequestError) {
        sendError(res, 400, 'invalid', err.message);
      } else if (err instanceof SchedulerUnavailableError) {
        sendError(res, 503, 'scheduler-unavailable', err.message);
      } else {
        sendError(res, 500, 'failed', err instanceof Error ? err.message : String(err));
      }
    });
  });

  const wss = new WebSocketServer({ noServer: true });
  const clients = new Set<WebSocket>();
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    const terminal = TERMINAL_STREAM.exec((req.url ?? '').split('?')[0]);
    const from = /[?&]from=(\d{1,15})(&|$)/.exec(req.url ?? '')?.[1];
    const login = LOGIN_TERMINAL_STREAM.exec((req.url ?? '').split('?')[0]);
    if (login && services) {
      const terminals = services.sessions.loginTerminals;
      wss.handleUpgrade(req, socket, head, ws =>
        terminals.attach(login[1], login[2], ws, from ? Number(from) : undefined)
      );
      return;
    }
    if (terminal && services) {
      const sessions = services.sessions;
      wss.handleUpgrade(req, socket, head, ws => {
        void streamTerminal(ws, () => sessions.terminals(terminal[1]), terminal[2], from ? Number(from) : undefined);
      });
      return;
    }
    if ((req.url ?? '').split('?')[0] !== '/api/v1/events') {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, ws => {
      clients.add(ws);
      ws.on('close', () => {
        clients.delete(ws);
        if (clients.size === 0) {
          // Questions nobody can answer now: the logins behind them wait for sign-in.
          services?.prompts.withdrawAll();
        }
      });
      ws.on('error', () => ws.terminate());
      // A new listener first gets the current picture: notices, connections, sessions and
      // open questions.
      for (const e of [...(services?.sessions.notices() ?? []), ...(services?.sessions.connectionEvents() ?? [])]) {
        ws.send(JSON.stringify(e));
      }
      for (const session of services?.sessions.list() ?? []) {
        ws.send(JSON.stringify({ type: 'session', session } satisfies AgentEvent));
      }
      for (const prompt of services?.prompts.open() ?? []) {
        ws.send(JSON.stringify({ type: 'prompt', prompt } satisfies AgentEvent));
      }
    });
  });

  await listenPrivately(server, socketPath);

  return {
    socketPath,
    listeners: () => clients.size,
    broadcast: event => {
      const data = JSON.stringify(event);
      for (const c of clients) {
        c.send(data);
      }
    },
    close: () =>
      new Promise<void>(resolve => {
        for (const c of clients) {
          c.terminate();
        }
        server.close(() => resolve());
        server.closeAllConnections();
      })
  };
}
