/**
 * Sessions: one batch job (allocation) per session, hosting kernels and, optionally, a
 * Dask scheduler. The manager drives each session through
 *   submitting -> queued -> starting -> running -> ended
 * with one SSH link per cluster, one batched status query per cluster per cycle, and
 * the helper's state file (read over SFTP) as the cheap liveness signal.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';

import type { AgentEvent, ConnectionState, IClusterProfile, IResources, ISession } from '../../common/api';
import { proxiedPrefix } from '../../common/routes';
import { shQuote } from '../schedulers/shell';
import {
  ConflictError,
  InvalidRequestError,
  NotFoundError,
  SchedulerUnavailableError,
  type ICommandResult,
  type IJobStatus,
  type ISchedulerAdapter
} from '../schedulers/types';
import { makeSessionTls, sessionTlsName } from '../tls/x509';
import { LocalForward } from '../tunnels/local-forward';
import type { IRelayCredentials } from '../tunnels/relay';
import {
  autoOrder,
  HELPER_PROTOCOL,
  kernelSockets,
  kernelTransport,
  ModeMemory,
  openControl,
  openHttpPort,
  openKernelChannel,
  PROBE_TIMEOUT_MS,
  requestOver,
  withTimeout,
  type ChannelPort,
  type IHelperEndpoints,
  type IKernelStart,
  type IRoute,
  type ResolvedMode
} from './connectivity';
import type { IClusterLink, LinkFactory } from './link';
import { SessionStore, type IRetention } from './store';

/** Remote layout, under the user's home on the cluster (shared with the nodes). */
export const REMOTE_ROOT = '.jupyter-remote-cluster';

const POLL_STARTING_MS = 3_000;
const POLL_STEADY_MS = 30_000;
/** Fast polling lasts this long after a session is queued or starts: a long wait in the queue slows down. */
const POLL_FAST_FOR_MS = 120_000;
/** With every helper's heartbeat fresh, the scheduler itself is asked this often. */
const POLL_SCHEDULER_RECHECK_MS = 300_000;
/** Failures back off exponentially up to this; a slow answer waits this many times its duration. */
const POLL_BACKOFF_MAX_MS = 300_000;
const POLL_SLOW_FACTOR = 10;
/** Reconnect backoff: 1 s, 2 s, 4 s ... at most 15 s between attempts (a restored link is picked up within 15 s). */
const RECONNECT_FIRST_MS = 1_000;
const RECONNECT_MAX_MS = 15_000;
/** Failures that retrying cannot fix: the user must act (host key, config, a cancelled prompt). */
const PERMANENT_SSH_FAILURES = new Set([
  'config',
  'known-hosts',
  'host-key-changed',
  'host-key-revoked',
  'host-key-certificate',
  'host-key-rejected',
  'host-key-unknown'
]);
/**
 * Failures only a person can get past (a code, a password, a cancelled prompt): the link
 * waits in `sign-in-needed` and nothing but the user (Sign in, a submit) starts a login,
 * so no poll, reconnect or kernel ever sends the server a login nobody can answer.
 */
const SIGN_IN_FAILURES = new Set(['sign-in-needed', 'sign-in-paused', 'auth-cancelled']);
/** Batch system names as users know them, for messages. */
const SCHEDULER_TITLES: Record<string, string> = {
  slurm: 'Slurm',
  pbs: 'PBS',
  pbspro: 'PBS',
  torque: 'Torque',
  sge: 'Grid Engine',
  lsf: 'LSF',
  htcondor: 'HTCondor',
  ssh: 'SSH host'
};
/** A helper heartbeat older than this while the job runs means the helper is gone. */
const HEARTBEAT_STALE_S = 90;
/** Files of the helper read over SFTP are small; anything bigger is not the helper's. */
const MAX_STATE_BYTES = 1 << 20;
const MAX_SMALL_FILE_BYTES = 64 * 1024;
/** The proxy re-reads what a session serves when its copy is older than this. */
const PORTS_FRESH_MS = 2_000;
/** The files uploaded into one versioned directory on the cluster (helper.py's siblings). */
const REMOTE_FILES = ['helper.py', 'jrc_kernel.py', 'jrc_dask_private.py'];

export interface IHelperState extends IHelperEndpoints {
  status: 'starting' | 'ready' | 'stopping' | 'failed';
  heartbeat: number;
  error?: string;
  dask?: { status?: string; error?: string; schedulerAddress?: string };
  httpPorts?: { port: number; name: string; path: string }[];
  /** Every kernel the helper runs, as of the heartbeat. */
  kernels?: Record<string, { pid: number; alive: boolean }>;
}

/** What the agent keeps about a session beyond what the frontend sees. */
interface ISessionRecord extends ISession {
  clusterKey: string;
  remoteDir: string;
  /** Session started by a profile kernelspec: cancelled when its kernel shuts down. */
  owner: 'user' | 'kernel';
  /** The agent-helper protocol of the helper it was started with (absent: 1, an earlier release). */
  protocol?: number;
  /**
   * The capability in the session's proxied URLs (`remote-cluster/proxied/<key>/...`):
   * whoever has it reaches what the session serves, nothing else (docs/security.md).
   * Absent in sessions of an earlier release, whose dashboards are not proxied any more.
   */
  proxyKey?: string;
  /**
   * The profile as it was when the job was submitted: the job keeps it whatever happens
   * to the profile later (renamed, edited, deleted), so it is still polled and can be
   * cancelled. Absent in sessions of an earlier release: looked up by name.
   */
  submittedProfile?: IClusterProfile;
}

export interface IKernelConnection {
  kernelId: string;
  sessionId: string;
  ip: '127.0.0.1';
  transport: 'tcp';
  signature_scheme: string;
  key: string;
  shell_port: number;
  iopub_port: number;
  stdin_port: number;
  control_port: number;
  hb_port: number;
}

interface IKernelRecord {
  kernelId: string;
  sessionId: string;
  remotePid: number;
  forwards: LocalForward[];
  connection: IKernelConnection;
  /** Stopped for a restart: ports and key are kept for the next kernel. */
  stopped: boolean;
}

export interface ISessionManagerOptions {
  stateDir: string;
  helperPath: string;
  /** Jupyter base URL ("/" headless), for the dashboard prefix and links. */
  baseUrl: string;
  profiles: () => Promise<IClusterProfile[]>;
  adapters: Record<string, ISchedulerAdapter>;
  connect: LinkFactory;
  log: (msg: string) => void;
  /** How long ended sessions are remembered (default DEFAULT_RETENTION). */
  retention?: IRetention;
}

function now(): string {
  return new Date().toISOString();
}

const CHANNELS: readonly ChannelPort[] = ['shell_port', 'iopub_port', 'stdin_port', 'control_port', 'hb_port'];

