/**
 * ClusterConnection: ONE SSH connection to a cluster's login node, through its jump
 * chain, shared by every scheduler command, SFTP transfer and port forward.
 *
 * - Hops come from the target's jumpHosts, else ssh_config's ProxyJump (ssh-config.ts).
 *   Each hop is an ssh2 Client whose `sock` is the previous hop's direct-tcpip stream;
 *   the first hop may use a ProxyCommand (spawned like ssh(1) does).
 * - Every hop's host key is checked against known_hosts (known-hosts.ts): unknown keys
 *   are shown to the user (prompt kind `host-key`) and appended only after the server
 *   proved it holds the key (the handshake completed); changed, revoked and
 *   certificate-authority-only entries are refused without asking.
 * - Authentication per hop, in the order the server allows: ssh-agent, identity files
 *   (passphrase prompt for encrypted ones), keyboard-interactive (every question relayed
 *   to the user), password. Answers go to ssh2 only: never logged, stored or put in argv.
 * - A pty session is kept open on every hop: sshd switches the connection to
 *   interactive mode (TCP_NODELAY) on the first session, and only for a pty; without it
 *   each kernel round trip waits ~40 ms for delayed ACKs (../shared/notes/testbed.md).
 * - Errors are one sentence for a user, naming the hop.
 * Reconnecting is the caller's business for now: after `closed`, `connect()` builds new
 * Clients from scratch.
 */
import { EventEmitter } from 'node:events';
import { promises as fsp } from 'node:fs';
import { Socket } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Duplex } from 'node:stream';

import {
  Client,
  OpenSSHAgent,
  type Algorithms,
  type ServerHostKeyAlgorithm,
  utils as sshUtils,
  type AnyAuthMethod,
  type AuthenticationType,
  type ClientChannel,
  type AuthHandlerMiddleware,
  type ConnectConfig,
  type KnownPublicKeys,
  type ParsedKey,
  type PublicKeyEntry,
  type Prompt as Ssh2Prompt,
  type SFTPWrapper
} from 'ssh2';

import type { IPrompt, IPromptAnswer, ISshTarget } from '../../common/api';
import { coalesceWrites } from '../tunnels/coalesce';
import { appendKnownHost, checkHostKey, fingerprintSha256, keyTypeOfBlob, knownKeyTypes } from './known-hosts';
import type { SignInGuard } from './sign-in-guard';
import { ProxyCommandStream } from './proxy-command';
import { expandTilde, percentExpand, resolveChain, type IResolvedHost } from './ssh-config';

export type ConnectionState = 'connecting' | 'connected' | 'closed';

/**
 * Asks the user. `signal` is aborted when the question became moot (the connection
 * attempt failed, timed out or was closed): the UI should withdraw the dialog.
 */
export type PromptFn = (prompt: Omit<IPrompt, 'id'>, signal: AbortSignal) => Promise<IPromptAnswer>;

export interface IConnectionLogger {
  debug?(message: string): void;
  info?(message: string): void;
  warn?(message: string): void;
  error?(message: string): void;
}

export interface IClusterConnectionOptions {
  target: ISshTarget;
  /** Asks the user (passphrase, password, keyboard-interactive, unknown host key). */
  prompt: PromptFn;
  logger?: IConnectionLogger;
  /** Cluster/profile name put in prompts and messages (default: target.host). */
  cluster?: string;
  /** Local user name (default: os.userInfo().username). */
  localUser?: string;
  /** Local home directory (default: os.homedir()). */
  homeDir?: string;
  /** ssh-agent socket; default $SSH_AUTH_SOCK; null: never use an agent. */
  agentSocket?: string | null;
  /** Time the servers get to answer while connecting, not counting time spent in prompts (default: ConnectTimeout or 20 s). */
  connectTimeoutMs?: number;
  /** Override ServerAliveInterval (ms) / ServerAliveCountMax (default 15 s x 4). */
  keepaliveIntervalMs?: number;
  keepaliveCountMax?: number;
  /** Keep a pty session open on every hop (TCP_NODELAY); default true. */
  keepPtySession?: boolean;
  /** Concurrent exec sessions (OpenSSH's MaxSessions is 10 per connection); default 6. */
  maxExecSessions?: number;
  onStateChange?: (state: ConnectionState, message?: string) => void;
  /**
   * Whether a person can answer prompts now (a JupyterLab is connected); default yes.
   * Without one, a login that needs a person stops before the server is sent anything
   * (code `sign-in-needed`): no empty answers, no failed attempt in the server's log.
   */
  canAsk?: () => boolean;
  /** Caps failed one-time codes and passwords per account (code `sign-in-paused`). */
  signInGuard?: SignInGuard;
}

export interface IExecOptions {
  /** Written to the command's stdin, then EOF (EOF right away without it). */
  stdin?: string | Buffer;
  /** Kill the command (signal KILL, channel closed) and reject after this long. */
  timeoutMs?: number;
  /** Keep at most this many bytes of each of stdout and stderr (default 8 MiB). */
  maxOutputBytes?: number;
}

export interface IExecResult {
  /** Exit status; null if the command was killed by a signal (then `signal`, e.g. `SIGKILL`). */
  code: number | null;
  signal?: string;
  stdout: string;
  stderr: string;
  /** True if stdout or stderr exceeded maxOutputBytes and was cut. */
  truncated?: boolean;
}

export interface IHopInfo {
  alias: string;
  hostName: string;
  port: number;
  user: string;
  /** How messages name the hop, e.g. `login (198.18.1.2)`. */
  label: string;
}

/** An error for the user: `message` is one sentence naming the hop. */
export class SshConnectionError extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly hop?: string
  ) {
    super(message);
    this.name = 'SshConnectionError';
  }
}

const DEFAULT_CONNECT_TIMEOUT_MS = 20000;
const DEFAULT_KEEPALIVE_MS = 15000;
const DEFAULT_KEEPALIVE_COUNT = 4;
const DEFAULT_MAX_OUTPUT = 8 * 1024 * 1024;
const DEFAULT_PROMPT_TRIES = 3;

/** Host-key algorithms to prefer for each known key type. */
const HOSTKEY_ALGOS: Record<string, string[]> = {
  'ssh-ed25519': ['ssh-ed25519'],
  'ecdsa-sha2-nistp256': ['ecdsa-sha2-nistp256'],
  'ecdsa-sha2-nistp384': ['ecdsa-sha2-nistp384'],
  'ecdsa-sha2-nistp521': ['ecdsa-sha2-nistp521'],
  'ssh-rsa': ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa']
};

function hopLabel(cfg: IResolvedHost): string {
  const addr = cfg.port === 22 ? cfg.hostName : `${cfg.hostName}:${cfg.port}`;
  return cfg.alias === cfg.hostName ? addr : `${cfg.alias} (${addr})`;
}

/** A timer that does not run while the user is answering a prompt. */
class PausableTimer {
  private timer?: NodeJS.Timeout;
  private remaining: number;
  private startedAt = 0;
  private paused = 0;
  constructor(
    ms: number,
    private readonly onExpire: () => void
  ) {
    this.remaining = ms;
    if (ms > 0) {
      this.run();
    }
  }
  private run(): void {
    this.startedAt = Date.now();
    this.timer = setTimeout(this.onExpire, this.remaining);
  }
  pause(): void {
    if (this.paused++ === 0 && this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
      this.remaining = Math.max(0, this.remaining - (Date.now() - this.startedAt));
    }
  }
  resume(): void {
    if (this.paused > 0 && --this.paused === 0 && this.remaining > 0) {
      // Give the server a fresh share of time after a human answered.
      this.remaining = Math.max(this.remaining, 5000);
      this.run();
    }
  }
  clear(): void {
    if (this.timer) {
      clearTimeout(this.timer);
    }
    this.timer = undefined;
    this.remaining = 0;
  }
}

/** Waits before asking again for a session the server refused (about 5 s in all). */
const SESSION_RETRY_DELAYS_MS = [50, 100, 200, 400, 800, 1000, 1000, 1500];

