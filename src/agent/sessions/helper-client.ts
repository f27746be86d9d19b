/**
 * Talking to a session's helper on its node: its state file and secrets (read over SFTP),
 * the route to it (connectivity mode, probed once for `auto`), requests on its control
 * channel and streams to the HTTP ports it serves.
 */

import type { Duplex } from 'node:stream';

import type { IClusterProfile } from '../../common/api';
import { sessionTlsName } from '../tls/x509';
import type { ISchedulerAdapter } from '../schedulers/types';
import type { IRelayCredentials } from '../tunnels/relay';
import type { IOpenedPort } from '../tunnels/http-proxy';
import {
  autoOrder,
  ModeMemory,
  openControl,
  openHttpPort,
  PROBE_TIMEOUT_MS,
  requestOver,
  withTimeout,
  type IRoute,
  type ResolvedMode
} from './connectivity';
import type { IClusterLink } from '../cluster/link';
import { HEARTBEAT_STALE_S, heartbeatAge, hostToReach, type IHelperState, type ISessionRecord } from './records';

/** Files of the helper read over SFTP are small; anything bigger is not the helper's. */
const MAX_STATE_BYTES = 1 << 20;
export const MAX_SMALL_FILE_BYTES = 64 * 1024;
/** The proxy re-reads what a session serves when its copy is older than this. */
const PORTS_FRESH_MS = 2_000;

export type SessionRoute = IRoute & { token: string; link: IClusterLink };

/** How long one read of a helper's state.json may take (an SFTP read over the login node). */
const STATE_READ_TIMEOUT_MS = 30_000;

export interface IHelperClientOptions {
  stateDir: string;
  log: (msg: string) => void;
  link: (profile: IClusterProfile) => Promise<IClusterLink>;
  sessionProfile: (s: ISessionRecord) => Promise<IClusterProfile>;
  adapter: (p: IClusterProfile) => ISchedulerAdapter;
  /** `auto` found the mode that works for the session. */
  onModeFound: (s: ISessionRecord, mode: ResolvedMode) => void;
}

export class HelperClient {
  /** Per session: the helper's last state, and its token and TLS credentials (read once over SFTP). */
  private readonly states = new Map<string, IHelperState>();
  private readonly stateReadAt = new Map<string, number>();
  private readonly secrets = new Map<string, { token: string; relay?: IRelayCredentials }>();
  /** Connectivity: `auto` probes, the winner is remembered per profile. */
  private modeMemory?: ModeMemory;
  private readonly probes = new Map<string, Promise<ResolvedMode>>();

  constructor(private readonly opts: IHelperClientOptions) {}

  /** The helper's state as last read (undefined: never read, or forgotten). */
  state(sessionId: string): IHelperState | undefined {
    return this.states.get(sessionId);
  }

  /** What the helper answered on its control channel, merged into its last state (until the next read). */
  merge(sessionId: string, part: Partial<IHelperState>): void {
    const st = this.states.get(sessionId);
    if (st) {
      this.states.set(sessionId, { ...st, ...part });
    }
  }

  /** The session ended: its state and secrets are of no use any more. */
  forget(sessionId: string): void {
    this.states.delete(sessionId);
    this.secrets.delete(sessionId);
  }

  async readState(s: ISessionRecord, link: IClusterLink): Promise<IHelperState | undefined> {
    let timer: NodeJS.Timeout | undefined;
    try {
      // (a read that hangs must not hold the status cycle, nor a session's end)
      const read = Promise.race([
        link.readFile(`${s.remoteDir}/state.json`, MAX_STATE_BYTES),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error('state.json: no answer')), STATE_READ_TIMEOUT_MS);
        })
      ]);
      const state = JSON.parse((await read).toString('utf8')) as IHelperState;
      this.states.set(s.id, state);
      this.stateReadAt.set(s.id, Date.now());
      return state;
    } catch {
      return undefined;
    } finally {
      clearTimeout(timer);
    }
  }

  async request(
    rec: ISessionRecord,
    method: string,
    urlPath: string,
    body?: unknown,
    timeoutMs = 90_000
  ): Promise<{ status: number; json: any }> {
    const { route, channel } = await this.openControlStream(rec);
    return requestOver(channel, method, urlPath, route.token, body, timeoutMs, route.state.host);
  }

  /** A stream to the helper's control channel (any mode), and the route it took. */
  async openControlStream(rec: ISessionRecord): Promise<{ route: SessionRoute; channel: Duplex }> {
    const route = await this.route(rec);
    try {
      return { route, channel: await openControl(route, route.link) };
    } catch (err) {
      const hint =
        route.mode === 'via-login'
          ? ' If the nodes accept only SSH from the login node, use connectivity node-ssh (or auto).'
          : '';
      // (keeps the SSH layer's code: `forward-failed` is the node refusing, the helper gone)
      throw Object.assign(
        new Error(
          `Cannot reach the session's helper on ${route.state.host} (connectivity ${route.mode}): ${(err as Error).message}${hint}`
        ),
        { code: (err as { code?: unknown }).code }
      );
    }
  }

  /**
   * How to reach a running session's helper now: its fresh state, token, link and
   * connectivity mode (probed once for `auto`). Refuses a helper whose heartbeat is stale
   * (what it listened on may be someone else's by now) or that speaks another protocol
   * than the one the session was started with (never a silent downgrade).
   */
  async route(rec: ISessionRecord): Promise<SessionRoute> {
    const profile = await this.opts.sessionProfile(rec);
    const link = await this.opts.link(profile);
    let state = this.states.get(rec.id);
    if (!state || state.status !== 'ready' || heartbeatAge(state) > HEARTBEAT_STALE_S) {
      state = await this.readState(rec, link);
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
    const base = { protocol, state, host: hostToReach(this.opts.adapter(profile), state.host), relay, token, link };
    if (rec.connectivity) {
      return { ...base, mode: rec.connectivity };
    }
    let probe = this.probes.get(rec.id);
    if (!probe) {
      probe = this.probeModes(rec, profile.name, base).finally(() => this.probes.delete(rec.id));
      this.probes.set(rec.id, probe);
    }
    return { ...base, mode: await probe };
  }

  /**
   * A stream to `port` of the session, if its helper reports serving it right now (the
   * list read again when older than PORTS_FRESH_MS), and nothing else.
   */
  async openServedPort(s: ISessionRecord, port: number): Promise<IOpenedPort> {
    const route = await this.route(s);
    let state = route.state as IHelperState;
    if (Date.now() - (this.stateReadAt.get(s.id) ?? 0) > PORTS_FRESH_MS) {
      state = (await this.readState(s, route.link)) ?? state;
    }
    const served = (state.httpPorts ?? []).find(p => p.port === port);
    if (!served) {
      throw Object.assign(new Error(`Port ${port} is not served by session ${s.id}.`), { status: 404 });
    }
    return { stream: await openHttpPort({ ...route, state }, route.link, port), stripPrefix: !!served.stripPrefix };
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

  /** `auto`: the first mode whose control channel answers /health, remembered mode first. */
  private async probeModes(
    rec: ISessionRecord,
    profileName: string,
    base: Omit<IRoute, 'mode'> & { token: string; link: IClusterLink }
  ): Promise<ResolvedMode> {
    const memory = (this.modeMemory ??= new ModeMemory(this.opts.stateDir));
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
          this.opts.onModeFound(rec, mode);
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
}