export class SessionManager {
  readonly events = new EventEmitter();
  private readonly sessions = new Map<string, ISessionRecord>();
  private readonly kernels = new Map<string, IKernelRecord>();
  /** Kernels that ended with their session or were shut down: why, for later polls. */
  private readonly endedKernels = new Map<string, string>();
  private readonly links = new Map<string, Promise<IClusterLink>>();
  /** Clusters whose link dropped and is being re-established (cancel: skip the current wait). */
  private readonly reconnecting = new Map<string, { cancel: () => void }>();
  private readonly connectionStates = new Map<string, AgentEvent>();
  /** Clusters waiting for the user to sign in, and why. */
  private readonly signInWaiting = new Map<string, string>();
  private stopped = false;
  private readonly pollers = new Map<string, NodeJS.Timeout>();
  /** Consecutive failed status cycles per cluster: back off, never hammer. */
  private readonly pollFailures = new Map<string, number>();
  private readonly homes = new Map<string, string>();
  private remoteSource?: IRemoteFiles;
  /** Per session: the helper's last state, and its token and TLS credentials (read once over SFTP). */
  private readonly helperStates = new Map<string, IHelperState>();
  private readonly stateReadAt = new Map<string, number>();
  private readonly secrets = new Map<string, { token: string; relay?: IRelayCredentials }>();
  private saving = Promise.resolve();
  private readonly store: SessionStore<ISessionRecord>;
  private readonly noticeEvents: AgentEvent[] = [];

  constructor(private readonly opts: ISessionManagerOptions) {
    this.store = new SessionStore(opts.stateDir, opts.retention);
  }

  /* ---------------- persistence ---------------- */

  /**
   * Reads the stored sessions (and prunes ended ones past the retention rule). A sessions
   * file that could not be used is kept aside by the store; its story becomes a notice.
   */
  async load(): Promise<void> {
    const { records, problem } = await this.store.load();
    if (problem) {
      this.opts.log(problem);
      this.noticeEvents.push({ type: 'notice', id: 'sessions-file', level: 'error', message: problem });
    }
    for (const s of this.store.retained(records)) {
      s.kernels = [];
      this.sessions.set(s.id, s);
      if (s.state !== 'ended') {
        this.schedulePoll(s.clusterKey, 0);
      }
    }
    if (problem || records.length !== this.sessions.size) {
      this.save();
    }
  }

  /** What the user must know that belongs to no session; replayed to new listeners. */
  notices(): AgentEvent[] {
    return [...this.noticeEvents];
  }

  /** Writes the sessions the retention rule keeps; the others are forgotten here too. */
  private save(): void {
    const all = [...this.sessions.values()];
    const kept = this.store.retained(all);
    if (kept.length !== all.length) {
      const keep = new Set(kept.map(s => s.id));
      for (const s of all.filter(x => !keep.has(x.id))) {
        this.sessions.delete(s.id);
        this.emit({ type: 'session-removed', id: s.id });
      }
    }
    this.saving = this.store.save(kept).catch(err => this.opts.log(`cannot save sessions: ${(err as Error).message}`));
  }

  /* ---------------- queries ---------------- */

  list(): ISession[] {
    return [...this.sessions.values()].map(s => this.publicView(s));
  }

  get(id: string): ISession | undefined {
    const s = this.sessions.get(id);
    return s && this.publicView(s);
  }

  private publicView(s: ISessionRecord): ISession {
    const { clusterKey: _c, remoteDir: _r, owner: _o, protocol: _p, proxyKey: _k, submittedProfile: _sp, ...pub } = s;
    const kernels = [...this.kernels.values()].filter(k => k.sessionId === s.id).map(k => k.kernelId);
    // Alive in the helper but without our forwards: their Jupyter server is gone.
    const helperKernels = s.state === 'running' ? (this.helperStates.get(s.id)?.kernels ?? {}) : {};
    const detached = Object.entries(helperKernels)
      .filter(([id, k]) => k.alive && !this.kernels.has(id) && !this.endedKernels.has(id))
      .map(([id]) => id);
    const warnings = this.warnings(s);
    return {
      ...pub,
      kernels,
      ...(detached.length > 0 && { detachedKernels: detached }),
      ...(warnings.length > 0 && { warnings })
    };
  }

  /** What the user should know about a running session that is not its state. */
  private warnings(s: ISessionRecord): string[] {
    if (s.state === 'ended') {
      return [];
    }
    const out: string[] = [];
    if ((s.protocol ?? 1) < HELPER_PROTOCOL) {
      out.push(
        'Started by an earlier version of jupyterlab-remote-cluster: its kernels, control channel and Dask ' +
          'dashboard listen on TCP ports of the node that other users of the cluster can connect to. Its kernels ' +
          'keep working, its dashboard is not shown any more; start a new session to get the protections.'
      );
    }
    const dask = this.helperStates.get(s.id)?.dask;
    if (dask?.status === 'failed' && dask.error) {
      out.push(dask.error);
    }
    return out;
  }

  private emit(event: AgentEvent): void {
    this.events.emit('event', event);
  }

  private update(s: ISessionRecord, patch: Partial<ISessionRecord>): void {
    Object.assign(s, patch, { updatedAt: now() });
    this.save();
    this.emit({ type: 'session', session: this.publicView(s) });
  }

  /* ---------------- links ---------------- */

  private clusterKey(p: IClusterProfile): string {
    const t = p.ssh;
    return [t.user ?? '', t.host, t.port ?? '', (t.jumpHosts ?? []).join(','), t.configFile ?? ''].join('|');
  }

  /**
   * The cluster's link, connecting it on first use. Every caller (polls, API requests,
   * kernel forwards re-opened by ZMQ) shares one connection and, after a drop, one
   * reconnect loop: nobody opens a second connection or asks a second OTP.
   */
  private link(profile: IClusterProfile, signIn = false): Promise<IClusterLink> {
    const key = this.clusterKey(profile);
    let link = this.links.get(key);
    const waiting = this.signInWaiting.get(key);
    if (!link && waiting !== undefined && !signIn) {
      return Promise.reject(
        Object.assign(new Error(`${waiting} (Remote sessions: Sign in.)`), { code: 'sign-in-needed' })
      );
    }
    if (!link) {
      this.signInWaiting.delete(key);
      this.publishConnection(key, profile.name, 'connecting', `Connecting to ${profile.ssh.host}.`);
      link = this.opts.connect(profile);
      this.track(key, profile, link, false);
    }
    return link;
  }