/** A counting semaphore for exec sessions. */
class Semaphore {
  private waiting: (() => void)[] = [];
  constructor(private free: number) {}
  async acquire(): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return;
    }
    await new Promise<void>(resolve => this.waiting.push(resolve));
  }
  release(): void {
    const next = this.waiting.shift();
    if (next) {
      next();
    } else {
      this.free++;
    }
  }
}

/** ssh-agent limited to some keys (IdentitiesOnly), remembering what it offered. */
class RecordingAgent extends OpenSSHAgent {
  readonly offered: Buffer[] = [];
  /** With IdentitiesOnly: the public keys it may offer (filled before first use). */
  constructor(
    socketPath: string,
    readonly allowed?: Buffer[]
  ) {
    super(socketPath);
  }
  getIdentities(cb: (err?: Error | null, keys?: KnownPublicKeys<ParsedKey>) => void): void {
    super.getIdentities((err, keys) => {
      if (err || !keys) {
        cb(err, keys);
        return;
      }
      const blob = (k: ParsedKey | PublicKeyEntry): Buffer | undefined =>
        'getPublicSSH' in k ? k.getPublicSSH() : undefined;
      const list = this.allowed
        ? keys.filter(k => {
            const b = blob(k);
            return b !== undefined && this.allowed!.some(a => a.equals(b));
          })
        : keys;
      for (const k of list) {
        const b = blob(k);
        if (b) {
          this.offered.push(b);
        }
      }
      cb(undefined, list);
    });
  }
}

interface IHop {
  cfg: IResolvedHost;
  label: string;
  client: Client;
  keeper?: ClientChannel;
  /** Why the last failure happened, in words (set before ssh2 reports a generic error). */
  failure?: string;
  failureCode?: string;
  /** Last error ssh2 reported after connecting (e.g. keepalive timeout). */
  lastError?: string;
  /** Host keys accepted in this connection (rekeys present them again). */
  accepted: Buffer[];
  /** known_hosts append waiting for the handshake to complete. */
  pendingAppend?: { file: string; name: string; port: number; keyType: string; key: Buffer; hash: boolean };
  appendDone?: Promise<void>;
  timer?: PausableTimer;
  /** Aborted when connecting this hop ends: pending prompts are moot then. */
  abort: AbortController;
  /** A question could not be asked: nobody is there (the failure is `sign-in-needed`). */
  personNeeded?: boolean;
}

type AuthCandidate =
  | { kind: 'agent'; agent: RecordingAgent }
  | { kind: 'key'; file: string; explicit: boolean }
  | { kind: 'keyboard-interactive' }
  | { kind: 'password' };

const METHOD_OF: Record<AuthCandidate['kind'], AuthenticationType> = {
  agent: 'publickey',
  key: 'publickey',
  'keyboard-interactive': 'keyboard-interactive',
  password: 'password'
};

export class ClusterConnection extends EventEmitter {
  private readonly opts: IClusterConnectionOptions;
  private readonly homeDir: string;
  private readonly localUser: string;
  private readonly log: Required<IConnectionLogger>;
  private hops: IHop[] = [];
  private _state: ConnectionState = 'closed';
  private connecting?: Promise<void>;
  private closing = false;
  private sftpPromise?: Promise<SFTPWrapper>;
  private execSlots: Semaphore;
  private generation = 0;
  /**
   * Keys unlocked with a passphrase during the current connect(), so a key used on every
   * hop of a chain is asked for once. Dropped when connect() ends: decrypted keys are not
   * kept in memory longer than logging in needs them.
   */
  private unlockedKeys = new Map<string, ParsedKey>();
  /** Aborts the hop being connected (close() during connect()). */
  private abortPending?: () => void;

  constructor(options: IClusterConnectionOptions) {
    super();
    this.opts = options;
    this.homeDir = options.homeDir ?? os.homedir();
    this.localUser = options.localUser ?? os.userInfo().username;
    const l = options.logger ?? {};
    const noop = (): void => undefined;
    this.log = {
      debug: l.debug?.bind(l) ?? noop,
      info: l.info?.bind(l) ?? noop,
      warn: l.warn?.bind(l) ?? noop,
      error: l.error?.bind(l) ?? noop
    };
    this.execSlots = new Semaphore(Math.max(1, options.maxExecSessions ?? 6));
  }

  get state(): ConnectionState {
    return this._state;
  }

  get cluster(): string {
    return this.opts.cluster ?? this.opts.target.host;
  }

  /** The hops of the current connection, first to last. */
  get hopInfo(): IHopInfo[] {
    return this.hops.map(h => ({
      alias: h.cfg.alias,
      hostName: h.cfg.hostName,
      port: h.cfg.port,
      user: h.cfg.user,
      label: h.label
    }));
  }

  private setState(state: ConnectionState, message?: string): void {
    this._state = state;
    this.emit('state', state, message);
    try {
      this.opts.onStateChange?.(state, message);
    } catch (err) {
      this.log.warn(`ssh: state listener failed: ${(err as Error).message}`);
    }
  }

  /** Opens the connection (all hops); resolves when the last hop is authenticated. */
  connect(): Promise<void> {
    if (this._state === 'connected') {
      return Promise.resolve();
    }
    if (!this.connecting) {
      this.connecting = this.doConnect().finally(() => {
        this.connecting = undefined;
        this.unlockedKeys.clear();
      });
    }
    return this.connecting;
  }

  private async doConnect(): Promise<void> {
    const gen = ++this.generation;
    this.closing = false;
    this.hops = [];
    this.sftpPromise = undefined;
    this.setState('connecting', `Connecting to ${this.cluster}.`);
    try {
      const t = this.opts.target;
      let chain: IResolvedHost[];
      try {
        chain = resolveChain(
          t.host,
          { configFile: t.configFile, homeDir: this.homeDir, localUser: this.localUser },
          { user: t.user, port: t.port, jumpHosts: t.jumpHosts }
        );
      } catch (err) {
        throw new SshConnectionError(`Cannot work out how to reach ${t.host}: ${(err as Error).message}`, 'config');
      }
      for (const cfg of chain) {
        for (const w of cfg.warnings) {
          this.log.warn(`ssh config (${cfg.alias}): ${w}`);
        }
      }
      let sock: Duplex | undefined;
      for (let i = 0; i < chain.length; i++) {
        if (gen !== this.generation || this.closing) {
          throw new SshConnectionError(`Connecting to ${this.cluster} was cancelled.`, 'cancelled');
        }
        const cfg = chain[i];
        const isTarget = i === chain.length - 1;
        if (i > 0) {
          sock = await this.openForward(this.hops[i - 1], cfg.hostName, cfg.port, true);
        } else if (cfg.proxyCommand && cfg.proxyCommand.toLowerCase() !== 'none') {
          sock = this.spawnProxyCommand(cfg);
        }
        const hop = await this.connectHop(cfg, sock, isTarget);
        if (gen !== this.generation || this.closing) {
          hop.client.end();
          throw new SshConnectionError(`Connecting to ${this.cluster} was cancelled.`, 'cancelled');
        }
        this.hops.push(hop);
        if (this.opts.keepPtySession !== false) {
          await this.openKeeper(hop);
        }
      }
      const target = this.hops[this.hops.length - 1];
      const via =
        this.hops.length > 1
          ? ` via ${this.hops
              .slice(0, -1)
              .map(h => h.label)
              .join(', ')}`
          : '';
      this.log.info(`ssh: connected to ${target.cfg.user}@${target.label}${via}`);
      this.setState('connected', `Connected to ${target.label}${via}.`);
    } catch (err) {
      const e =
        err instanceof SshConnectionError
          ? err
          : new SshConnectionError(`SSH connection to ${this.cluster} failed: ${(err as Error).message}`, 'error');
      this.teardown();
      this.log.warn(`ssh: ${e.message}`);
      this.setState('closed', e.message);
      throw e;
    }
  }

