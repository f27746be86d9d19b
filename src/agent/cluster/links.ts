/**
 * One SSH link per cluster, shared by every caller (polls, API requests, kernel forwards
 * re-opened by ZMQ), with one reconnect loop after a drop and a sign-in gate: nobody
 * opens a second connection or asks the user for a second one-time code.
 */
import type { AgentEvent, ConnectionState, IClusterProfile } from '../../common/api';
import type { IClusterLink, LinkFactory } from './link';

/** Reconnect backoff: 1 s, 2 s, 4 s ... at most 15 s between attempts (a restored link is picked up within 15 s). */
const RECONNECT_FIRST_MS = 1_000;
const RECONNECT_MAX_MS = 15_000;
/**
 * While the host cannot even be reached (the laptop's network is down: no byte gets to any
 * server), an attempt costs nobody anything: one a second, so a link that comes back is in
 * use within about a second; for at most this long, then the backoff above.
 */
const UNREACHABLE_RETRY_MS = 1_000;
const UNREACHABLE_FAST_FOR_MS = 10 * 60_000;
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

export interface IClusterLinksOptions {
  connect: LinkFactory;
  log: (msg: string) => void;
  emit: (event: AgentEvent) => void;
  /** Whether the cluster has sessions that are not ended: only then is a dropped link re-established. */
  hasLiveSessions: (key: string) => boolean;
  /** The profiles with sessions on the cluster: each hears about its connection (profiles can share a login node). */
  profilesOn: (key: string) => string[];
  /** The link dropped (before any reconnect starts). */
  onLost: (key: string) => void;
  /** A reconnect succeeded: the jobs may have changed state meanwhile. */
  onReconnected: (key: string) => void;
}

/** Which connection a profile uses: profiles with the same login (and jump chain) share it. */
export function clusterKey(p: IClusterProfile): string {
  const t = p.ssh;
  return [t.user ?? '', t.host, t.port ?? '', (t.jumpHosts ?? []).join(','), t.configFile ?? ''].join('|');
}

export class ClusterLinks {
  private readonly links = new Map<string, Promise<IClusterLink>>();
  /** Clusters whose link dropped and is being re-established (cancel: skip the current wait). */
  private readonly reconnecting = new Map<string, { cancel: () => void }>();
  private readonly connectionStates = new Map<string, AgentEvent>();
  /** Clusters waiting for the user to sign in, and why. */
  private readonly signInWaiting = new Map<string, string>();
  private readonly homes = new Map<string, string>();
  private stopped = false;

  constructor(private readonly opts: IClusterLinksOptions) {}

  /**
   * The cluster's link, connecting it on first use (`signIn`: the user asked, so a
   * cluster waiting for a sign-in may log in now).
   */
  link(profile: IClusterProfile, signIn = false): Promise<IClusterLink> {
    if (this.stopped) {
      // (a poll or request still running when the agent stops opens no new connection)
      return Promise.reject(new Error('The agent is stopping.'));
    }
    const key = clusterKey(profile);
    let link = this.links.get(key);
    const waiting = this.signInWaiting.get(key);
    if (!link && waiting !== undefined && !signIn) {
      return Promise.reject(
        Object.assign(new Error(`${waiting} (Remote sessions: Sign in.)`), { code: 'sign-in-needed' })
      );
    }
    if (!link) {
      this.signInWaiting.delete(key);
      this.publish(key, profile.name, 'connecting', `Connecting to ${profile.ssh.host}.`);
      link = this.opts.connect(profile);
      this.track(key, profile, link, false);
    }
    return link;
  }

  /** The cluster's link if there is one and it is not reconnecting; never connects. */
  connected(key: string): Promise<IClusterLink> | undefined {
    return this.reconnecting.has(key) ? undefined : this.links.get(key);
  }