  /** The link if it is up (or comes up within `waitMs`); never waits for a reconnect loop. */
  private linkNow(profile: IClusterProfile, waitMs: number): Promise<IClusterLink> {
    const key = this.clusterKey(profile);
    if (this.reconnecting.has(key)) {
      return Promise.reject(new Error(`reconnecting to ${profile.ssh.host}`));
    }
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([
      this.link(profile),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no connection to ${profile.ssh.host} within ${waitMs / 1000} s`)),
          waitMs
        );
      })
    ]).finally(() => clearTimeout(timer));
  }

  private track(key: string, profile: IClusterProfile, link: Promise<IClusterLink>, reconnect: boolean): void {
    this.links.set(key, link);
    link.then(
      l => {
        this.reconnecting.delete(key);
        this.publishConnection(
          key,
          profile.name,
          'connected',
          reconnect ? `Reconnected to ${profile.ssh.host}.` : `Connected to ${profile.ssh.host}.`
        );
        l.onClose(message => this.lost(key, profile, message));
        if (reconnect) {
          // Catch up at once: the job may have changed state while we were away.
          this.schedulePoll(key, 0);
        }
      },
      (err: Error & { code?: string }) => {
        this.reconnecting.delete(key);
        if (this.links.get(key) === link) {
          this.links.delete(key);
        }
        if (SIGN_IN_FAILURES.has(err.code ?? '') && !this.stopped) {
          this.signInWaiting.set(key, err.message);
          this.publishConnection(key, profile.name, 'sign-in-needed', err.message);
        } else {
          this.publishConnection(key, profile.name, 'closed', err.message);
        }
      }
    );
  }

  /**
   * The SSH link dropped (keepalive timeout, network gone, server restart). Local sockets
   * of kernel forwards are closed so ZMQ reconnects (and so re-opens them through the new
   * link); the jobs and kernels keep running. While the cluster has live sessions, we
   * reconnect with backoff; otherwise the next use connects again.
   */
  private lost(key: string, profile: IClusterProfile, message: string): void {
    if (this.links.has(key)) {
      this.links.delete(key);
    }
    for (const k of this.kernels.values()) {
      if (this.sessions.get(k.sessionId)?.clusterKey === key) {
        k.forwards.forEach(f => f.dropConnections());
      }
    }
    if (!this.stopped && this.hasLiveSessions(key)) {
      this.reconnect(key, profile, message);
    } else {
      this.publishConnection(key, profile.name, 'closed', message);
    }
  }

  private hasLiveSessions(key: string): boolean {
    return [...this.sessions.values()].some(s => s.clusterKey === key && s.state !== 'ended');
  }

  private reconnect(key: string, profile: IClusterProfile, why: string): void {
    const state = { cancel: () => undefined as void };
    this.reconnecting.set(key, state);
    const loop = (async (): Promise<IClusterLink> => {
      for (let attempt = 1; ; attempt++) {
        this.publishConnection(
          key,
          profile.name,
          'reconnecting',
          attempt === 1 ? `${why} Reconnecting.` : `Reconnecting to ${profile.ssh.host} (attempt ${attempt}).`
        );
        try {
          return await this.opts.connect(profile);
        } catch (err) {
          const e = err as Error & { code?: string };
          const code = e.code ?? '';
          if (
            this.stopped ||
            !this.hasLiveSessions(key) ||
            PERMANENT_SSH_FAILURES.has(code) ||
            SIGN_IN_FAILURES.has(code)
          ) {
            throw e;
          }
          const delay = Math.min(RECONNECT_MAX_MS, RECONNECT_FIRST_MS * 2 ** (attempt - 1));
          this.publishConnection(
            key,
            profile.name,
            'reconnecting',
            `Reconnect attempt ${attempt} failed: ${e.message} Next attempt in ${Math.round(delay / 1000)} s.`
          );
          this.opts.log(
            `reconnect to ${profile.ssh.host}: attempt ${attempt} failed (${e.message}); next in ${delay} ms`
          );
          await new Promise<void>(resolve => {
            const t = setTimeout(resolve, delay);
            state.cancel = () => {
              clearTimeout(t);
              resolve();
            };
          });
        }
      }
    })();
    this.track(key, profile, loop, true);
  }

  /**
   * The user asks to sign in to the cluster of `profileName` (after `sign-in-needed`):
   * connect now, prompts going to the UI. One login per cluster: if one is in flight or
   * the link is up, nothing more happens.
   */
  async signIn(profileName: string): Promise<void> {
    // (a profile deleted while its jobs run: sign in for them with what they were submitted with)
    const orphan = [...this.sessions.values()].find(s => s.profile === profileName && s.submittedProfile);
    const profile = await this.profile(profileName).catch(err => orphan?.submittedProfile ?? Promise.reject(err));
    const key = this.clusterKey(profile);
    if (this.links.has(key)) {
      return;
    }
    this.signInWaiting.delete(key);
    if (this.hasLiveSessions(key)) {
      this.reconnect(key, profile, 'Signing in.');
    } else {
      this.link(profile).catch(() => undefined); // (the outcome is published as a connection event)
    }
  }

  /** Connection state per cluster, published to the UI and replayed to new listeners. */
  private publishConnection(key: string, profileName: string, state: ConnectionState, message: string): void {
    // Every profile with sessions on this cluster hears about it (profiles can share a login node).
    const names = new Set([
      profileName,
      ...[...this.sessions.values()].filter(s => s.clusterKey === key).map(s => s.profile)
    ]);
    for (const name of names) {
      const e: AgentEvent = { type: 'connection', cluster: name, state, message };
      this.connectionStates.set(name, e);
      this.emit(e);
    }
  }

  /** The last connection event of each profile (for clients that connect later). */
  connectionEvents(): AgentEvent[] {
    return [...this.connectionStates.values()];
  }

  private async home(key: string, link: IClusterLink): Promise<string> {
    let home = this.homes.get(key);
    if (!home) {
      const r = await link.exec('printf %s "$HOME"');
      if (r.code !== 0 || !r.stdout.startsWith('/')) {
        throw new Error(`Cannot find your home directory on the cluster: ${r.stderr.trim() || r.stdout}`);
      }
      home = r.stdout;
      this.homes.set(key, home);
    }
    return home;
  }

  /**
   * The helper and its companions (the files next to it), their digest (one versioned
   * directory on the cluster per content) and the protocol the helper speaks.
   */
  private async remoteFiles(): Promise<IRemoteFiles> {
    if (!this.remoteSource) {
      const dir = path.dirname(this.opts.helperPath);
      const files: { name: string; text: string }[] = [];
      const hash = createHash('sha256');
      for (const name of REMOTE_FILES) {
        const file = name === 'helper.py' ? this.opts.helperPath : path.join(dir, name);
        let text: string;
        try {
          text = await fs.readFile(file, 'utf8');
        } catch (err) {
          if (name === 'helper.py') {
            throw err;
          }
          continue; // a helper of protocol 1 had no companions
        }
        files.push({ name, text });
        hash.update(`${name}\0${text.length}\0${text}`);
      }
      const protocol = Number(/^PROTOCOL_VERSION = (\d+)$/m.exec(files[0].text)?.[1] ?? 1);
      this.remoteSource = { files, digest: hash.digest('hex').slice(0, 16), protocol };
    }
    return this.remoteSource;
  }

  private async profile(name: string): Promise<IClusterProfile> {
    const p = (await this.opts.profiles()).find(x => x.name === name);
    if (!p) {
      throw new InvalidRequestError(`There is no cluster profile named "${name}".`, 'profile');
    }
    return p;
  }

  /** The profile a session's job was submitted with (see `submittedProfile`). */
  private async sessionProfile(s: ISessionRecord): Promise<IClusterProfile> {
    return s.submittedProfile ?? this.profile(s.profile);
  }

  private adapter(p: IClusterProfile): ISchedulerAdapter {
    const a = this.opts.adapters[p.scheduler];
    if (!a) {
      throw new InvalidRequestError(`Batch system "${p.scheduler}" is not supported.`, 'scheduler');
    }
    return a;
  }

  /* ---------------- submit ---------------- */

  /**
   * Validate everything first (nothing is sent to the cluster for bad input), connect
   * (prompts may be answered meanwhile), submit, and return the queued session. If the
   * scheduler refuses, its message comes back as an InvalidRequestError and no session,
   * job or remote directory is left behind.
   */
  async submit(profileName: string, overrides: IResources = {}, owner: 'user' | 'kernel' = 'user'): Promise<ISession> {
    const profile = await this.profile(profileName);
    const adapter = this.adapter(profile);
    const resources: IResources = { ...profile.resources, ...stripEmpty(overrides) };
    adapter.validate(resources);

    const id = randomBytes(6).toString('hex');
    const s: ISessionRecord = {
      id,
      profile: profile.name,
      cluster: profile.title ?? profile.name,
      resources,
      state: 'submitting',
      createdAt: now(),
      updatedAt: now(),
      clusterKey: this.clusterKey(profile),
      remoteDir: '',
      owner,
      kernels: [],
      submittedProfile: profile
    };
    this.sessions.set(id, s);
    this.update(s, {});
    try {
      await this.doSubmit(s, profile, adapter);
    } catch (err) {
      // Nothing was queued: the session never existed as far as the user is concerned.
      this.sessions.delete(id);
      this.save();
      this.emit({ type: 'session-removed', id });
      throw err;
    }
    return this.publicView(s);
  }

  private async doSubmit(s: ISessionRecord, profile: IClusterProfile, adapter: ISchedulerAdapter): Promise<void> {
    const link = await this.link(profile, true); // the user asked: may sign in
    const home = await this.home(s.clusterKey, link);
    const root = `${home}/${REMOTE_ROOT}`;
    const dir = `${root}/sessions/${s.id}`;
    const remote = await this.remoteFiles();
    const codeDir = `${root}/remote-${remote.digest}`;
    const helperPath = `${codeDir}/helper.py`;
    s.remoteDir = dir;
    s.protocol = remote.protocol;
    s.proxyKey = randomBytes(32).toString('base64url');

    // One round trip: private directories, and whether this version of the helper is there.
    const prep = await link.exec(
      `umask 077 && mkdir -p ${shQuote(dir)} && chmod 700 ${shQuote(root)} ${shQuote(root + '/sessions')} ${shQuote(dir)} && ` +
        `{ test -f ${shQuote(helperPath)} && echo present || echo missing; }`
    );
    if (prep.code !== 0) {
      throw new Error(`cannot create ${dir}: ${prep.stderr.trim()}`);
    }
    if (prep.stdout.trim() !== 'present') {
      // Into a temporary directory first: a concurrent submit never runs half of a version.
      const tmp = `${codeDir}.${randomBytes(4).toString('hex')}`;
      await link.exec(`umask 077 && mkdir ${shQuote(tmp)}`);
      for (const f of remote.files) {
        await link.writeFile(`${tmp}/${f.name}`, f.text, 0o600);
      }
      await link.exec(`mv -T ${shQuote(tmp)} ${shQuote(codeDir)} 2>/dev/null || rm -rf ${shQuote(tmp)}`);
    }
    // The session's own CA and certificate (docs/security.md): its key is dropped here.
    const tls = makeSessionTls(s.id);
    const config = {
      sessionId: s.id,
      token: randomBytes(32).toString('hex'),
      tls: { ca: tls.caCert, cert: tls.cert, key: tls.key },
      python: profile.python,
      workdir: profile.workdir ?? home,
      dask: profile.dask !== false,
      proxyBase: proxiedPrefix(this.opts.baseUrl, s.proxyKey),
      kernelEnv: {},
      // auto: the helper listens for every mode; the agent finds out which one works
      connectivity: profile.connectivity ?? 'via-login',
      ...(profile.reverseHost && { reverseHost: profile.reverseHost }),
      // A plain host is its own "login node": nothing needs to reach it from outside.
      ...(profile.scheduler === 'ssh' && { bindAddress: '127.0.0.1' })
    };
    s.connectivity = config.connectivity === 'auto' ? undefined : config.connectivity;
    await link.writeFile(`${dir}/config.json`, JSON.stringify(config), 0o600);
    const script = adapter.renderScript({
      name: `jrc-${s.id}`,
      workdir: dir,
      stdoutPath: `${dir}/job.out`,
      stderrPath: `${dir}/job.err`,
      resources: s.resources,
      setup: profile.setup ?? [],
      // The container wrapper (if any) runs the helper, so the kernels it starts are inside too.
      command: `${profile.container ? profile.container + ' ' : ''}${shQuote(profile.python)} ${shQuote(helperPath)} serve --session-dir ${shQuote(dir)}`
    });
    await link.writeFile(`${dir}/job.sh`, script, 0o700);
    // Without an answer the job may be queued all the same: say so, and keep its files.
    const unanswered = (why: string) =>
      new SchedulerUnavailableError(
        `${why.replace(/\.?$/, '.')} The job may have been queued all the same, named "jrc-${s.id}": ` +
          `look for it with your batch system and cancel it if you do not want it (its files stay in ${dir}).`
      );
    let result: ICommandResult;
    try {
      result = await link.exec(onLogin(profile, adapter.submitCommand(`${dir}/job.sh`)), { timeoutMs: 60_000 });
    } catch (err) {
      throw unanswered(`The submission got no answer: ${(err as Error).message}`);
    }
    let jobId: string;
    try {
      jobId = adapter.parseSubmit(result);
    } catch (err) {
      if (err instanceof SchedulerUnavailableError) {
        throw unanswered(err.message); // (adapters say who did not answer; this says what follows)
      }
      // Refused: nothing is queued; leave no directory behind either.
      await link.exec(`rm -rf ${shQuote(dir)}`).catch(() => undefined);
      throw err;
    }
    this.update(s, { state: 'queued', jobId });
    this.schedulePoll(s.clusterKey, 0);
  }

  /* ---------------- polling ---------------- */

  private schedulePoll(key: string, delayMs: number): void {
    const old = this.pollers.get(key);
    if (old) {
      clearTimeout(old);
    }
    this.pollers.set(
      key,
      setTimeout(() => {
        this.pollers.delete(key);
        void this.poll(key);
      }, delayMs)
    );
  }

  /**
   * One cycle for a cluster (the etiquette policy, docs/schedulers/slurm.md): one status
   * query for all of its jobs, however many sessions. While every session runs and its
   * helper's heartbeat (state.json over SFTP: no scheduler involved) is fresh, the
   * scheduler is asked only every POLL_SCHEDULER_RECHECK_MS. Every 3 s only while a
   * session is young in the queue or starting; failures and "unknown" answers (controller
   * down or timing out) back off, and a slow answer stretches the next wait.
   */
  private async poll(key: string): Promise<void> {
    const active = [...this.sessions.values()].filter(s => s.clusterKey === key && s.jobId && s.state !== 'ended');
    if (active.length === 0) {
      return;
    }
    let failed = false;
    let tookMs = 0;
    // Profiles on one login node may use different batch systems or login setups (a
    // Slurm cluster whose login node is also a plain SSH host): one query per kind.
    const groups = new Map<string, { profile: IClusterProfile; sessions: ISessionRecord[] }>();
    for (const s of active) {
      try {
        const profile = await this.sessionProfile(s);
        const g = `${profile.scheduler}\0${(profile.loginSetup ?? []).join('\n')}`;
        const group = groups.get(g) ?? { profile, sessions: [] };
        group.sessions.push(s);
        groups.set(g, group);
      } catch (err) {
        this.opts.log(`status of session ${s.id}: ${(err as Error).message}`);
      }
    }
    for (const [g, { profile, sessions: members }] of groups) {
      const pace = clusterPace(this, `${key}\0${g}`);
      try {
        const base = this.adapter(profile);
        // an adapter that learns per cluster (Slurm: version, --me, JSON) gets its own instance
        const adapter = (base as { forCluster?: (k: string) => ISchedulerAdapter }).forCluster?.(key) ?? base;
        const link = await this.link(profile);
        // a new link (reconnected): ask the scheduler once, the jobs may have changed meanwhile
        let needQuery =
          pace.link !== link ||
          Date.now() - pace.lastQuery >= POLL_SCHEDULER_RECHECK_MS ||
          members.some(s => s.state !== 'running');
        for (const s of needQuery ? [] : members) {
          const h = await this.readHelperState(s, link);
          if (!h || h.status !== 'ready' || Date.now() / 1000 - h.heartbeat > HEARTBEAT_STALE_S) {
            needQuery = true; // stopping, failed, gone or silent: what does the scheduler say?
            break;
          }
        }
        if (needQuery) {
          const ids = members.map(s => s.jobId!);
          const t0 = Date.now();
          const result = await link.exec(onLogin(profile, adapter.statusCommand(ids)), { timeoutMs: 60_000 });
          tookMs = Math.max(tookMs, Date.now() - t0);
          pace.lastQuery = Date.now();
          pace.link = link;
          const statuses = adapter.parseStatus(ids, result);
          const unknown = [...statuses.values()].filter(st => st.phase === 'unknown');
          if (unknown.length === statuses.size) {
            failed = true; // says nothing about the jobs: keep them as they are, and back off
            this.opts.log(`status of cluster ${key}: ${unknown[0]?.reason ?? 'unknown'}`);
          }
          for (const s of members) {
            const st = statuses.get(s.jobId!);
            if (st) {
              await this.apply(s, st, link, SCHEDULER_TITLES[adapter.name] ?? adapter.name);
            }
          }
        }
      } catch (err) {
        this.opts.log(`status of cluster ${key}: ${(err as Error).message}`);
        failed = true;
      }
    }
    const failures = failed ? (this.pollFailures.get(key) ?? 0) + 1 : 0;
    this.pollFailures.set(key, failures);
    const live = [...this.sessions.values()].filter(s => s.clusterKey === key && s.state !== 'ended');
    if (live.length) {
      const now = Date.now();
      const young = live.some(
        s => (s.state === 'queued' || s.state === 'starting') && now - stateSince(s) < POLL_FAST_FOR_MS
      );
      const base = young ? POLL_STARTING_MS : POLL_STEADY_MS;
      const delay = Math.min(
        POLL_BACKOFF_MAX_MS,
        // a controller that took 4 s to answer is not asked again within 40 s
        Math.max(failed ? base * 2 ** failures : base, tookMs * POLL_SLOW_FACTOR)
      );
      this.schedulePoll(key, delay);
    }
  }

  private async apply(
    s: ISessionRecord,
    st: IJobStatus,
    link: IClusterLink,
    scheduler = 'the scheduler'
  ): Promise<void> {
    if (st.phase === 'unknown') {
      return; // a slow or unreachable controller says nothing about the job
    }
    if (st.phase === 'pending') {
      if (st.blocked) {
        // It would pend forever (walltime over the partition's limit, no node with those
        // features, ...): cancel it and tell the user why instead of letting it sit.
        await this.cancelJob(s, link);
        await this.end(
          s,
          `The job was cancelled: ${st.reason ?? 'the scheduler will never start it'} (${scheduler}: ${st.nativeReason ?? st.nativeState}).`
        );
        return;
      }
      if (s.state !== 'queued' || s.reason !== st.reason || s.startEstimate !== st.startEstimate) {
        this.update(s, { state: 'queued', reason: st.reason, startEstimate: st.startEstimate });
      }
      return;
    }
    if (st.phase === 'ended') {
      await this.end(s, st.reason ?? st.nativeState, link);
      return;
    }
    // Running: the helper decides when the session is usable.
    const helper = await this.readHelperState(s, link);
    if (!helper || helper.status === 'starting') {
      if (s.state !== 'starting' || s.node !== st.node) {
        this.update(s, { state: 'starting', node: st.node, reason: undefined, timeLeftSeconds: st.timeLeftSeconds });
      }
      return;
    }
    if (helper.status === 'failed') {
      await this.cancelJob(s, link);
      await this.end(s, `The session failed to start on ${helper.host}: ${helper.error ?? 'unknown error'}`, link);
      return;
    }
    const stale = Date.now() / 1000 - helper.heartbeat > HEARTBEAT_STALE_S;
    if (s.state !== 'running' && !s.connectivity) {
      // auto: find the mode now, so the sidebar shows it and the first kernel starts at once
      void this.sessionRoute(s).catch(err =>
        this.opts.log(`connectivity of session ${s.id}: ${(err as Error).message}`)
      );
    }
    this.update(s, {
      state: 'running',
      node: helper.host || st.node,
      reason: stale
        ? `no heartbeat from the helper for ${Math.round(Date.now() / 1000 - helper.heartbeat)} s`
        : undefined,
      timeLeftSeconds: st.timeLeftSeconds,
      httpPorts: helper.httpPorts ?? []
    });
  }

  private async readHelperState(s: ISessionRecord, link: IClusterLink): Promise<IHelperState | undefined> {
    try {
      const state = JSON.parse(
        (await link.readFile(`${s.remoteDir}/state.json`, MAX_STATE_BYTES)).toString('utf8')
      ) as IHelperState;
      this.helperStates.set(s.id, state);
      this.stateReadAt.set(s.id, Date.now());
      return state;
    } catch {
      return undefined;
    }
  }

  /** The session's token and (protocol 2) TLS credentials, from its 0600 config.json. */
  private async sessionSecrets(
    s: ISessionRecord,
    link: IClusterLink
  ): Promise<{ token: string; relay?: IRelayCredentials }> {
    let secrets = this.secrets.get(s.id);
    if (!secrets) {
      const config = JSON.parse(
        (await link.readFile(`${s.remoteDir}/config.json`, MAX_SMALL_FILE_BYTES)).toString('utf8')
      ) as {
        token: string;
        tls?: { ca: string; cert: string; key: string };
      };
      const tls = config.tls;
      secrets = {
        token: config.token,
        ...(tls && {
          relay: { ca: tls.ca, cert: tls.cert, key: tls.key, name: sessionTlsName(s.id), token: config.token }
        })
      };
      this.secrets.set(s.id, secrets);
    }
    return secrets;
  }

  /**
   * The login-side directory of a reverse tunnel: the helper removes it when it stops,
   * but a job killed outright (SIGKILL, node failure) leaves its dead sockets there.
   * Only a path of the exact shape the helper makes for this session is touched.
   */
  private async removeReverseDir(s: ISessionRecord, link?: IClusterLink): Promise<void> {
    const dir = this.helperStates.get(s.id)?.reverse?.dir;
    // protocol 2: mktemp's /tmp/jrc-XXXXXXXXXX; protocol 1: /tmp/jrc-<uid>/<session>-rev
    if (!link || !dir || !new RegExp(`^/tmp/jrc-([A-Za-z0-9]{10}|[0-9]+/${s.id}-rev)$`).test(dir)) {
      return;
    }
    await link
      .exec(`rm -rf ${shQuote(dir)}`)
      .catch(err =>
        this.opts.log(`session ${s.id}: could not remove ${dir} on the login node: ${(err as Error).message}`)
      );
  }

  private async end(s: ISessionRecord, reason: string, link?: IClusterLink): Promise<void> {
    if (s.state === 'ended') {
      return;
    }
    let why = reason;
    if (link && s.state !== 'running') {
      // Ended before it was usable: the job's stderr usually says why.
      const err = await link.exec(`tail -n 5 ${shQuote(s.remoteDir + '/job.err')} 2>/dev/null`).catch(() => undefined);
      const tail = err?.stdout.trim();
      if (tail) {
        why = `${reason}; job stderr: ${tail.split('\n').slice(-3).join(' | ')}`;
      }
    }
    for (const k of [...this.kernels.values()].filter(k => k.sessionId === s.id)) {
      this.dropKernel(k, `the session ended: ${why}`);
    }
    await this.removeReverseDir(s, link);
    this.helperStates.delete(s.id);
    this.secrets.delete(s.id);
    this.update(s, { state: 'ended', reason: why, timeLeftSeconds: undefined, httpPorts: [] });
  }

  /* ---------------- cancel ---------------- */

  private async cancelJob(s: ISessionRecord, link: IClusterLink): Promise<void> {
    if (!s.jobId) {
      return;
    }
    const profile = await this.sessionProfile(s);
    const r = await link.exec(onLogin(profile, this.adapter(profile).cancelCommand(s.jobId)), { timeoutMs: 60_000 });
    if (r.code !== 0) {
      throw new Error(`Could not cancel job ${s.jobId}: ${r.stderr.trim() || r.stdout.trim()}`);
    }
  }

  async cancel(id: string, reason = 'cancelled by you'): Promise<ISession> {
    const s = this.sessions.get(id);
    if (!s) {
      throw new NotFoundError(`No session ${id}.`, 'session');
    }
    if (s.state === 'ended') {
      return this.publicView(s);
    }
    const profile = await this.sessionProfile(s);
    const link = await this.link(profile, true); // the user asked: may sign in
    if (s.state === 'running') {
      // Let the helper stop kernels and Dask cleanly; scancel follows regardless.
      await this.helperRequest(s, 'POST', '/shutdown', {}, 5_000).catch(() => undefined);
    }
    await this.cancelJob(s, link);
    await this.end(s, reason);
    return this.publicView(s);
  }

  /** Forget an ended session. */
  remove(id: string): boolean {
    const s = this.sessions.get(id);
    if (!s || s.state !== 'ended') {
      return false;
    }
    this.sessions.delete(id);
    this.save();
    this.emit({ type: 'session-removed', id });
    return true;
  }

  owner(id: string): 'user' | 'kernel' | undefined {
    return this.sessions.get(id)?.owner;
  }

  /* ---------------- the helper's control channel ---------------- */

  async helperRequest(
    s: ISessionRecord | string,
    method: string,
    urlPath: string,
    body?: unknown,
    timeoutMs = 90_000
  ): Promise<{ status: number; json: any }> {
    const rec = typeof s === 'string' ? this.sessions.get(s) : s;
    if (!rec) {
      throw new NotFoundError(`No session ${String(s)}.`, 'session');
    }
    const route = await this.sessionRoute(rec);
    let channel;
    try {
      channel = await openControl(route, route.link);
    } catch (err) {
      const hint =
        route.mode === 'via-login'
          ? ' If the nodes accept only SSH from the login node, use connectivity node-ssh (or auto).'
          : '';
      throw new Error(
        `Cannot reach the session's helper on ${route.state.host} (connectivity ${route.mode}): ${(err as Error).message}${hint}`
      );
    }
    return requestOver(channel, method, urlPath, route.token, body, timeoutMs, route.state.host);
  }