  /** Identity files to offer on a hop (target's own first on the target hop). */
  private identityFilesFor(cfg: IResolvedHost, isTarget: boolean): { file: string; explicit: boolean }[] {
    const fromTarget = (this.opts.target.identityFiles ?? []).map(f => expandTilde(f, this.homeDir));
    const list = isTarget ? [...fromTarget, ...cfg.identityFiles] : [...cfg.identityFiles, ...fromTarget];
    const unique = [...new Set(list)];
    if (unique.length > 0) {
      return unique.map(file => ({ file, explicit: true }));
    }
    return ['id_ed25519', 'id_ecdsa', 'id_rsa'].map(n => ({
      file: path.join(this.homeDir, '.ssh', n),
      explicit: false
    }));
  }

  /** known_hosts files for a hop: checked ones, and the one accepted keys go to. */
  private knownHostsFor(cfg: IResolvedHost): { check: string[]; append: string } {
    const explicit = this.opts.target.knownHostsFiles?.map(f => expandTilde(f, this.homeDir));
    if (explicit && explicit.length) {
      return { check: explicit, append: explicit[0] };
    }
    const user = cfg.userKnownHostsFiles?.length
      ? cfg.userKnownHostsFiles
      : [path.join(this.homeDir, '.ssh', 'known_hosts'), path.join(this.homeDir, '.ssh', 'known_hosts2')];
    const global = cfg.globalKnownHostsFiles ?? ['/etc/ssh/ssh_known_hosts', '/etc/ssh/ssh_known_hosts2'];
    return { check: [...user, ...global], append: user[0] };
  }

  private async connectHop(cfg: IResolvedHost, sock: Duplex | undefined, isTarget: boolean): Promise<IHop> {
    const label = hopLabel(cfg);
    const client = new Client();
    const hop: IHop = { cfg, label, client, accepted: [], abort: new AbortController() };
    const kh = this.knownHostsFor(cfg);
    const keyName = cfg.hostKeyAlias ?? cfg.hostName;
    const keyPort = cfg.hostKeyAlias ? 22 : cfg.port;

    let serverHostKey: Algorithms['serverHostKey'];
    try {
      const types = await knownKeyTypes(kh.check, keyName, keyPort);
      const prefer = types.flatMap(t => HOSTKEY_ALGOS[t] ?? []) as ServerHostKeyAlgorithm[];
      // Offer the key types known_hosts can verify first (OpenSSH does the same).
      serverHostKey = prefer.length ? { remove: prefer, prepend: prefer, append: [] } : undefined;
    } catch (err) {
      throw new SshConnectionError(`${(err as Error).message}`, 'known-hosts', label);
    }

    const agentSock = this.opts.agentSocket === undefined ? process.env.SSH_AUTH_SOCK : this.opts.agentSocket;
    const interval =
      this.opts.keepaliveIntervalMs ??
      (cfg.serverAliveInterval ? cfg.serverAliveInterval * 1000 : DEFAULT_KEEPALIVE_MS);
    const countMax = this.opts.keepaliveCountMax ?? cfg.serverAliveCountMax ?? DEFAULT_KEEPALIVE_COUNT;
    const connectTimeout =
      this.opts.connectTimeoutMs ?? (cfg.connectTimeout ? cfg.connectTimeout * 1000 : DEFAULT_CONNECT_TIMEOUT_MS);

    return new Promise<IHop>((resolve, reject) => {
      let settled = false;
      const fail = (message: string, code: string): void => {
        if (settled) {
          return;
        }
        settled = true;
        this.abortPending = undefined;
        hop.timer?.clear();
        hop.abort.abort();
        destroyClient(client);
        sock?.destroy();
        reject(new SshConnectionError(message, code, label));
      };
      this.abortPending = () => fail(`Connecting to ${this.cluster} was cancelled.`, 'cancelled');
      hop.timer = new PausableTimer(connectTimeout, () =>
        fail(
          `Timed out connecting to ${label}: no answer from the server within ${formatSeconds(connectTimeout)}.`,
          'timeout'
        )
      );

      client.on('handshake', () => {
        const p = hop.pendingAppend;
        if (p) {
          hop.pendingAppend = undefined;
          hop.appendDone = appendKnownHost(p.file, p.name, p.port, p.keyType, p.key, { hash: p.hash }).then(
            () => this.log.info(`ssh: added the ${p.keyType} key of ${label} to ${p.file}`),
            err => this.log.warn(`ssh: could not add the host key of ${label} to ${p.file}: ${(err as Error).message}`)
          );
        }
      });
      client.on('ready', () => {
        if (settled) {
          return;
        }
        hop.timer?.clear();
        void Promise.resolve(hop.appendDone).then(() => {
          if (settled) {
            return;
          }
          settled = true;
          this.abortPending = undefined;
          hop.abort.abort();
          client.on('close', () => this.onHopClosed(hop));
          resolve(hop);
        });
      });
      client.on('error', (err: Error & { level?: string; code?: string }) => {
        if (settled) {
          hop.lastError = err.message;
          this.log.warn(`ssh: ${label}: ${err.message}`);
          return;
        }
        if (err.level === 'agent' || (err.level === 'client-authentication' && !hop.failure)) {
          // ssh2 reports these and goes on with the next method (an unusable
          // SSH_AUTH_SOCK, a key that cannot sign); if nothing is left, `close` follows.
          this.log.debug(`ssh: ${label}: ${err.message}`);
          if (err.level === 'client-authentication') {
            hop.lastError = err.message;
          }
          return;
        }
        if (hop.failure) {
          fail(hop.failure, hop.failureCode ?? 'error');
          return;
        }
        fail(describeError(err, label, cfg), err.level === 'client-authentication' ? 'auth' : 'network');
      });
      client.on('close', () => {
        if (!settled) {
          fail(
            hop.failure ??
              (hop.lastError
                ? `Authentication failed for ${cfg.user}@${label}: ${hop.lastError}.`
                : `${label} closed the connection before login completed.`),
            hop.failureCode ?? (hop.lastError ? 'auth-failed' : 'closed')
          );
        }
      });
      client.on('banner', (msg: string) => this.log.debug(`ssh: banner from ${label}: ${msg.trim()}`));

      const config: ConnectConfig = {
        username: cfg.user,
        readyTimeout: 0, // our own timer, paused while the user answers prompts
        keepaliveInterval: interval,
        keepaliveCountMax: countMax,
        algorithms: {
          // Pure-JS crypto: AES-GCM is by far the fastest cipher ssh2 has without bindings.
          cipher: { remove: ['aes128-gcm@openssh.com'], prepend: ['aes128-gcm@openssh.com'], append: [] },
          ...(serverHostKey ? { serverHostKey } : {})
        },
        hostVerifier: (key: Buffer, verify: (ok: boolean) => void) => {
          this.verifyHostKey(hop, key, kh, keyName, keyPort).then(verify, (err: Error) => {
            hop.failure = hop.failure ?? `Cannot check the host key of ${label}: ${err.message}`;
            hop.failureCode = hop.failureCode ?? 'known-hosts';
            verify(false);
          });
        },
        // ssh2 accepts `false` ("no more methods"); its typings do not say so.
        authHandler: this.makeAuthHandler(hop, isTarget, agentSock) as unknown as AuthHandlerMiddleware
      };
      if (sock) {
        config.sock = sock;
      } else {
        config.host = cfg.hostName;
        config.port = cfg.port;
      }
      this.log.debug(`ssh: connecting to ${cfg.user}@${label}`);
      try {
        client.connect(config);
        // Our own TCP socket to the first hop: no Nagle either (small kernel messages
        // would otherwise wait for the server's delayed ACK, ~40 ms per round trip).
        client.setNoDelay(true);
        // ...and one writev per tick instead of one write per SSH packet (tunnels/coalesce.ts).
        const own = (client as unknown as { _sock?: unknown })._sock;
        if (!sock && own instanceof Socket) {
          coalesceWrites(own);
        }
      } catch (err) {
        fail(`SSH connection to ${label} failed: ${(err as Error).message}`, 'error');
      }
    });
  }

