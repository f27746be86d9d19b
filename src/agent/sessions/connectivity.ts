/**
 * Connectivity modes: how the agent reaches a session's helper, kernels and dashboard
 * on the compute node (see docs/connectivity.md).
 *   via-login  direct-tcpip from the login node to node:port
 *   node-ssh   an SSH connection to the node (through the login one); Unix sockets there
 *   reverse    the job's ssh tunnel to the login node; Unix sockets on the login node
 *   auto       the first of those that answers; remembered per profile
 */
import { promises as fs } from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import type { Duplex } from 'node:stream';

import type { ConnectivityMode } from '../../common/api';
import type { IClusterLink } from './link';

export type ResolvedMode = Exclude<ConnectivityMode, 'auto'>;
export const AUTO_ORDER: ResolvedMode[] = ['via-login', 'node-ssh', 'reverse'];
/** Time one candidate of `auto` gets to answer /health (a dropping firewall never answers). */
export const PROBE_TIMEOUT_MS = 8_000;

/** What the helper's state.json says about where it listens (besides IHelperState). */
export interface IHelperEndpoints {
  host: string;
  controlPort?: number | null;
  /** Node-local Unix socket of the control channel (node-ssh, reverse, auto). */
  controlSocket?: string;
  reverse?: {
    status: 'up' | 'failed' | 'closed';
    error?: string;
    /** Login-side directory and sockets of the tunnel. */
    dir?: string;
    controlSocket?: string;
    httpSockets?: Record<string, string>;
  };
}

/** The helper's answer to POST /kernels. */
export interface IKernelStart {
  pid: number;
  ip: string;
  transport?: 'tcp' | 'ipc';
  ports: Record<string, number>;
  /** ipc: per channel, the socket to connect to (on the node, or on the login node for reverse). */
  sockets?: Record<string, string>;
  connectionFile: string;
}

/** Candidate order for `auto`: the remembered mode first, then the usual order. */
export function autoOrder(remembered?: string): ResolvedMode[] {
  const first = AUTO_ORDER.find(m => m === remembered);
  return first ? [first, ...AUTO_ORDER.filter(m => m !== first)] : [...AUTO_ORDER];
}

/** What POST /kernels must ask for in a mode. */
export function kernelTransport(mode: ResolvedMode): { transport: 'tcp' | 'ipc'; reverse?: true } {
  switch (mode) {
    case 'via-login':
      return { transport: 'tcp' };
    case 'node-ssh':
      return { transport: 'ipc' };
    case 'reverse':
      return { transport: 'ipc', reverse: true };
  }
}

/**
 * Per kernel channel, the socket path to connect to, from the connection file the
 * helper wrote (used to take a kernel back after an agent restart). ipykernel's ipc
 * endpoints are "<ip>-<port>"; through the tunnel they are "<dir>/k-<kernel>-<port>".
 */
export function kernelSockets(
  mode: ResolvedMode,
  kernelId: string,
  file: Record<string, unknown>,
  reverseDir: string | undefined,
  channels: readonly string[]
): Record<string, string> {
  if (file.transport !== 'ipc' || typeof file.ip !== 'string') {
    throw new Error(`kernel ${kernelId} does not listen on Unix sockets (transport ${String(file.transport)})`);
  }
  const out: Record<string, string> = {};
  for (const ch of channels) {
    const port = Number(file[ch]);
    if (!Number.isInteger(port) || port <= 0) {
      throw new Error(`the connection file of kernel ${kernelId} has no ${ch}`);
    }
    if (mode === 'reverse') {
      if (!reverseDir) {
        throw new Error('the helper reports no reverse tunnel');
      }
      out[ch] = `${reverseDir}/k-${kernelId}-${port}`;
    } else {
      out[ch] = `${file.ip}-${port}`;
    }
  }
  return out;
}

function need<T>(v: T | undefined | null, what: string): T {
  if (v === undefined || v === null || v === '') {
    throw new Error(what);
  }
  return v;
}

function streamLocal(link: IClusterLink): (p: string) => Promise<Duplex> {
  if (!link.forwardOutStreamLocal) {
    throw new Error('this cluster link cannot forward Unix sockets (connectivity reverse)');
  }
  return p => link.forwardOutStreamLocal!(p);
}

async function nodeLink(link: IClusterLink, node: string) {
  if (!link.nodeLink) {
    throw new Error('this cluster link cannot open SSH connections to nodes (connectivity node-ssh)');
  }
  return link.nodeLink(node);
}