  /** Connectivity: `auto` probes, the winner is remembered per profile. */
  private readonly modes = {
    memory: undefined as ModeMemory | undefined,
    probes: new Map<string, Promise<ResolvedMode>>()
  };

  /**
   * How to reach a running session's helper now: its fresh state, token, link and
   * connectivity mode (probed once for `auto`). Refuses a helper whose heartbeat is stale
   * (what it listened on may be someone else's by now) or that speaks another protocol
   * than the one the session was started with (never a silent downgrade).
   */
  private async sessionRoute(rec: ISessionRecord): Promise<IRoute & { token: string; link: IClusterLink }> {
    const profile = await this.sessionProfile(rec);
    const link = await this.link(profile);
    let state = this.helperStates.get(rec.id);
    if (!state || state.status !== 'ready' || heartbeatAge(state) > HEARTBEAT_STALE_S) {
      state = await this.readHelperState(rec, link);
    }
    const { token, relay } = await this.sessionSecrets(rec, link);
    if (!state || state.status !== 'ready') {
      throw new Error(`The session ${rec.id} is not running yet.`);
    }
    if (heartbeatAge(state) > HEARTBEAT_STALE_S) {
      throw new Error(
        `The helper of session ${rec.id} on ${state.host} has not written its heartbeat for ${Math.round(heartbeatAge(state))} s: ` +
          'it may be gone, and what it listened on may be in other hands by now, so nothing is sent there.'
      );
    }
    const protocol = rec.protocol ?? 1;
    if ((state.version ?? 1) !== protocol) {
      throw new Error(
        `The helper of session ${rec.id} speaks protocol ${state.version ?? 1}, but the session was started with protocol ${protocol}: not talking to it.`
      );
    }
    const base = { protocol, state, host: hostToReach(profile, state.host), relay, token, link };
    if (rec.connectivity) {
      return { ...base, mode: rec.connectivity };
    }
    let probe = this.modes.probes.get(rec.id);
    if (!probe) {
      probe = this.probeModes(rec, profile.name, base).finally(() => this.modes.probes.delete(rec.id));
      this.modes.probes.set(rec.id, probe);
    }
    return { ...base, mode: await probe };
  }