  private async verifyHostKey(
    hop: IHop,
    key: Buffer,
    kh: { check: string[]; append: string },
    name: string,
    port: number
  ): Promise<boolean> {
    const keyType = keyTypeOfBlob(key);
    const fp = fingerprintSha256(key);
    if (hop.accepted.some(k => k.equals(key))) {
      return true;
    }
    const res = await checkHostKey(kh.check, name, port, keyType, key);
    const where = res.file ? ` (${res.file}:${res.line})` : '';
    switch (res.status) {
      case 'match':
        hop.accepted.push(key);
        this.log.debug(`ssh: host key of ${hop.label} matches${where}`);
        return true;
      case 'changed':
        hop.failureCode = 'host-key-changed';
        hop.failure =
          `Host key for ${hop.label} has CHANGED: known ${res.knownFingerprints.join(', ')}, ` +
          `offered ${fp}; refusing to connect (remove the old key from ${res.file}:${res.line} only if the administrators confirm the change).`;
        return false;
      case 'revoked':
        hop.failureCode = 'host-key-revoked';
        hop.failure = `Host key ${fp} of ${hop.label} is marked @revoked${where}; refusing to connect.`;
        return false;
      case 'cert-authority':
        hop.failureCode = 'host-key-certificate';
        hop.failure =
          `known_hosts${where} trusts ${hop.label} only through a host certificate authority, ` +
          `which is not supported; add its host key (${keyType} ${fp}) to known_hosts to connect.`;
        return false;
      case 'unknown': {
        const strict = hop.cfg.strictHostKeyChecking ?? 'ask';
        if (strict === 'yes' || strict === 'true') {
          hop.failureCode = 'host-key-unknown';
          hop.failure =
            `No host key is known for ${hop.label} and StrictHostKeyChecking is yes: not connecting. ` +
            `Its ${keyType} key is ${fp}; once the cluster's documentation or administrators confirm it, add it to ${kh.append}.`;
          return false;
        }
        if (strict === 'accept-new' || strict === 'no' || strict === 'off' || strict === 'false') {
          // As ssh(1) does with these settings: new keys are remembered without asking
          // (a changed key is still refused, above).
          this.log.info(
            `ssh: accepting the new ${keyType} key ${fp} of ${hop.label} (StrictHostKeyChecking ${strict})`
          );
          hop.accepted.push(key);
          hop.pendingAppend = { file: kh.append, name, port, keyType, key, hash: hop.cfg.hashKnownHosts === true };
          return true;
        }
        if (!this.canAsk()) {
          hop.personNeeded = true;
          hop.failureCode = 'sign-in-needed';
          hop.failure = `The host key of ${hop.label} is not known yet, and no JupyterLab is open to show it to you: sign in from JupyterLab.`;
          return false;
        }
        // OpenSSH's own warning (sshconnect.c): worth a second look, it may be a spoof.
        const warnings = res.otherKeyTypes.length
          ? [
              `Keys of other types are already known for this host (${res.otherKeyTypes.join(', ')}), but not this ${keyType} key.`
            ]
          : [];
        const others = warnings.length ? ` ${warnings[0]}` : '';
        hop.timer?.pause();
        let answer: IPromptAnswer;
        try {
          answer = await this.ask(hop, {
            kind: 'host-key',
            host: hop.label,
            title: `Unknown host key for ${hop.label}`,
            instructions:
              `The authenticity of ${hop.label} can't be established. Its ${keyType} key fingerprint is ${fp}.${others} ` +
              `Check it with the cluster's documentation or administrators. Accepting adds it to ${kh.append}.`,
            questions: [],
            hostKey: { type: keyType, fingerprint: fp },
            ...(warnings.length > 0 && { warnings })
          });
        } finally {
          hop.timer?.resume();
        }
        if (answer.accept === true && !answer.cancel) {
          hop.accepted.push(key);
          hop.pendingAppend = {
            file: kh.append,
            name,
            port,
            keyType,
            key,
            hash: hop.cfg.hashKnownHosts === true
          };
          return true;
        }
        hop.failureCode = 'host-key-rejected';
        hop.failure = `The host key of ${hop.label} (${fp}) was not accepted; not connecting.`;
        return false;
      }
    }
  }

  private async ask(hop: IHop, p: Omit<IPrompt, 'id' | 'cluster'>): Promise<IPromptAnswer> {
    if (hop.abort.signal.aborted) {
      return { cancel: true };
    }
    if (!this.canAsk()) {
      hop.personNeeded = true;
      return { cancel: true };
    }
    try {
      const answer = await this.opts.prompt({ cluster: this.cluster, ...p }, hop.abort.signal);
      if (answer.cancel && !this.canAsk()) {
        hop.personNeeded = true; // withdrawn because the last JupyterLab went away
      }
      return answer;
    } catch (err) {
      this.log.warn(`ssh: prompt failed: ${(err as Error).message}`);
      return { cancel: true };
    }
  }

  private canAsk(): boolean {
    return this.opts.canAsk?.() ?? true;
  }

  /**
   * Before anything a person must answer is started with the server: is someone there
   * to answer, and may this account be tried again? A refusal (false) ends the login
   * with `sign-in-needed` or `sign-in-paused`; undefined: go ahead.
   */
  private interactiveRefusal(hop: IHop, account: string, what: string): string | undefined {
    if (!this.canAsk()) {
      hop.personNeeded = true;
      hop.failure =
        hop.failure ?? `${account} asks for ${what}, and no JupyterLab is open to ask you: sign in from JupyterLab.`;
      hop.failureCode = hop.failureCode ?? 'sign-in-needed';
      return hop.failure;
    }
    const blocked = this.opts.signInGuard?.blocked(account);
    if (blocked) {
      hop.failure = hop.failure ?? blocked;
      hop.failureCode = hop.failureCode ?? 'sign-in-paused';
      return blocked;
    }
    return undefined;
  }