  /** The link if it is up (or comes up within `waitMs`); never waits for a reconnect loop. */
  linkNow(profile: IClusterProfile, waitMs: number): Promise<IClusterLink> {
    const key = clusterKey(profile);
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

  /**
   * The user asks to sign in (after `sign-in-needed`): connect now, prompts going to the
   * UI. One login per cluster: if one is in flight or the link is up, nothing more happens.
   */
  signIn(profile: IClusterProfile): void {
    const key = clusterKey(profile);
    if (this.links.has(key)) {
      return;
    }
    this.signInWaiting.delete(key);
    if (this.opts.hasLiveSessions(key)) {
      this.reconnect(key, profile, 'Signing in.');
    } else {
      this.link(profile).catch(() => undefined); // (the outcome is published as a connection event)
    }
  }

  /** The last connection event of each profile (for clients that connect later). */
  connectionEvents(): AgentEvent[] {
    return [...this.connectionStates.values()];
  }

  /** The user's home directory on the cluster, asked once per cluster. */
  async home(key: string, link: IClusterLink): Promise<string> {
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

  /** Stop reconnecting and close every link. */
  shutdown(): void {
    this.stopped = true;
    this.reconnecting.forEach(r => r.cancel());
    for (const l of this.links.values()) {
      l.then(
        x => x.close(),
        () => undefined
      );
    }
  }

  private track(key: string, profile: IClusterProfile, link: Promise<IClusterLink>, reconnect: boolean): void {
    this.links.set(key, link);
    link.then(
      l => {
        this.reconnecting.delete(key);
        this.publish(
          key,
          profile.name,
          'connected',
          reconnect ? `Reconnected to ${profile.ssh.host}.` : `Connected to ${profile.ssh.host}.`
        );
        l.onClose(message => this.lost(key, profile, message));
        if (reconnect) {
          this.opts.onReconnected(key);
        }
      },
      (err: Error & { code?: string }) => {
        this.reconnecting.delete(key);
        if (this.links.get(key) === link) {
          this.links.delete(key);
        }
        if (SIGN_IN_FAILURES.has(err.code ?? '') && !this.stopped) {
          this.signInWaiting.set(key, err.message);
          this.publish(key, profile.name, 'sign-in-needed', err.message);
        } else {
          this.publish(key, profile.name, 'closed', err.message);
        }
      }
    );
  }

  /**
   * The SSH link dropped (keepalive timeout, network gone, server restart). The jobs and
   * kernels keep running; while the cluster has live sessions, we reconnect with backoff;
   * otherwise the next use connects again.
   */
  private lost(key: string, profile: IClusterProfile, message: string): void {
    if (this.links.has(key)) {
      this.links.delete(key);
    }
    this.opts.onLost(key);
    if (!this.stopped && this.opts.hasLiveSessions(key)) {
      this.reconnect(key, profile, message);
    } else {
      this.publish(key, profile.name, 'closed', message);
    }
  }

  private reconnect(key: string, profile: IClusterProfile, why: string): void {
    const state = { cancel: () => undefined as void };
    this.reconnecting.set(key, state);
    const loop = (async (): Promise<IClusterLink> => {
      const since = Date.now();
      let backoff = 0; // attempts that reached a server (or could have)
      for (let attempt = 1; ; attempt++) {
        this.publish(
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
            !this.opts.hasLiveSessions(key) ||
            PERMANENT_SSH_FAILURES.has(code) ||
            SIGN_IN_FAILURES.has(code)
          ) {
            throw e;
          }
          const delay =
            code === 'unreachable' && Date.now() - since < UNREACHABLE_FAST_FOR_MS
              ? UNREACHABLE_RETRY_MS
              : Math.min(RECONNECT_MAX_MS, RECONNECT_FIRST_MS * 2 ** backoff++);
          this.publish(
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

  /** Connection state per cluster, published to the UI and replayed to new listeners. */
  private publish(key: string, profileName: string, state: ConnectionState, message: string): void {
    const names = new Set([profileName, ...this.opts.profilesOn(key)]);
    for (const name of names) {
      const e: AgentEvent = { type: 'connection', cluster: name, state, message };
      this.connectionStates.set(name, e);
      this.opts.emit(e);
    }
  }
}