  /** `auto`: the first mode whose control channel answers /health, remembered mode first. */
  private async probeModes(
    rec: ISessionRecord,
    profileName: string,
    base: Omit<IRoute, 'mode'> & { token: string; link: IClusterLink }
  ): Promise<ResolvedMode> {
    const memory = (this.modes.memory ??= new ModeMemory(this.opts.stateDir));
    const errors: string[] = [];
    const host = base.state.host;
    for (const mode of autoOrder(await memory.get(profileName))) {
      try {
        const ch = await withTimeout(
          openControl({ ...base, mode }, base.link),
          PROBE_TIMEOUT_MS,
          `connecting to ${host}`
        );
        const r = await requestOver(ch, 'GET', '/health', base.token, undefined, PROBE_TIMEOUT_MS, host);
        if (r.status === 200) {
          this.opts.log(`session ${rec.id} on ${host}: connectivity ${mode} (auto)`);
          this.update(rec, { connectivity: mode });
          await memory
            .set(profileName, mode)
            .catch(err => this.opts.log(`cannot remember connectivity: ${(err as Error).message}`));
          return mode;
        }
        errors.push(`${mode}: the helper answered HTTP ${r.status}`);
      } catch (err) {
        errors.push(`${mode}: ${(err as Error).message}`);
      }
    }
    throw new Error(`No connectivity mode reaches the session on ${host}: ${errors.join('; ')}`);
  }