  private makeAuthHandler(
    hop: IHop,
    isTarget: boolean,
    agentSock: string | undefined | null
  ): (methodsLeft: AuthenticationType[], partial: boolean, next: (m: AnyAuthMethod | false) => void) => void {
    const cfg = hop.cfg;
    const username = cfg.user;
    const maxTries = cfg.numberOfPasswordPrompts ?? DEFAULT_PROMPT_TRIES;
    const idFiles = this.identityFilesFor(cfg, isTarget);
    const tried: string[] = [];
    let kbdTries = 0;
    let pwTries = 0;
    let started = false;
    let cancelled = false;
    /** A one-time code or password was sent: the next call of the handler says whether it failed. */
    let interactiveSent = false;
    const account = `${username}@${cfg.hostName}${cfg.port === 22 ? '' : `:${cfg.port}`}`;

    // Candidates grouped by method, in PreferredAuthentications order.
    const groups: Record<string, () => AuthCandidate[]> = {
      publickey: () => {
        if (cfg.pubkeyAuthentication === false) {
          return [];
        }
        const out: AuthCandidate[] = [];
        const agentPath = cfg.identityAgent !== undefined ? cfg.identityAgent : agentSock;
        if (agentPath && agentPath !== 'none') {
          out.push({ kind: 'agent', agent: new RecordingAgent(agentPath, cfg.identitiesOnly ? [] : undefined) });
        }
        out.push(...idFiles.map(f => ({ kind: 'key' as const, ...f })));
        return out;
      },
      'keyboard-interactive': () =>
        cfg.kbdInteractiveAuthentication === false ? [] : [{ kind: 'keyboard-interactive' }],
      password: () => (cfg.passwordAuthentication === false ? [] : [{ kind: 'password' }])
    };
    const order = (cfg.preferredAuthentications ?? ['publickey', 'keyboard-interactive', 'password']).filter(
      m => m in groups
    );
    const candidates: AuthCandidate[] = [...new Set(order)].flatMap(m => groups[m]());
    let idx = 0;

    const agentCandidate = candidates.find(c => c.kind === 'agent') as
      { kind: 'agent'; agent: RecordingAgent } | undefined;
    const allowedAgentKeysReady: Promise<void> = (async () => {
      if (agentCandidate && cfg.identitiesOnly) {
        // IdentitiesOnly: the agent may only offer the keys of the identity files.
        for (const f of idFiles) {
          const pub = await readPublicKey(f.file);
          if (pub) {
            agentCandidate.agent.allowed?.push(pub);
          }
        }
      }
    })();

    const abort = (message: string, code: string): false => {
      hop.failure = hop.failure ?? message;
      hop.failureCode = hop.failureCode ?? code;
      return false;
    };

    const pickNext = async (methodsLeft: AuthenticationType[]): Promise<AnyAuthMethod | false> => {
      await allowedAgentKeysReady;
      if (cancelled) {
        return abort(`Login to ${username}@${hop.label} was cancelled.`, 'auth-cancelled');
      }
      while (idx < candidates.length) {
        const c = candidates[idx];
        if (!methodsLeft.includes(METHOD_OF[c.kind])) {
          idx++;
          continue;
        }
        switch (c.kind) {
          case 'agent':
            idx++;
            tried.push('ssh-agent keys');
            return { type: 'agent', username, agent: c.agent };
          case 'key': {
            idx++;
            const key = await this.loadKey(hop, c.file, c.explicit, agentCandidate?.agent.offered ?? []);
            if (key === 'cancel') {
              continue;
            }
            if (!key) {
              continue;
            }
            tried.push(`key ${c.file}`);
            return { type: 'publickey', username, key };
          }
          case 'keyboard-interactive': {
            if (kbdTries >= maxTries) {
              idx++;
              continue;
            }
            if (this.interactiveRefusal(hop, account, 'a one-time code or password')) {
              return false;
            }
            kbdTries++;
            if (kbdTries === 1) {
              tried.push('keyboard-interactive');
            }
            return {
              type: 'keyboard-interactive',
              username,
              prompt: (
                name: string,
                instructions: string,
                _lang: string,
                prompts: Ssh2Prompt[],
                finish: (answers: string[]) => void
              ) => {
                if (prompts.length === 0) {
                  finish([]); // an information message only: nothing to answer
                  return;
                }
                hop.timer?.pause();
                void this.ask(hop, {
                  kind: 'keyboard-interactive',
                  host: hop.label,
                  title: name || `Login to ${username}@${hop.label}`,
                  instructions:
                    (instructions || '') +
                      (kbdTries > 1 ? `${instructions ? ' ' : ''}(attempt ${kbdTries} of ${maxTries})` : '') ||
                    undefined,
                  questions: prompts.map(p => ({ text: p.prompt, echo: p.echo === true }))
                }).then(answer => {
                  hop.timer?.resume();
                  const answers = answer.cancel ? undefined : answer.answers;
                  if (!answers || !completeAnswers(prompts, answers)) {
                    // Never send empty or partial answers: the server would count a failed
                    // attempt (and lockouts count those). Leave before answering instead.
                    cancelled = true;
                    abort(
                      hop.personNeeded
                        ? `${account} asks for a one-time code or password, and no JupyterLab is open to ask you: sign in from JupyterLab.`
                        : `Login to ${username}@${hop.label} was cancelled.`,
                      hop.personNeeded ? 'sign-in-needed' : 'auth-cancelled'
                    );
                    hop.client.end();
                    return;
                  }
                  interactiveSent = true;
                  finish(prompts.map((_p, i) => answers[i]));
                });
              }
            };
          }
          case 'password': {
            if (pwTries >= maxTries) {
              idx++;
              continue;
            }
            if (this.interactiveRefusal(hop, account, 'a password')) {
              return false;
            }
            pwTries++;
            if (pwTries === 1) {
              tried.push('password');
            }
            hop.timer?.pause();
            const answer = await this.ask(hop, {
              kind: 'password',
              host: hop.label,
              title: `Password for ${username}@${hop.label}`,
              instructions: pwTries > 1 ? `Wrong password; try again (attempt ${pwTries} of ${maxTries}).` : undefined,
              questions: [{ text: `Password for ${username}@${hop.label}:`, echo: false }]
            });
            hop.timer?.resume();
            if (answer.cancel || !answer.answers || !answer.answers[0]) {
              return hop.personNeeded
                ? abort(
                    `${account} asks for a password, and no JupyterLab is open to ask you: sign in from JupyterLab.`,
                    'sign-in-needed'
                  )
                : abort(`Login to ${username}@${hop.label} was cancelled.`, 'auth-cancelled');
            }
            interactiveSent = true;
            return { type: 'password', username, password: answer.answers[0] };
          }
        }
      }
      if (hop.personNeeded) {
        // e.g. an encrypted key whose passphrase nobody could be asked for
        return abort(
          `Logging in to ${username}@${hop.label} needs you (a passphrase): sign in from JupyterLab.`,
          'sign-in-needed'
        );
      }
      return abort(
        `Authentication failed for ${username}@${hop.label}: the server accepts ${methodsLeft.join(', ') || 'nothing'}` +
          `; tried ${tried.join(', ') || 'nothing it accepts'}.`,
        'auth-failed'
      );
    };

    return (methodsLeft, partial, next) => {
      if (interactiveSent) {
        // Called again after a code or password was sent: refused (unless it was one step
        // of several, which the server reports as a partial success).
        interactiveSent = false;
        if (!partial) {
          this.opts.signInGuard?.failed(account);
        }
      }
      if (!started || methodsLeft === null) {
        started = true;
        if (methodsLeft === null) {
          // Ask with "none" first: the server answers with the methods it accepts.
          next({ type: 'none', username });
          return;
        }
      }
      pickNext(methodsLeft ?? []).then(next, (err: Error) => {
        next(abort(`Authentication on ${hop.label} failed: ${err.message}`, 'auth-failed'));
      });
    };
  }

  /**
   * Reads a private key; prompts for the passphrase of an encrypted one. Returns
   * undefined to skip the key (missing, unusable, offered by the agent already).
   */
  private async loadKey(
    hop: IHop,
    file: string,
    explicit: boolean,
    agentOffered: Buffer[]
  ): Promise<ParsedKey | undefined | 'cancel'> {
    let data: Buffer;
    try {
      data = await fsp.readFile(file);
    } catch (err) {
      if (explicit) {
        this.log.warn(
          `ssh: identity file ${file} for ${hop.label} cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`
        );
      }
      return undefined;
    }
    if (agentOffered.length) {
      const pub = await readPublicKey(file);
      if (pub && agentOffered.some(b => b.equals(pub))) {
        return undefined; // the agent has offered this key already
      }
    }
    let parsed = firstKey(sshUtils.parseKey(data));
    const unlocked = this.unlockedKeys.get(file);
    if (parsed instanceof Error && unlocked) {
      return unlocked; // an earlier hop of this connect() asked for its passphrase
    }
    if (parsed instanceof Error && /no passphrase given/i.test(parsed.message)) {
      const tries = hop.cfg.numberOfPasswordPrompts ?? DEFAULT_PROMPT_TRIES;
      for (let i = 1; i <= tries; i++) {
        hop.timer?.pause();
        const answer = await this.ask(hop, {
          kind: 'passphrase',
          host: hop.label,
          title: `Passphrase for ${path.basename(file)}`,
          instructions:
            i > 1
              ? `Wrong passphrase; try again (attempt ${i} of ${tries}).`
              : `The key ${file} is encrypted; its passphrase unlocks it for logging in to ${hop.label}.`,
          questions: [{ text: `Enter passphrase for key ${file}:`, echo: false }]
        });
        hop.timer?.resume();
        if (answer.cancel || !answer.answers || answer.answers[0] === undefined) {
          this.log.info(`ssh: passphrase for ${file} not given; skipping that key`);
          return 'cancel';
        }
        parsed = firstKey(sshUtils.parseKey(data, answer.answers[0]));
        if (!(parsed instanceof Error)) {
          this.unlockedKeys.set(file, parsed);
          break;
        }
      }
      if (parsed instanceof Error) {
        this.log.warn(`ssh: wrong passphrase for ${file}; skipping that key`);
        return undefined;
      }
    }
    if (parsed instanceof Error) {
      this.log.warn(`ssh: cannot use identity file ${file}: ${parsed.message}`);
      return undefined;
    }
    if (!parsed.isPrivateKey()) {
      this.log.warn(`ssh: identity file ${file} holds no private key; skipping it`);
      return undefined;
    }
    return parsed;
  }

