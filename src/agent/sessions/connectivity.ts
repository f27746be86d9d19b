/**
 * Connectivity modes: how the agent reaches a session's helper, kernels and dashboard
 * on the compute node (see docs/connectivity.md).
 *   via-login  direct-tcpip from the login node to the helper's TLS relay on node:port
 *   node-ssh   an SSH connection to the node (through the login one); Unix sockets there
 *   reverse    the job's ssh tunnel to the login node; Unix sockets on the login node
 *   auto       the first of those that answers; remembered per profile
 */
import { promises as fs } from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import type { Duplex } from 'node:stream';

import type { ConnectivityMode } from '../../common/api';
import { whenClosed } from '../tunnels/bridge';
import { openRelay, type IRelayCredentials, type RelayTarget } from '../tunnels/relay';
import type { IClusterLink } from '../cluster/link';

export type ResolvedMode = Exclude<ConnectivityMode, 'auto'>;
export const AUTO_ORDER: ResolvedMode[] = ['via-login', 'node-ssh', 'reverse'];
/** Time one candidate of `auto` gets to answer /health (a dropping firewall never answers). */
export const PROBE_TIMEOUT_MS = 8_000;

/**
 * The agent-helper protocol this agent speaks to the helpers it starts (state.json
 * `version`). 1: kernels, control channel and dashboard on TCP ports of the node (helpers
 * of earlier releases; still spoken to, with a warning, so their jobs keep running);
 * 2: all of it on Unix sockets in a private directory, a TLS relay for via-login, Dask
 * over TLS (docs/remote-helper.md).
 */
export const HELPER_PROTOCOL = 2;

/** What the helper's state.json says about where it listens (besides IHelperState). */
export interface IHelperEndpoints {
  /** The protocol; absent (1) in helpers of earlier releases. */
  version?: number;
  host: string;
  /** 2: the node-local private directory holding every socket of the session. */
  runtimeDir?: string;
  /** Node-local Unix socket of the control channel (2: always; 1: node-ssh, reverse, auto). */
  controlSocket?: string;
  /** 2: the TLS relay's TCP port (via-login, auto). */
  relayPort?: number | null;
  /** 2: per proxied port label, its Unix socket on the node (the Dask dashboard: "0"). */
  httpSockets?: Record<string, string>;
  /** 1: the TCP control channel's port (via-login, auto). */
  controlPort?: number | null;
  reverse?: {
    status: 'up' | 'failed' | 'closed';
    error?: string;
    /** Login-side directory and sockets of the tunnel. */
    dir?: string;
    controlSocket?: string;
    httpSockets?: Record<string, string>;
  };
}

/** How to reach one running session's helper: everything the open* functions need. */
export interface IRoute {
  mode: ResolvedMode;
  /** The protocol of the session's helper. */
  protocol: number;
  state: IHelperEndpoints;
  /** The node, as the login node reaches it. */
  host: string;
  /** Protocol 2: the session's TLS credentials and token, for the relay. */
  relay?: IRelayCredentials;
}

/** The helper's answer to POST /kernels. */
export interface IKernelStart {
  pid: number;
  ports: Record<string, number>;
}

export type ChannelPort = 'shell_port' | 'iopub_port' | 'stdin_port' | 'control_port' | 'hb_port';
/** Relay target names of the kernel channels. */
const CHANNEL_NAMES: Record<ChannelPort, string> = {
  shell_port: 'shell',
  iopub_port: 'iopub',
  stdin_port: 'stdin',
  control_port: 'control',
  hb_port: 'hb'
};

/** Candidate order for `auto`: the remembered mode first, then the usual order. */
export function autoOrder(remembered?: string): ResolvedMode[] {
  const first = AUTO_ORDER.find(m => m === remembered);
  return first ? [first, ...AUTO_ORDER.filter(m => m !== first)] : [...AUTO_ORDER];
}

/** What POST /kernels must ask for in a mode. */
export function kernelTransport(
  mode: ResolvedMode,
  protocol = HELPER_PROTOCOL
): { transport: 'tcp' | 'ipc'; reverse?: true } {
  switch (mode) {
    case 'via-login':
      // 2: the relay reaches the kernel's Unix sockets; 1: the kernel listens on TCP
      return { transport: protocol >= 2 ? 'ipc' : 'tcp' };
    case 'node-ssh':
      return { transport: 'ipc' };
    case 'reverse':
      return { transport: 'ipc', reverse: true };
  }
}

/**
 * Per kernel channel, the socket path to connect to (node-ssh: on the node; reverse: on
 * the login node), derived from the connection file the helper wrote at the expected
 * path, never from what a helper answers. ipykernel's ipc endpoints are "<ip>-<port>";
 * protocol 2 keeps them in the runtime dir and forwards each to "<login dir>/<name>";
 * protocol 1 named the login side "<dir>/k-<kernel>-<port>".
 */