  /* ---------------- kernels ---------------- */

  /**
   * Start a kernel in a running session. With the id of a kernel stopped for a restart,
   * the new kernel takes its place behind the same local ports and key, so Jupyter's
   * existing channels stay valid (restart = new kernel, same allocation, same address).
   */
  async startKernel(sessionId: string, kernelId = randomBytes(8).toString('hex')): Promise<IKernelConnection> {
    const s = this.sessions.get(sessionId);
    if (!s) {
      throw new NotFoundError(`No session ${sessionId}.`, 'session');
    }
    if (s.state !== 'running') {
      throw new ConflictError(`Session ${sessionId} is ${s.state}, not running.`, 'session');
    }
    const restarting = this.kernels.get(kernelId);
    if (restarting && restarting.sessionId !== sessionId) {
      throw new InvalidRequestError(`Kernel ${kernelId} belongs to another session.`, 'kernel');
    }
    const dash = s.httpPorts?.find(p => p.name === 'dask-dashboard');
    const env: Record<string, string> = {};
    if (dash) {
      // Links printed by distributed point at our proxy, not at the node.
      env['DASK_DISTRIBUTED__DASHBOARD__LINK'] = dash.path;
    }
    const route = await this.sessionRoute(s);
    const r = await this.helperRequest(s, 'POST', '/kernels', {
      kernelId,
      env,
      ...kernelTransport(route.mode, route.protocol)
    });
    if (r.status !== 200 && r.status !== 201) {
      throw new Error(`The kernel did not start on ${s.node}: ${helperError(r.json)}`);
    }
    const info = r.json as IKernelStart;
    const file = await this.connectionFile(s, kernelId, route.link);
    const opener = this.kernelOpener(s, kernelId, file, info.ports);

    if (restarting) {
      if (restarting.connection.key !== file.key) {
        // The helper could not keep the key: hand out the new one (clients reload it).
        restarting.connection.key = file.key;
      }
      CHANNELS.forEach((ch, i) => restarting.forwards[i].retarget(opener(ch)));
      restarting.remotePid = info.pid;
      restarting.stopped = false;
      this.update(s, {});
      return restarting.connection;
    }

    return this.registerKernel(s, kernelId, info.pid, file, ch => ({ open: opener(ch) }));
  }