  private spawnProxyCommand(cfg: IResolvedHost): Duplex {
    let command: string;
    try {
      command = percentExpand(cfg.proxyCommand!, {
        h: cfg.hostName,
        p: String(cfg.port),
        r: cfg.user,
        n: cfg.alias,
        u: this.localUser,
        d: this.homeDir
      });
    } catch (err) {
      throw new SshConnectionError(
        `The ProxyCommand for ${hopLabel(cfg)} cannot be used: ${(err as Error).message}.`,
        'config'
      );
    }
    this.log.info(`ssh: reaching ${hopLabel(cfg)} through its ProxyCommand`);
    return new ProxyCommandStream(command, cfg.alias, this.log);
  }

  /** A direct-tcpip channel from `hop` to host:port. */
  private openForward(hop: IHop, host: string, port: number, forHop: boolean): Promise<ClientChannel> {
    return new Promise((resolve, reject) => {
      try {
        hop.client.forwardOut('127.0.0.1', 0, host, port, (err, ch) => {
          if (err) {
            const reason = err.message.replace(/^\(SSH\) Channel open failure: /, '');
            reject(
              new SshConnectionError(
                `${hop.label} could not open a connection to ${host}:${port} (${reason || 'refused'}).`,
                forHop ? 'jump-failed' : 'forward-failed',
                hop.label
              )
            );
            return;
          }
          ch.on('error', (e: Error) => this.log.debug(`ssh: channel to ${host}:${port}: ${e.message}`));
          resolve(ch);
        });
      } catch (err) {
        reject(
          new SshConnectionError(
            `Not connected to ${hop.label} (${(err as Error).message}).`,
            'not-connected',
            hop.label
          )
        );
      }
    });
  }

  /** The pty session that makes sshd switch the connection to TCP_NODELAY. */
  private openKeeper(hop: IHop): Promise<void> {
    return new Promise(resolve => {
      try {
        hop.client.exec('cat', { pty: { term: 'dumb', rows: 24, cols: 80 } }, (err, ch) => {
          if (err) {
            this.log.debug(`ssh: no pty session on ${hop.label} (${err.message}); interactive latency may suffer`);
            resolve();
            return;
          }
          hop.keeper = ch;
          ch.on('data', () => undefined);
          ch.stderr.on('data', () => undefined);
          ch.on('error', () => undefined);
          ch.on('close', () => {
            if (hop.keeper === ch) {
              hop.keeper = undefined;
            }
          });
          resolve();
        });
      } catch (err) {
        this.log.debug(`ssh: no pty session on ${hop.label}: ${(err as Error).message}`);
        resolve();
      }
    });
  }

  private onHopClosed(hop: IHop): void {
    if (!this.hops.includes(hop)) {
      return;
    }
    const wasConnected = this._state === 'connected';
    const why = hop.lastError ? `: ${hop.lastError}` : '';
    this.teardown();
    if (this.closing) {
      return;
    }
    if (wasConnected) {
      const message = `Connection to ${hop.label} was lost${why}.`;
      this.log.warn(`ssh: ${message}`);
      this.setState('closed', message);
    }
  }

  /** Ends every hop, last first, without waiting. */
  private teardown(): void {
    const hops = this.hops;
    this.hops = [];
    this.sftpPromise = undefined;
    for (const hop of [...hops].reverse()) {
      hop.timer?.clear();
      try {
        hop.keeper?.close();
      } catch {
        // channel already gone
      }
      try {
        hop.client.end();
      } catch {
        // already closed
      }
    }
  }

  private lastHop(): IHop {
    const hop = this.hops[this.hops.length - 1];
    if (this._state !== 'connected' || !hop) {
      throw new SshConnectionError(`Not connected to ${this.cluster}.`, 'not-connected');
    }
    return hop;
  }

  /**
   * Runs a command on the target; output is bounded. On timeout the command gets
   * SIGKILL (OpenSSH >= 7.9 honours "signal" requests), its channel is closed and the
   * promise rejects at once; its session slot is freed when the server closes the
   * channel (or after a grace period).
   */
  async exec(command: string, options: IExecOptions = {}): Promise<IExecResult> {
    const hop = this.lastHop();
    await this.execSlots.acquire();
    let released = false;
    const release = (): void => {
      if (!released) {
        released = true;
        this.execSlots.release();
      }
    };
    return new Promise<IExecResult>((resolve, reject) => {
      const max = options.maxOutputBytes ?? DEFAULT_MAX_OUTPUT;
      let refusals = 0;
      const onExec = (err: Error | undefined, ch: ClientChannel): void => {
        if (err) {
          // OpenSSH refuses a session (CHANNEL_OPEN_FAILURE "open failed") while it has
          // MaxSessions open, and it still counts sessions we have already closed until a
          // main-loop turn later, so under load a burst can briefly exceed the limit. A
          // refused *session* is transient: try again shortly, for up to about 5 s.
          if (
            typeof (err as Error & { reason?: unknown }).reason === 'number' &&
            refusals < SESSION_RETRY_DELAYS_MS.length
          ) {
            const delay = SESSION_RETRY_DELAYS_MS[refusals++];
            this.log.debug(`ssh: ${hop.label} refused a session (${err.message}); retrying in ${delay} ms`);
            setTimeout(start, delay).unref();
            return;
          }
          release();
          reject(
            new SshConnectionError(`Could not run a command on ${hop.label}: ${err.message}.`, 'exec-failed', hop.label)
          );
          return;
        }
        const out: Buffer[] = [];
        const errOut: Buffer[] = [];
        let outLen = 0;
        let errLen = 0;
        let truncated = false;
        let exit: { code: number | null; signal?: string } | undefined;
        let timedOut = false;
        const timer =
          options.timeoutMs && options.timeoutMs > 0
            ? setTimeout(() => {
                timedOut = true;
                sendSignal(ch, 'KILL');
                try {
                  ch.close();
                } catch {
                  // already closing
                }
                setTimeout(release, 5000).unref();
                reject(
                  new SshConnectionError(
                    `The command on ${hop.label} did not finish within ${formatSeconds(options.timeoutMs!)} and was stopped.`,
                    'timeout',
                    hop.label
                  )
                );
              }, options.timeoutMs)
            : undefined;
        const collect = (chunks: Buffer[], len: number, d: Buffer): number => {
          if (len < max) {
            chunks.push(d.subarray(0, max - len));
          }
          if (len + d.length > max) {
            truncated = true;
          }
          return len + d.length;
        };
        ch.on('data', (d: Buffer) => {
          outLen = collect(out, outLen, d);
        });
        ch.stderr.on('data', (d: Buffer) => {
          errLen = collect(errOut, errLen, d);
        });
        ch.on('exit', (code: number | null, signal?: string) => {
          exit = { code: typeof code === 'number' ? code : null, signal: signal ?? undefined };
        });
        ch.on('error', (e: Error) => this.log.debug(`ssh: exec channel on ${hop.label}: ${e.message}`));
        ch.on('close', () => {
          release();
          if (timer) {
            clearTimeout(timer);
          }
          if (timedOut) {
            return; // rejected already
          }
          if (!exit) {
            reject(
              new SshConnectionError(
                `The command on ${hop.label} ended without an exit status (was the connection lost?).`,
                'no-exit-status',
                hop.label
              )
            );
            return;
          }
          const result: IExecResult = {
            code: exit.code,
            stdout: Buffer.concat(out).toString('utf8'),
            stderr: Buffer.concat(errOut).toString('utf8')
          };
          if (exit.signal) {
            result.signal = exit.signal;
          }
          if (truncated) {
            result.truncated = true;
          }
          resolve(result);
        });
        if (options.stdin !== undefined) {
          ch.end(options.stdin);
        } else {
          ch.end();
        }
      };
      const start = (): void => {
        try {
          hop.client.exec(command, onExec);
        } catch (err) {
          release();
          reject(
            new SshConnectionError(
              `Not connected to ${hop.label} (${(err as Error).message}).`,
              'not-connected',
              hop.label
            )
          );
        }
      };
      start();
    });
  }