/** A stream to the helper's control channel. */
export async function openControl(mode: ResolvedMode, st: IHelperEndpoints, link: IClusterLink): Promise<Duplex> {
  switch (mode) {
    case 'via-login':
      return link.forwardOut(
        st.host,
        need(st.controlPort, `the helper on ${st.host} does not listen on TCP (not started for via-login)`)
      );
    case 'node-ssh': {
      const sock = need(st.controlSocket, `the helper on ${st.host} has no control socket (not started for node-ssh)`);
      return (await nodeLink(link, st.host)).forwardOutStreamLocal(sock);
    }
    case 'reverse': {
      const r = st.reverse;
      if (r?.status !== 'up' || !r.controlSocket) {
        throw new Error(`no reverse tunnel from ${st.host}: ${r?.error ?? 'not started in this mode'}`);
      }
      return streamLocal(link)(r.controlSocket);
    }
  }
}

/** A stream to a kernel channel. */
export async function openKernelChannel(
  mode: ResolvedMode,
  node: string,
  port: number,
  socket: string | undefined,
  link: IClusterLink
): Promise<Duplex> {
  switch (mode) {
    case 'via-login':
      return link.forwardOut(node, port);
    case 'node-ssh':
      return (await nodeLink(link, node)).forwardOutStreamLocal(need(socket, 'no kernel socket'));
    case 'reverse':
      return streamLocal(link)(need(socket, 'no kernel socket'));
  }
}

/** A stream to an HTTP port the helper reported (the dashboard). */
export async function openHttpPort(
  mode: ResolvedMode,
  node: string,
  port: number,
  st: IHelperEndpoints | undefined,
  link: IClusterLink
): Promise<Duplex> {
  switch (mode) {
    case 'via-login':
      return link.forwardOut(node, port);
    case 'node-ssh':
      // the helper binds it to the node's loopback: only someone on the node gets there
      return (await nodeLink(link, node)).forwardOut('127.0.0.1', port);
    case 'reverse': {
      const sock = st?.reverse?.httpSockets?.[String(port)];
      return streamLocal(link)(need(sock, `port ${port} is not forwarded through the reverse tunnel`));
    }
  }
}

/** One HTTP request to the helper over an already open stream (any mode). */
export function requestOver(
  channel: Duplex,
  method: string,
  urlPath: string,
  token: string,
  body: unknown,
  timeoutMs: number,
  host: string
): Promise<{ status: number; json: any }> {
  const data = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        createConnection: () => channel as any,
        method,
        path: urlPath,
        headers: {
          Host: host,
          Authorization: `Bearer ${token}`,
          ...(data !== undefined && { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) })
        },
        timeout: timeoutMs
      },
      res => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', c => (text += c));
        res.on('end', () => {
          let json: unknown = undefined;
          try {
            json = text ? JSON.parse(text) : {};
          } catch {
            json = { error: text };
          }
          resolve({ status: res.statusCode ?? 0, json });
        });
      }
    );
    req.on('timeout', () => req.destroy(new Error(`the helper did not answer ${method} ${urlPath} in time`)));
    req.on('error', reject);
    req.end(data);
  });
}

/** Rejects after `ms`; a stream that arrives later is destroyed. */
export function withTimeout(p: Promise<Duplex>, ms: number, what: string): Promise<Duplex> {
  let timer: NodeJS.Timeout | undefined;
  let late = false;
  void p.then(
    s => late && s.destroy(),
    () => undefined
  );
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        late = true;
        reject(new Error(`${what}: no answer within ${ms / 1000} s`));
      }, ms);
    })
  ]).finally(() => clearTimeout(timer));
}

/** Which mode worked for a profile last time (`auto`), in <stateDir>/connectivity.json. */
export class ModeMemory {
  private cache?: Record<string, ResolvedMode>;
  private writing = Promise.resolve();

  constructor(private readonly stateDir: string) {}

  private get file(): string {
    return path.join(this.stateDir, 'connectivity.json');
  }

  private async load(): Promise<Record<string, ResolvedMode>> {
    if (!this.cache) {
      try {
        const raw = JSON.parse(await fs.readFile(this.file, 'utf8')) as Record<string, unknown>;
        this.cache = Object.fromEntries(
          Object.entries(raw).filter(([, v]) => AUTO_ORDER.includes(v as ResolvedMode))
        ) as Record<string, ResolvedMode>;
      } catch {
        this.cache = {};
      }
    }
    return this.cache;
  }

  async get(profile: string): Promise<ResolvedMode | undefined> {
    return (await this.load())[profile];
  }

  async set(profile: string, mode: ResolvedMode): Promise<void> {
    const all = await this.load();
    if (all[profile] === mode) {
      return;
    }
    all[profile] = mode;
    const data = JSON.stringify(all, null, 1);
    this.writing = this.writing.then(async () => {
      await fs.mkdir(this.stateDir, { recursive: true, mode: 0o700 });
      const tmp = `${this.file}.tmp`;
      await fs.writeFile(tmp, data, { mode: 0o600 });
      await fs.rename(tmp, this.file);
    });
    return this.writing;
  }
}