export function kernelSockets(
  mode: ResolvedMode,
  kernelId: string,
  file: Record<string, unknown>,
  st: IHelperEndpoints,
  channels: readonly string[],
  protocol = HELPER_PROTOCOL
): Record<string, string> {
  if (file.transport !== 'ipc' || typeof file.ip !== 'string') {
    throw new Error(`kernel ${kernelId} does not listen on Unix sockets (transport ${String(file.transport)})`);
  }
  const ip = file.ip;
  if (protocol >= 2 && !(st.runtimeDir && path.posix.dirname(ip) === st.runtimeDir)) {
    throw new Error(`the connection file of kernel ${kernelId} names sockets outside the session's private directory`);
  }
  const out: Record<string, string> = {};
  for (const ch of channels) {
    const port = Number(file[ch]);
    if (!Number.isInteger(port) || port <= 0) {
      throw new Error(`the connection file of kernel ${kernelId} has no ${ch}`);
    }
    if (mode === 'reverse') {
      const dir = st.reverse?.dir;
      if (!dir) {
        throw new Error('the helper reports no reverse tunnel');
      }
      out[ch] = protocol >= 2 ? `${dir}/${path.posix.basename(ip)}-${port}` : `${dir}/k-${kernelId}-${port}`;
    } else {
      out[ch] = `${ip}-${port}`;
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

/** Protocol 2, via-login: a stream to `target` through the helper's TLS relay. */
async function relayed(r: IRoute, link: IClusterLink, target: RelayTarget): Promise<Duplex> {
  const port = need(r.state.relayPort, `the helper on ${r.state.host} has no relay (not started for via-login)`);
  const creds = need(r.relay, 'no TLS credentials for this session');
  return openRelay(await link.forwardOut(r.host, port), creds, target, `${r.state.host}:${port}`);
}

/** A stream to the helper's control channel. */
export async function openControl(r: IRoute, link: IClusterLink): Promise<Duplex> {
  const st = r.state;
  switch (r.mode) {
    case 'via-login':
      if (r.protocol >= 2) {
        return relayed(r, link, 'control');
      }
      return link.forwardOut(
        r.host,
        need(st.controlPort, `the helper on ${st.host} does not listen on TCP (not started for via-login)`)
      );
    case 'node-ssh': {
      const sock = need(st.controlSocket, `the helper on ${st.host} has no control socket (not started for node-ssh)`);
      return (await nodeLink(link, st.host)).forwardOutStreamLocal(sock);
    }
    case 'reverse': {
      const rev = st.reverse;
      if (rev?.status !== 'up' || !rev.controlSocket) {
        throw new Error(`no reverse tunnel from ${st.host}: ${rev?.error ?? 'not started in this mode'}`);
      }
      return streamLocal(link)(rev.controlSocket);
    }
  }
}

/** A stream to a kernel channel: `socket` from kernelSockets (node-ssh, reverse), `port` for protocol 1's TCP. */
export async function openKernelChannel(
  r: IRoute,
  link: IClusterLink,
  k: { kernelId: string; channel: ChannelPort; port: number; socket?: string }
): Promise<Duplex> {
  switch (r.mode) {
    case 'via-login':
      if (r.protocol >= 2) {
        return relayed(r, link, `kernel/${k.kernelId}/${CHANNEL_NAMES[k.channel]}`);
      }
      return link.forwardOut(r.host, k.port);
    case 'node-ssh':
      return (await nodeLink(link, r.state.host)).forwardOutStreamLocal(need(k.socket, 'no kernel socket'));
    case 'reverse':
      return streamLocal(link)(need(k.socket, 'no kernel socket'));
  }
}

/** A stream to an HTTP service the helper reported (the dashboard), by its proxied port label. */
export async function openHttpPort(r: IRoute, link: IClusterLink, port: number): Promise<Duplex> {
  const st = r.state;
  switch (r.mode) {
    case 'via-login':
      return r.protocol >= 2 ? relayed(r, link, `http/${port}`) : link.forwardOut(r.host, port);
    case 'node-ssh': {
      const node = await nodeLink(link, st.host);
      if (r.protocol >= 2) {
        return node.forwardOutStreamLocal(
          need(st.httpSockets?.[String(port)], `port ${port} has no socket on ${st.host}`)
        );
      }
      // protocol 1 bound it to the node's loopback
      return node.forwardOut('127.0.0.1', port);
    }
    case 'reverse': {
      const sock = st.reverse?.httpSockets?.[String(port)];
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
    let answered = false;
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
        answered = true;
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
    // closed before http listened: its 'close' would never come, only the timeout
    whenClosed(channel, () => {
      if (!answered) {
        reject(new Error(`the helper closed the connection before answering ${method} ${urlPath}`));
        req.destroy(); // emits nothing on a socket already closed: hence the reject above
      }
    });
    req.end(data);
    // A relayed stream comes paused (openRelay); http attaches its reader on the next tick, first.
    channel.resume();
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