  /** The connection's one SFTP session (opened on first use). */
  sftp(): Promise<SFTPWrapper> {
    const hop = this.lastHop();
    if (!this.sftpPromise) {
      const p: Promise<SFTPWrapper> = new Promise((resolve, reject) => {
        try {
          hop.client.sftp((err, sftp) => {
            if (err) {
              reject(
                new SshConnectionError(
                  `Could not start SFTP on ${hop.label}: ${err.message}.`,
                  'sftp-failed',
                  hop.label
                )
              );
              return;
            }
            sftp.on('error', (e: Error) => this.log.debug(`ssh: sftp on ${hop.label}: ${e.message}`));
            sftp.on('close', () => {
              if (this.sftpPromise === p) {
                this.sftpPromise = undefined;
              }
            });
            resolve(sftp);
          });
        } catch (err) {
          reject(
            new SshConnectionError(
              `Not connected to ${hop.label} (${(err as Error).message}).`,
              'not-connected',
              hop.label
            )
          );
        }
      });
      p.catch(() => {
        if (this.sftpPromise === p) {
          this.sftpPromise = undefined;
        }
      });
      this.sftpPromise = p;
    }
    return this.sftpPromise;
  }

  /**
   * Writes a remote file with `mode` (default 0600). The mode is set on the open
   * handle before any data is written, also when the file existed already.
   */
  async writeFile(remotePath: string, data: string | Buffer, mode = 0o600): Promise<void> {
    const sftp = await this.sftp();
    const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    const label = this.lastHop().label;
    const wrap = (what: string) => (err: Error) =>
      new SshConnectionError(`Could not ${what} ${remotePath} on ${label}: ${err.message}.`, 'sftp-failed', label);
    const handle = await new Promise<Buffer>((resolve, reject) =>
      sftp.open(remotePath, 'w', { mode }, (err, h) => (err ? reject(wrap('write')(err)) : resolve(h)))
    );
    try {
      await new Promise<void>((resolve, reject) =>
        sftp.fchmod(handle, mode, err => (err ? reject(wrap('set the mode of')(err)) : resolve()))
      );
      let off = 0;
      const CHUNK = 32 * 1024;
      while (off < buf.length) {
        const len = Math.min(CHUNK, buf.length - off);
        await new Promise<void>((resolve, reject) =>
          sftp.write(handle, buf, off, len, off, err => (err ? reject(wrap('write')(err)) : resolve()))
        );
        off += len;
      }
    } finally {
      await new Promise<void>(resolve => sftp.close(handle, () => resolve()));
    }
  }

  /** Reads a whole remote file. */
  /**
   * A remote file's content, at most `maxBytes` (default 1 MiB): a bigger file is refused
   * without being read whole (files of the cluster side are small, and may be chosen by
   * whoever controls the node).
   */
  async readFile(remotePath: string, maxBytes = 1 << 20): Promise<Buffer> {
    const sftp = await this.sftp();
    const label = this.lastHop().label;
    const failed = (why: string): SshConnectionError =>
      new SshConnectionError(`Could not read ${remotePath} on ${label}: ${why}.`, 'sftp-failed', label);
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      // `end` is inclusive: one byte more than allowed tells a file that is too big.
      const stream = sftp.createReadStream(remotePath, { start: 0, end: maxBytes });
      stream.on('data', (c: Buffer) => {
        size += c.length;
        chunks.push(c);
        if (size > maxBytes) {
          stream.destroy();
          reject(failed(`it is larger than ${maxBytes} bytes`));
        }
      });
      stream.on('error', (err: Error) => reject(failed(err.message)));
      stream.on('end', () => resolve(Buffer.concat(chunks)));
    });
  }

  /** `mkdir -p` with `mode` (default 0700) for the directories it creates. */
  async mkdirp(remotePath: string, mode = 0o700): Promise<void> {
    const sftp = await this.sftp();
    const label = this.lastHop().label;
    const parts = remotePath.split('/');
    let cur = remotePath.startsWith('/') ? '' : '.';
    for (const part of parts) {
      if (!part || part === '.') {
        continue;
      }
      cur = cur === '' ? `/${part}` : `${cur}/${part}`;
      const isDir = await new Promise<boolean | undefined>(resolve =>
        sftp.stat(cur, (err, st) => resolve(err ? undefined : st.isDirectory()))
      );
      if (isDir === false) {
        throw new SshConnectionError(
          `Cannot create ${remotePath} on ${label}: ${cur} is not a directory.`,
          'sftp-failed',
          label
        );
      }
      if (isDir === undefined) {
        await new Promise<void>((resolve, reject) =>
          sftp.mkdir(cur, { mode }, err => {
            if (!err) {
              resolve();
              return;
            }
            // Someone else may have created it meanwhile.
            sftp.stat(cur, (e2, st) =>
              !e2 && st.isDirectory()
                ? resolve()
                : reject(
                    new SshConnectionError(`Cannot create ${cur} on ${label}: ${err.message}.`, 'sftp-failed', label)
                  )
            );
          })
        );
      }
    }
  }

  /** A TCP connection from the target (login node) to host:port (direct-tcpip). */
  forwardOut(host: string, port: number): Promise<ClientChannel> {
    if (!/^[A-Za-z0-9._:-]+$/.test(host) || !Number.isInteger(port) || port < 1 || port > 65535) {
      return Promise.reject(
        new SshConnectionError(`Refusing to forward to ${JSON.stringify(host)}:${port}.`, 'bad-request')
      );
    }
    try {
      return this.openForward(this.lastHop(), host, port, false);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** A connection from the target to a Unix socket on it (streamlocal). */
  forwardOutStreamLocal(socketPath: string): Promise<ClientChannel> {
    let hop: IHop;
    try {
      hop = this.lastHop();
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise((resolve, reject) => {
      try {
        hop.client.openssh_forwardOutStreamLocal(socketPath, (err, ch) => {
          if (err) {
            const reason = err.message.replace(/^\(SSH\) Channel open failure: /, '');
            reject(
              new SshConnectionError(
                `${hop.label} could not connect to the socket ${socketPath} (${reason || 'refused'}).`,
                'forward-failed',
                hop.label
              )
            );
            return;
          }
          ch.on('error', (e: Error) => this.log.debug(`ssh: channel to ${socketPath}: ${e.message}`));
          resolve(ch);
        });
      } catch (err) {
        reject(
          new SshConnectionError(
            `Not connected to ${hop.label} (${(err as Error).message}).`,
            'not-connected',
            hop.label
          )
        );
      }
    });
  }

  /**
   * An SSH connection to a compute node through the target (connectivity node-ssh):
   * a direct-tcpip channel to node:22 from the login node carries a new SSH client with
   * the target's user and credentials. Its host key is checked like any hop's (the same
   * known_hosts files; an unknown key is asked about, never accepted silently).
   */
  async connectNode(node: string, timeoutMs = 15_000): Promise<NodeConnection> {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(node)) {
      throw new SshConnectionError(`Refusing to connect to the node ${JSON.stringify(node)}.`, 'bad-request');
    }
    const login = this.lastHop();
    const cfg: IResolvedHost = {
      ...login.cfg,
      alias: node,
      hostName: node,
      port: 22,
      hostKeyAlias: undefined,
      proxyJump: undefined,
      proxyCommand: undefined,
      warnings: []
    };
    // A firewall that drops SYNs makes the login node wait minutes: give up sooner.
    let timer: NodeJS.Timeout | undefined;
    let late = false;
    const opening = this.openForward(login, node, 22, true);
    const sock = await Promise.race([
      opening,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          late = true;
          reject(
            new SshConnectionError(
              `${login.label} could not open a connection to ${node}:22 within ${formatSeconds(timeoutMs)} (no answer: a firewall?).`,
              'timeout',
              login.label
            )
          );
        }, timeoutMs);
      })
    ]).finally(() => clearTimeout(timer));
    void opening.then(
      ch => late && ch.close(),
      () => undefined
    );
    const hop = await this.connectHop(cfg, sock, true);
    if (this.opts.keepPtySession !== false) {
      await this.openKeeper(hop);
    }
    this.log.info(`ssh: connected to ${cfg.user}@${hop.label} via ${login.label}`);
    return new NodeConnection(hop.client, hop.label, this.log);
  }

  /** Closes every session and hop; resolves once the first hop's socket is closed. */
  async close(): Promise<void> {
    this.closing = true;
    this.generation++;
    if (this.connecting) {
      // doConnect() notices, tears down what it built and reports `closed`.
      this.abortPending?.();
      await this.connecting.catch(() => undefined);
      return;
    }
    const hops = this.hops;
    const first = hops[0];
    const wasOpen = this._state !== 'closed' || hops.length > 0;
    const closed = first
      ? new Promise<void>(resolve => {
          const t = setTimeout(() => {
            destroyClient(first.client);
            resolve();
          }, 3000);
          first.client.once('close', () => {
            clearTimeout(t);
            resolve();
          });
        })
      : Promise.resolve();
    if (this.sftpPromise) {
      const p = this.sftpPromise;
      this.sftpPromise = undefined;
      p.then(
        s => s.end(),
        () => undefined
      );
    }
    this.teardown();
    await closed;
    if (wasOpen) {
      this.setState('closed', `Disconnected from ${this.cluster}.`);
    }
  }
}

