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
 *
 * This class keeps the state and the hops; each concern lives beside it (README.md):
 * auth.ts, host-key-check.ts, exec.ts, sftp.ts, forward.ts, socket-tuning.ts,
 * proxy-command.ts, node-connection.ts. hop.ts is one hop's state; types.ts the public
 * types, re-exported here so importers keep importing from this file.
 */
import { EventEmitter } from 'node:events';
import * as os from 'node:os';
import type { Duplex } from 'node:stream';

import {
  Client,
  type Algorithms,
  type AuthHandlerMiddleware,
  type ClientChannel,
  type ConnectConfig,
  type ParsedKey,
  type SFTPWrapper
} from 'ssh2';

import type { IPrompt, IPromptAnswer } from '../../common/api';
import { makeAuthHandler, type IAuthContext } from './auth';
import { execOnHop, Semaphore } from './exec';
import { openForward, openStreamLocal } from './forward';
import { describeError, destroyClient, formatSeconds, hopLabel, PausableTimer, type IHop } from './hop';
import { appendPendingHostKey, hostKeyAlgorithmsFor, knownHostsFor, verifyHostKey } from './host-key-check';
import { NodeConnection } from './node-connection';
import { spawnProxyCommand } from './proxy-command';
import { openSftp, sftpMkdirp, sftpReadFile, sftpWriteFile } from './sftp';
import { openKeeper, tuneClientSocket } from './socket-tuning';
import { resolveChain, type IResolvedHost } from './ssh-config';
import {
  SshConnectionError,
  type ConnectionState,
  type IClusterConnectionOptions,
  type IConnectionLogger,
  type IExecOptions,
  type IExecResult,
  type IHopInfo
} from './types';

// What this file's users name with the class (the rest: index.ts, from types.ts).
export type { ConnectionState, IClusterConnectionOptions, PromptFn } from './types';