  /**
   * A kernel's connection file, read over SFTP (the key never crosses the cluster
   * network in the clear) from the one path the helper writes it to, bounded in size:
   * a helper's answer never chooses which file the agent reads.
   */
  private async connectionFile(
    s: ISessionRecord,
    kernelId: string,
    link: IClusterLink
  ): Promise<{ key: string; signature_scheme: string } & Record<string, unknown>> {
    const file = `${s.remoteDir}/kernels/${kernelId}/connection.json`;
    const parsed = JSON.parse((await link.readFile(file, MAX_SMALL_FILE_BYTES)).toString('utf8')) as Record<
      string,
      unknown
    >;
    if (typeof parsed.key !== 'string' || typeof parsed.signature_scheme !== 'string') {
      throw new Error(`${file} is not a kernel connection file`);
    }
    return parsed as { key: string; signature_scheme: string } & Record<string, unknown>;
  }

  /**
   * Per channel, a function that opens a stream to the kernel: the route is looked up per
   * stream (after a reconnect, through the new link; never to a helper whose heartbeat
   * went stale), the sockets come from the connection file.
   */
  private kernelOpener(
    s: ISessionRecord,
    kernelId: string,
    file: Record<string, unknown>,
    ports: Record<string, number>
  ): (ch: ChannelPort) => () => Promise<import('node:stream').Duplex> {
    let sockets: Record<string, string> | undefined;
    return ch => async () => {
      const route = await this.sessionRoute(s);
      if (route.mode !== 'via-login') {
        sockets ??= kernelSockets(route.mode, kernelId, file, route.state, CHANNELS, route.protocol);
      }
      return openKernelChannel(route, route.link, {
        kernelId,
        channel: ch,
        port: Number(ports[ch] ?? file[ch]),
        socket: sockets?.[ch]
      });
    };
  }

  /**
   * Open the five local forwards of a kernel (on `localPort` when given, else ephemeral)
   * and record it. Nothing is left listening if one of them fails.
   */
  private async registerKernel(
    s: ISessionRecord,
    kernelId: string,
    remotePid: number,
    file: { key: string; signature_scheme: string },
    channel: (ch: (typeof CHANNELS)[number]) => {
      open: () => Promise<import('node:stream').Duplex>;
      localPort?: number;
    }
  ): Promise<IKernelConnection> {
    const forwards: LocalForward[] = [];
    const conn: Partial<IKernelConnection> = {
      kernelId,
      sessionId: s.id,
      ip: '127.0.0.1',
      transport: 'tcp',
      key: file.key,
      signature_scheme: file.signature_scheme
    };
    try {
      for (const ch of CHANNELS) {
        const { open, localPort } = channel(ch);
        const fwd = new LocalForward(open, this.opts.log);
        conn[ch] = await fwd.listen(localPort);
        forwards.push(fwd);
      }
    } catch (err) {
      forwards.forEach(f => f.close());
      throw err;
    }
    const rec: IKernelRecord = {
      kernelId,
      sessionId: s.id,
      remotePid,
      forwards,
      connection: conn as IKernelConnection,
      stopped: false
    };
    this.kernels.set(kernelId, rec);
    this.update(s, {});
    return rec.connection;
  }

  /**
   * Take a kernel that still runs in the session back: after the agent restarted, on the
   * same local ports (the client's connection info); after the Jupyter server that
   * started it was lost (`localPorts` undefined), on new ones. Either way the forwards go
   * to the kernel's ports, read with its key from its connection file: its state is intact.
   */
  async adoptKernel(
    sessionId: string,
    kernelId: string,
    localPorts?: Record<string, number>
  ): Promise<IKernelConnection> {
    const existing = this.kernels.get(kernelId);
    if (existing) {
      return existing.connection;
    }
    const s = this.sessions.get(sessionId);
    if (!s) {
      throw new NotFoundError(`No session ${sessionId}.`, 'session');
    }
    if (s.state !== 'running' || !s.node) {
      throw new ConflictError(`Session ${sessionId} is ${s.state}, not running.`, 'session');
    }
    const status = await this.helperRequest(s, 'GET', `/kernels/${kernelId}`, undefined, 15_000);
    if (status.status !== 200 || !status.json.alive) {
      throw new NotFoundError(`Kernel ${kernelId} is no longer running in session ${sessionId}.`, 'kernel');
    }
    try {
      const route = await this.sessionRoute(s);
      const file = await this.connectionFile(s, kernelId, route.link);
      const opener = this.kernelOpener(s, kernelId, file, {});
      if (route.mode !== 'via-login') {
        kernelSockets(route.mode, kernelId, file, route.state, CHANNELS, route.protocol); // fail now, not per stream
      }
      const conn = await this.registerKernel(s, kernelId, Number(status.json.pid ?? 0), file, ch => ({
        open: opener(ch),
        localPort: localPorts ? Number(localPorts[ch]) : undefined
      }));
      this.opts.log(
        `${localPorts ? 'adopted' : 'attached'} kernel ${kernelId} of session ${sessionId} on ${localPorts ? 'its previous' : 'new'} local ports`
      );
      return conn;
    } catch (err) {
      throw new Error(
        `Cannot take kernel ${kernelId} back${localPorts ? ' on its local ports' : ''}: ${(err as Error).message}`
      );
    }
  }

  private kernel(kernelId: string): IKernelRecord {
    const k = this.kernels.get(kernelId);
    if (!k) {
      throw new NotFoundError(`No kernel ${kernelId}.`, 'kernel');
    }
    return k;
  }