/**
 * Drops a client's transport at once. Client.destroy() does nothing once the socket
 * was half-closed (e.g. by ssh2's own end() after failed authentication), and a
 * server that never reads keeps such a socket open forever; destroy it directly.
 */
function destroyClient(client: Client): void {
  try {
    client.destroy();
  } catch {
    // already gone
  }
  const sock = (client as unknown as { _sock?: { destroy?: () => void } })._sock;
  try {
    sock?.destroy?.();
  } catch {
    // already gone
  }
}

/**
 * Sends a signal request on a session channel. ssh2's Channel.signal() is silently
 * a no-op once our side sent EOF (stdin closed), which every exec does at once; the
 * request is still valid in SSH then, so go to the protocol object in that case.
 */
function sendSignal(ch: ClientChannel, name: string): void {
  const c = ch as unknown as {
    outgoing?: { id: number; state: string };
    _client?: { _protocol?: { signal?: (id: number, sig: string) => void } };
  };
  try {
    if (ch.writable) {
      ch.signal(name);
    } else if (c.outgoing?.state === 'open' && typeof c._client?._protocol?.signal === 'function') {
      c._client._protocol.signal(c.outgoing.id, name);
    }
  } catch {
    // channel gone or signal unsupported: closing the channel is all we can do
  }
}

function firstKey(k: ParsedKey | ParsedKey[] | Error): ParsedKey | Error {
  return Array.isArray(k) ? (k[0] ?? new Error('no key found')) : k;
}

/** The public key blob of an identity file (from `file.pub`, or an unencrypted key). */
async function readPublicKey(file: string): Promise<Buffer | undefined> {
  for (const candidate of [`${file}.pub`, file]) {
    try {
      const k = firstKey(sshUtils.parseKey(await fsp.readFile(candidate)));
      if (!(k instanceof Error)) {
        return k.getPublicSSH();
      }
    } catch {
      // missing or unreadable
    }
  }
  return undefined;
}

function formatSeconds(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${Math.round(ms / 100) / 10} s`;
}

function describeError(err: Error & { level?: string; code?: string }, label: string, cfg: IResolvedHost): string {
  const addr = `${cfg.hostName}:${cfg.port}`;
  switch (err.code) {
    case 'ECONNREFUSED':
      return `Could not connect to ${label}: connection refused at ${addr}.`;
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return `Could not connect to ${label}: ${addr} is unreachable from here.`;
    case 'ETIMEDOUT':
      return `Could not connect to ${label}: ${addr} did not answer.`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `Could not connect to ${label}: the host name ${cfg.hostName} cannot be resolved.`;
    case 'ECONNRESET':
      return `The connection to ${label} was reset.`;
    default:
      break;
  }
  if (err.level === 'client-authentication') {
    return `Authentication failed for ${cfg.user}@${label}.`;
  }
  if (err.level === 'handshake' || err.level === 'protocol') {
    return `SSH handshake with ${label} failed: ${err.message}.`;
  }
  return `SSH connection to ${label} failed: ${err.message}.`;
}

/** An SSH connection to a compute node (see ClusterConnection.connectNode). */
export class NodeConnection {
  private closed = false;
  private readonly closeListeners: ((message: string) => void)[] = [];

  constructor(
    private readonly client: Client,
    readonly label: string,
    private readonly log: Required<IConnectionLogger>
  ) {
    let lastError = '';
    client.on('error', (e: Error) => {
      lastError = e.message;
      log.warn(`ssh: ${label}: ${e.message}`);
    });
    client.on('close', () => {
      this.closed = true;
      this.closeListeners
        .splice(0)
        .forEach(l => l(`Connection to ${label} closed${lastError ? `: ${lastError}` : ''}.`));
    });
  }

  get isClosed(): boolean {
    return this.closed;
  }

  onClose(listener: (message: string) => void): void {
    if (this.closed) {
      listener(`Connection to ${this.label} closed.`);
    } else {
      this.closeListeners.push(listener);
    }
  }

  /** A TCP connection from the node to host:port (e.g. its own loopback). */
  forwardOut(host: string, port: number): Promise<ClientChannel> {
    if (!/^[A-Za-z0-9._:-]+$/.test(host) || !Number.isInteger(port) || port < 1 || port > 65535) {
      return Promise.reject(
        new SshConnectionError(`Refusing to forward to ${JSON.stringify(host)}:${port}.`, 'bad-request')
      );
    }
    return this.open(`${host}:${port}`, cb => this.client.forwardOut('127.0.0.1', 0, host, port, cb));
  }

  /** A connection to a Unix socket on the node (streamlocal). */
  forwardOutStreamLocal(socketPath: string): Promise<ClientChannel> {
    if (!socketPath.startsWith('/')) {
      return Promise.reject(
        new SshConnectionError(`Refusing to forward to the socket ${JSON.stringify(socketPath)}.`, 'bad-request')
      );
    }
    return this.open(`the socket ${socketPath}`, cb => this.client.openssh_forwardOutStreamLocal(socketPath, cb));
  }

  private open(
    what: string,
    start: (cb: (err: Error | undefined, ch: ClientChannel) => void) => void
  ): Promise<ClientChannel> {
    if (this.closed) {
      return Promise.reject(new SshConnectionError(`Not connected to ${this.label}.`, 'not-connected', this.label));
    }
    return new Promise((resolve, reject) => {
      try {
        start((err, ch) => {
          if (err) {
            const reason = err.message.replace(/^\(SSH\) Channel open failure: /, '');
            reject(
              new SshConnectionError(
                `${this.label} could not connect to ${what} (${reason || 'refused'}).`,
                'forward-failed',
                this.label
              )
            );
            return;
          }
          ch.on('error', (e: Error) => this.log.debug(`ssh: channel to ${what} on ${this.label}: ${e.message}`));
          resolve(ch);
        });
      } catch (err) {
        reject(
          new SshConnectionError(
            `Not connected to ${this.label} (${(err as Error).message}).`,
            'not-connected',
            this.label
          )
        );
      }
    });
  }

  close(): void {
    if (!this.closed) {
      this.client.end();
    }
  }
}

/** Every question that hides its answer (a code, a password) has one; never an empty set. */
function completeAnswers(prompts: Ssh2Prompt[], answers: string[]): boolean {
  return prompts.every((p, i) => typeof answers[i] === 'string' && (p.echo === true || answers[i] !== ''));
}