const DEFAULT_CONNECT_TIMEOUT_MS = 20000;
const DEFAULT_KEEPALIVE_MS = 15000;
const DEFAULT_KEEPALIVE_COUNT = 4;
/** A connect that failed before any byte reached an SSH server (code `unreachable`). */
const UNREACHABLE = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENETDOWN', 'ETIMEDOUT']);

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
  private readonly hopCtx: IAuthContext;
  private generation = 0;
  /**
   * Keys unlocked with a passphrase during the current connect(), so a key used on every
   * hop of a chain is asked for once. Dropped when connect() ends: decrypted keys are not
   * kept in memory longer than logging in needs them.
   */
  private readonly unlockedKeys = new Map<string, ParsedKey>();
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
    // What auth.ts and host-key-check.ts may use of this connection (options read when used).
    this.hopCtx = {
      log: this.log,
      homeDir: this.homeDir,
      unlockedKeys: this.unlockedKeys,
      get targetIdentityFiles() {
        return options.target.identityFiles;
      },
      get targetCertificateFiles() {
        return options.target.certificateFiles;
      },
      get signInGuard() {
        return options.signInGuard;
      },
      canAsk: () => this.canAsk(),
      ask: (hop, p) => this.ask(hop, p)
    };
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
          sock = await openForward(this.hops[i - 1], cfg.hostName, cfg.port, true, this.log);
        } else if (cfg.proxyCommand && cfg.proxyCommand.toLowerCase() !== 'none') {
          sock = spawnProxyCommand(cfg, this.localUser, this.homeDir, this.log);
        }
        const hop = await this.connectHop(cfg, sock, isTarget);
        if (gen !== this.generation || this.closing) {
          hop.client.end();
          throw new SshConnectionError(`Connecting to ${this.cluster} was cancelled.`, 'cancelled');
        }
        this.hops.push(hop);
        if (this.opts.keepPtySession !== false) {
          await openKeeper(hop, this.log);
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

  private async connectHop(cfg: IResolvedHost, sock: Duplex | undefined, isTarget: boolean): Promise<IHop> {
    const label = hopLabel(cfg);
    const client = new Client();
    const hop: IHop = { cfg, label, client, accepted: [], abort: new AbortController() };
    const kh = knownHostsFor(cfg, this.opts.target.knownHostsFiles, this.homeDir);
    const keyName = cfg.hostKeyAlias ?? cfg.hostName;
    const keyPort = cfg.hostKeyAlias ? 22 : cfg.port;

    let serverHostKey: Algorithms['serverHostKey'];
    try {
      serverHostKey = await hostKeyAlgorithmsFor(kh.check, keyName, keyPort);
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

      client.on('handshake', () => appendPendingHostKey(hop, this.log));
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
        fail(
          describeError(err, label, cfg),
          err.level === 'client-authentication' ? 'auth' : UNREACHABLE.has(err.code ?? '') ? 'unreachable' : 'network'
        );
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
          verifyHostKey(this.hopCtx, hop, key, kh, keyName, keyPort).then(verify, (err: Error) => {
            hop.failure = hop.failure ?? `Cannot check the host key of ${label}: ${err.message}`;
            hop.failureCode = hop.failureCode ?? 'known-hosts';
            verify(false);
          });
        },
        // ssh2 accepts `false` ("no more methods"); its typings do not say so.
        authHandler: makeAuthHandler(this.hopCtx, hop, isTarget, agentSock) as unknown as AuthHandlerMiddleware
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
        tuneClientSocket(client, !sock);
      } catch (err) {
        fail(`SSH connection to ${label} failed: ${(err as Error).message}`, 'error');
      }
    });
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
    return execOnHop(hop, command, options, this.execSlots, this.log);
  }

  /** The connection's one SFTP session (opened on first use). */
  sftp(): Promise<SFTPWrapper> {
    const hop = this.lastHop();
    if (!this.sftpPromise) {
      const p: Promise<SFTPWrapper> = openSftp(hop, this.log, () => {
        if (this.sftpPromise === p) {
          this.sftpPromise = undefined;
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
    return sftpWriteFile(sftp, this.lastHop().label, remotePath, data, mode);
  }

  /** Reads a whole remote file. */
  /**
   * A remote file's content, at most `maxBytes` (default 1 MiB): a bigger file is refused
   * without being read whole (files of the cluster side are small, and may be chosen by
   * whoever controls the node).
   */
  async readFile(remotePath: string, maxBytes = 1 << 20): Promise<Buffer> {
    const sftp = await this.sftp();
    return sftpReadFile(sftp, this.lastHop().label, remotePath, maxBytes);
  }

  /** `mkdir -p` with `mode` (default 0700) for the directories it creates. */
  async mkdirp(remotePath: string, mode = 0o700): Promise<void> {
    const sftp = await this.sftp();
    return sftpMkdirp(sftp, this.lastHop().label, remotePath, mode);
  }

  /** A TCP connection from the target (login node) to host:port (direct-tcpip). */
  forwardOut(host: string, port: number): Promise<ClientChannel> {
    if (!/^[A-Za-z0-9._:-]+$/.test(host) || !Number.isInteger(port) || port < 1 || port > 65535) {
      return Promise.reject(
        new SshConnectionError(`Refusing to forward to ${JSON.stringify(host)}:${port}.`, 'bad-request')
      );
    }
    try {
      return openForward(this.lastHop(), host, port, false, this.log);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** An interactive login shell on the target, on a pty of this size (a login-node terminal). */
  shell(rows: number, cols: number): Promise<ClientChannel> {
    let hop: IHop;
    try {
      hop = this.lastHop();
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise((resolve, reject) => {
      hop.client.shell({ term: 'xterm-256color', rows, cols }, (err, channel) =>
        err
          ? reject(new SshConnectionError(`${hop.label} refused a shell: ${err.message}`, 'shell-refused'))
          : resolve(channel)
      );
    });
  }

  /** A connection from the target to a Unix socket on it (streamlocal). */
  forwardOutStreamLocal(socketPath: string): Promise<ClientChannel> {
    let hop: IHop;
    try {
      hop = this.lastHop();
    } catch (err) {
      return Promise.reject(err);
    }
    return openStreamLocal(hop, socketPath, this.log);
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
    const opening = openForward(login, node, 22, true, this.log);
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
      await openKeeper(hop, this.log);
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