  /** Alive or not, from the helper; `undefined` when it cannot be known right now (link down). */
  async kernelStatus(kernelId: string): Promise<{ alive: boolean | null; exitCode?: number; reason?: string }> {
    const k = this.kernels.get(kernelId);
    if (!k) {
      const ended = this.endedKernels.get(kernelId);
      if (ended) {
        return { alive: false, reason: ended };
      }
      // Not known to this agent: after an agent restart the provisioner adopts it again.
      return { alive: null, reason: 'unknown-kernel' };
    }
    if (k.stopped) {
      return { alive: false, reason: 'stopped for a restart' };
    }
    const s = this.sessions.get(k.sessionId);
    if (!s || s.state === 'ended') {
      return { alive: false, reason: s?.reason ?? 'session ended' };
    }
    try {
      // While the link is down or reconnecting, answer at once: "unknown", never "dead".
      await this.linkNow(await this.sessionProfile(s), 10_000);
      const r = await this.helperRequest(s, 'GET', `/kernels/${kernelId}`, undefined, 15_000);
      if (r.status === 404) {
        return { alive: false, reason: 'the kernel is gone' };
      }
      return { alive: Boolean(r.json.alive), exitCode: r.json.exitCode ?? undefined };
    } catch (err) {
      // A dropped link is not a dead kernel: Jupyter must not restart it.
      return { alive: null, reason: (err as Error).message };
    }
  }

  async signalKernel(kernelId: string, signal: string): Promise<void> {
    if (!['SIGINT', 'SIGTERM', 'SIGKILL'].includes(signal)) {
      throw new InvalidRequestError(`Signal ${signal} is not allowed (SIGINT, SIGTERM, SIGKILL).`, 'signal');
    }
    const k = this.kernel(kernelId);
    const r = await this.helperRequest(k.sessionId, 'POST', `/kernels/${kernelId}/signal`, { signal }, 15_000);
    if (r.status !== 200) {
      throw new Error(`Could not signal the kernel: ${helperError(r.json) || r.status}`);
    }
  }

  /** Stop a kernel; with `restart`, keep its local ports and key for the next one. */
  async shutdownKernel(kernelId: string, restart = false): Promise<void> {
    const k = this.kernel(kernelId);
    const s = this.sessions.get(k.sessionId);
    if (s && s.state === 'running' && !k.stopped) {
      await this.helperRequest(k.sessionId, 'DELETE', `/kernels/${kernelId}`, undefined, 20_000).catch(err =>
        this.opts.log(`shutdown of kernel ${kernelId}: ${(err as Error).message}`)
      );
    }
    if (restart && s?.state === 'running') {
      k.stopped = true;
      k.forwards.forEach(f => f.dropConnections());
    } else {
      this.dropKernel(k);
    }
    if (s) {
      this.update(s, {});
    }
  }

  /**
   * Let go of a kernel without stopping it: its Jupyter server is stopping and leaves
   * it running in the job (with its state) for the next server to attach. Its local
   * forwards close, so nothing the stopping server sends reaches it.
   */
  detachKernel(kernelId: string): void {
    const k = this.kernel(kernelId);
    k.forwards.forEach(f => f.close());
    this.kernels.delete(kernelId);
    this.opts.log(`detached kernel ${kernelId} of session ${k.sessionId}: it keeps running`);
    // Listed as detached at once, not only after the next heartbeat read.
    const helper = this.helperStates.get(k.sessionId);
    if (helper && !k.stopped) {
      helper.kernels = { ...helper.kernels, [kernelId]: { pid: k.remotePid, alive: true } };
    }
    const s = this.sessions.get(k.sessionId);
    if (s) {
      this.update(s, {});
    }
  }

  private dropKernel(k: IKernelRecord, why = 'shut down'): void {
    k.forwards.forEach(f => f.close());
    this.kernels.delete(k.kernelId);
    this.endedKernels.set(k.kernelId, why);
  }

  /* ---------------- dashboard proxy support ---------------- */

  /**
   * A stream to a port the session with proxy key `key` serves, as its helper reports it
   * right now (the list read again when older than PORTS_FRESH_MS), and nothing else.
   */
  async openProxiedPort(key: string, port: number): Promise<import('node:stream').Duplex> {
    const s = [...this.sessions.values()].find(x => x.proxyKey !== undefined && safeEqual(x.proxyKey, key));
    if (!s || s.state !== 'running' || !s.node) {
      throw Object.assign(new Error('No running session serves this address.'), { status: 404 });
    }
    const route = await this.sessionRoute(s);
    let state = route.state as IHelperState;
    if (Date.now() - (this.stateReadAt.get(s.id) ?? 0) > PORTS_FRESH_MS) {
      state = (await this.readHelperState(s, route.link)) ?? state;
    }
    if (!(state.httpPorts ?? []).some(p => p.port === port)) {
      throw Object.assign(new Error(`Port ${port} is not served by session ${s.id}.`), { status: 404 });
    }
    return openHttpPort({ ...route, state }, route.link, port);
  }

  async shutdown(): Promise<void> {
    this.stopped = true;
    this.reconnecting.forEach(r => r.cancel());
    for (const t of this.pollers.values()) {
      clearTimeout(t);
    }
    for (const k of this.kernels.values()) {
      k.forwards.forEach(f => f.close());
    }
    for (const l of this.links.values()) {
      l.then(
        x => x.close(),
        () => undefined
      );
    }
    await this.saving;
  }
}

/** Per cluster: when the scheduler was last asked (polling etiquette). */
const paces = new WeakMap<object, Map<string, { lastQuery: number; link?: IClusterLink }>>();
function clusterPace(owner: object, key: string): { lastQuery: number; link?: IClusterLink } {
  let m = paces.get(owner);
  if (!m) {
    m = new Map();
    paces.set(owner, m);
  }
  let p = m.get(key);
  if (!p) {
    p = { lastQuery: 0 };
    m.set(key, p);
  }
  return p;
}

/** When a session entered its current state (as first seen by the poller). */
const since = new WeakMap<object, { state: string; at: number }>();
function stateSince(s: { state: string }): number {
  const seen = since.get(s);
  if (seen && seen.state === s.state) {
    return seen.at;
  }
  const at = Date.now();
  since.set(s, { state: s.state, at });
  return at;
}

/** Comparing a capability in constant time. */
function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** Seconds since the helper last wrote its state (by the node's clock). */
function heartbeatAge(state: IHelperState): number {
  return Date.now() / 1000 - state.heartbeat;
}

interface IRemoteFiles {
  files: { name: string; text: string }[];
  digest: string;
  /** The protocol the helper speaks (its PROTOCOL_VERSION; 1 before it had one). */
  protocol: number;
}

/** Plain SSH hosts run the helper bound to loopback: reach it there (the host's own name may not resolve on it). */
function hostToReach(profile: IClusterProfile, node: string): string {
  return profile.scheduler === 'ssh' ? '127.0.0.1' : node;
}

/** A scheduler command preceded by the profile's login-node setup lines (each must succeed). */
export function onLogin(profile: IClusterProfile, command: string): string {
  const lines = profile.loginSetup ?? [];
  return lines.length === 0 ? command : `${lines.map(l => `{ ${l}\n}`).join(' && ')} && ${command}`;
}

function stripEmpty(r: IResources): IResources {
  return Object.fromEntries(
    Object.entries(r).filter(([, v]) => v !== undefined && v !== '' && !(Array.isArray(v) && v.length === 0))
  ) as IResources;
}

/** The helper answers errors as {"error": {"code", "message"}}. */
function helperError(json: any): string {
  const e = json?.error;
  return typeof e === 'string' ? e : (e?.message ?? JSON.stringify(json));
}
