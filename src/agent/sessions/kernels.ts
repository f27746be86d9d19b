/**
 * The kernels of running sessions as Jupyter sees them: five local forwards per kernel
 * (one per ZMQ channel) to the kernel's sockets on the node, kept across restarts (same
 * ports, same key), taken back after an agent or Jupyter server restart, let go of on
 * detach, closed with the session.
 */
import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';

import type { IClusterProfile, IKernelStatus } from '../../common/api';
import { ConflictError, InvalidRequestError, NotFoundError } from '../schedulers/types';
import { LocalForward } from '../tunnels/local-forward';
import { kernelSockets, kernelTransport, openKernelChannel, type ChannelPort, type IKernelStart } from './connectivity';
import { MAX_SMALL_FILE_BYTES, type HelperClient } from './helper-client';
import type { IClusterLink } from '../cluster/link';
import { helperError, type IKernelConnection, type ISessionRecord } from './records';

const CHANNELS: readonly ChannelPort[] = ['shell_port', 'iopub_port', 'stdin_port', 'control_port', 'hb_port'];
/** In a connection file: the socket number of the kernel's IOPub keeper (0 or absent: none). */
const KEEPER_PORT = 'jrc_iopub_keeper_port';

interface IKernelRecord {
  kernelId: string;
  sessionId: string;
  remotePid: number;
  forwards: LocalForward[];
  connection: IKernelConnection;
  /** Stopped for a restart: ports and key are kept for the next kernel. */
  stopped: boolean;
  /** Another kernelspec of the job's environment than its default Python: restarts run it again. */
  kernelspec?: string;
}

/** SSH errors that say the link to the cluster is down: they say nothing about the job. */
const LINK_DOWN_CODES = new Set([
  'not-connected',
  'closed',
  'timeout',
  'auth-failed',
  'cancelled',
  'config',
  'known-hosts'
]);

export interface IKernelTableOptions {
  helper: HelperClient;
  log: (msg: string) => void;
  session: (id: string) => ISessionRecord | undefined;
  sessionProfile: (s: ISessionRecord) => Promise<IClusterProfile>;
  /** The cluster's link if it is up now (see ClusterLinks.linkNow). */
  linkNow: (profile: IClusterProfile, waitMs: number) => Promise<IClusterLink>;
  /** The session's kernels changed: publish it. */
  changed: (s: ISessionRecord) => void;
  /**
   * The link is up but the session's helper could not be asked (it refused, it says it
   * stops, it did not answer): the job may have ended (cancelled from outside); the
   * scheduler should be asked now, not at the poller's pace.
   */
  helperUnreachable: (s: ISessionRecord) => void;
}

export class KernelTable {
  private readonly kernels = new Map<string, IKernelRecord>();
  /** Kernels that ended with their session or were shut down: why, for later polls. */
  /** Kernels gone from this agent: why, and whether it is for good (their session ended). */
  private readonly endedKernels = new Map<string, { reason: string; final: boolean }>();

  constructor(private readonly opts: IKernelTableOptions) {}

  /** The ids of the kernels of a session that this agent forwards. */
  ofSession(sessionId: string): string[] {
    return [...this.kernels.values()].filter(k => k.sessionId === sessionId).map(k => k.kernelId);
  }

  /** Whether this agent forwards the kernel or saw it end (else it is someone else's, or detached). */
  knows(kernelId: string): boolean {
    return this.kernels.has(kernelId) || this.endedKernels.has(kernelId);
  }

  /** The link of these sessions dropped: close the local ends so ZMQ reconnects through the next link. */
  dropConnections(inSession: (sessionId: string) => boolean): void {
    for (const k of this.kernels.values()) {
      if (inSession(k.sessionId)) {
        k.forwards.forEach(f => f.dropConnections());
      }
    }
  }

  /** The session ended: its kernels with it. */
  endSession(sessionId: string, why: string): void {
    for (const k of [...this.kernels.values()].filter(k => k.sessionId === sessionId)) {
      this.drop(k, why, true);
    }
  }

  /** The agent stops: nothing left listening. */
  closeAll(): void {
    for (const k of this.kernels.values()) {
      k.forwards.forEach(f => f.close());
    }
  }

  /**
   * Start a kernel in a running session. With the id of a kernel stopped for a restart,
   * the new kernel takes its place behind the same local ports and key, so Jupyter's
   * existing channels stay valid (restart = new kernel, same allocation, same address).
   * `kernelspec`: another kernel of the job's environment than its default Python.
   */
  async start(
    sessionId: string,
    kernelId = randomBytes(8).toString('hex'),
    kernelspec?: string
  ): Promise<IKernelConnection> {
    const s = this.opts.session(sessionId);
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
    const spec = restarting ? restarting.kernelspec : kernelspec;
    if (spec && !s.kernelspecs?.some(k => k.name === spec)) {
      throw new NotFoundError(
        `Session ${sessionId} has no kernel ${spec} (its job's environment lists none by that name).`,
        'kernelspec'
      );
    }
    const route = await this.opts.helper.route(s);
    const r = await this.opts.helper.request(s, 'POST', '/kernels', {
      kernelId,
      env,
      ...(spec && { kernelspec: spec }),
      ...kernelTransport(route.mode, route.protocol)
    });
    if (r.status !== 200 && r.status !== 201) {
      throw new Error(`The kernel did not start on ${s.node}: ${helperError(r.json)}`);
    }
    const info = r.json as IKernelStart;
    const file = await this.connectionFile(s, kernelId, route.link);
    const opener = this.opener(s, kernelId, file, info.ports);

    if (restarting) {
      if (restarting.connection.key !== file.key) {
        // The helper could not keep the key: hand out the new one (clients reload it).
        restarting.connection.key = file.key;
      }
      restarting.connection.iopub_kept = file.iopub_kept === true;
      CHANNELS.forEach((ch, i) => restarting.forwards[i].retarget(opener(ch)));
      restarting.remotePid = info.pid;
      restarting.stopped = false;
      this.opts.changed(s);
      return restarting.connection;
    }

    return this.register(s, kernelId, info.pid, file, ch => ({ open: opener(ch) }), spec);
  }

  /**
   * Take a kernel that still runs in the session back: after the agent restarted, on the
   * same local ports (the client's connection info); after the Jupyter server that
   * started it was lost (`localPorts` undefined), on new ones. Either way the forwards go
   * to the kernel's ports, read with its key from its connection file: its state is intact.
   */
  async adopt(sessionId: string, kernelId: string, localPorts?: Record<string, number>): Promise<IKernelConnection> {
    const existing = this.kernels.get(kernelId);
    if (existing) {
      return existing.connection;
    }
    const s = this.opts.session(sessionId);
    if (!s) {
      throw new NotFoundError(`No session ${sessionId}.`, 'session');
    }
    if (s.state !== 'running' || !s.node) {
      throw new ConflictError(`Session ${sessionId} is ${s.state}, not running.`, 'session');
    }
    const status = await this.opts.helper.request(s, 'GET', `/kernels/${kernelId}`, undefined, 15_000);
    if (status.status !== 200 || !status.json.alive) {
      throw new NotFoundError(`Kernel ${kernelId} is no longer running in session ${sessionId}.`, 'kernel');
    }
    try {
      const route = await this.opts.helper.route(s);
      const file = await this.connectionFile(s, kernelId, route.link);
      const opener = this.opener(s, kernelId, file, {});
      if (route.mode !== 'via-login') {
        kernelSockets(route.mode, kernelId, file, route.state, CHANNELS, route.protocol); // fail now, not per stream
      }
      const remoteSpec = status.json.kernelspec;
      const conn = await this.register(
        s,
        kernelId,
        Number(status.json.pid ?? 0),
        file,
        ch => ({ open: opener(ch), localPort: localPorts ? Number(localPorts[ch]) : undefined }),
        typeof remoteSpec === 'string' ? remoteSpec : undefined
      );
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

  /** Alive or not, from the helper; `null` when it cannot be known right now (link down). */
  async status(kernelId: string): Promise<IKernelStatus> {
    const k = this.kernels.get(kernelId);
    if (!k) {
      const ended = this.endedKernels.get(kernelId);
      if (ended) {
        return { alive: false, reason: ended.reason, ...(ended.final && { final: true }) };
      }
      // Not known to this agent: after an agent restart the provisioner adopts it again.
      return { alive: null, reason: 'unknown-kernel' };
    }
    if (k.stopped) {
      return { alive: false, reason: 'stopped for a restart' };
    }
    const s = this.opts.session(k.sessionId);
    if (!s || s.state === 'ended') {
      return { alive: false, reason: s?.reason ?? 'session ended', final: true };
    }
    try {
      // While the link is down or reconnecting, answer at once: "unknown", never "dead".
      await this.opts.linkNow(await this.opts.sessionProfile(s), 10_000);
      const r = await this.opts.helper.request(s, 'GET', `/kernels/${kernelId}`, undefined, 15_000);
      if (r.status === 404) {
        return { alive: false, reason: 'the kernel is gone' };
      }
      return { alive: Boolean(r.json.alive), exitCode: r.json.exitCode ?? undefined };
    } catch (err) {
      if (!LINK_DOWN_CODES.has(String((err as { code?: unknown }).code))) {
        this.opts.helperUnreachable(s);
      }
      // A dropped link is not a dead kernel: Jupyter must not restart it.
      return { alive: null, reason: (err as Error).message };
    }
  }

  async signal(kernelId: string, signal: string): Promise<void> {
    if (!['SIGINT', 'SIGTERM', 'SIGKILL'].includes(signal)) {
      throw new InvalidRequestError(`Signal ${signal} is not allowed (SIGINT, SIGTERM, SIGKILL).`, 'signal');
    }
    const k = this.kernel(kernelId);
    const r = await this.request(k.sessionId, 'POST', `/kernels/${kernelId}/signal`, { signal }, 15_000);
    if (r.status !== 200) {
      throw new Error(`Could not signal the kernel: ${helperError(r.json) || r.status}`);
    }
  }

  /** Stop a kernel; with `restart`, keep its local ports and key for the next one. */
  async shutdown(kernelId: string, restart = false): Promise<void> {
    const k = this.kernel(kernelId);
    const s = this.opts.session(k.sessionId);
    if (s && s.state === 'running' && !k.stopped) {
      await this.request(k.sessionId, 'DELETE', `/kernels/${kernelId}`, undefined, 20_000).catch(err =>
        this.opts.log(`shutdown of kernel ${kernelId}: ${(err as Error).message}`)
      );
    }
    if (restart && s?.state === 'running') {
      k.stopped = true;
      k.forwards.forEach(f => f.dropConnections());
    } else {
      this.drop(k);
    }
    if (s) {
      this.opts.changed(s);
    }
  }

  /**
   * Let go of a kernel without stopping it: its Jupyter server is stopping and leaves
   * it running in the job (with its state) for the next server to attach. Its local
   * forwards close, so nothing the stopping server sends reaches it.
   */
  detach(kernelId: string): void {
    const k = this.kernel(kernelId);
    k.forwards.forEach(f => f.close());
    this.kernels.delete(kernelId);
    this.opts.log(`detached kernel ${kernelId} of session ${k.sessionId}: it keeps running`);
    // Listed as detached at once, not only after the next heartbeat read.
    const helper = this.opts.helper.state(k.sessionId);
    if (helper && !k.stopped) {
      helper.kernels = { ...helper.kernels, [kernelId]: { pid: k.remotePid, alive: true } };
    }
    const s = this.opts.session(k.sessionId);
    if (s) {
      this.opts.changed(s);
    }
  }

  private kernel(kernelId: string): IKernelRecord {
    const k = this.kernels.get(kernelId);
    if (!k) {
      throw new NotFoundError(`No kernel ${kernelId}.`, 'kernel');
    }
    return k;
  }

  private async request(sessionId: string, method: string, urlPath: string, body: unknown, timeoutMs: number) {
    const s = this.opts.session(sessionId);
    if (!s) {
      throw new NotFoundError(`No session ${sessionId}.`, 'session');
    }
    return this.opts.helper.request(s, method, urlPath, body, timeoutMs);
  }

  private drop(k: IKernelRecord, why = 'shut down', final = false): void {
    k.forwards.forEach(f => f.close());
    this.kernels.delete(k.kernelId);
    this.endedKernels.set(k.kernelId, { reason: why, final });
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
    const keeper = Number(parsed[KEEPER_PORT] ?? 0);
    if (Number.isInteger(keeper) && keeper > 0) {
      // IOPub is reached through its keeper on the node (jrc_iopub_keeper.py), which holds
      // output while the link is down; the provisioner's bridge speaks its protocol.
      parsed.iopub_port = keeper;
      parsed.iopub_kept = true;
    }
    return parsed as { key: string; signature_scheme: string } & Record<string, unknown>;
  }

  /**
   * Per channel, a function that opens a stream to the kernel: the route is looked up per
   * stream (after a reconnect, through the new link; never to a helper whose heartbeat
   * went stale), the sockets come from the connection file.
   */
  private opener(
    s: ISessionRecord,
    kernelId: string,
    file: Record<string, unknown>,
    ports: Record<string, number>
  ): (ch: ChannelPort) => () => Promise<Duplex> {
    let sockets: Record<string, string> | undefined;
    return ch => async () => {
      const route = await this.opts.helper.route(s);
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
  private async register(
    s: ISessionRecord,
    kernelId: string,
    remotePid: number,
    file: { key: string; signature_scheme: string; iopub_kept?: unknown },
    channel: (ch: ChannelPort) => { open: () => Promise<Duplex>; localPort?: number },
    kernelspec?: string
  ): Promise<IKernelConnection> {
    const forwards: LocalForward[] = [];
    const conn: Partial<IKernelConnection> = {
      kernelId,
      sessionId: s.id,
      ip: '127.0.0.1',
      transport: 'tcp',
      key: file.key,
      signature_scheme: file.signature_scheme,
      iopub_kept: file.iopub_kept === true
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
      stopped: false,
      kernelspec
    };
    this.kernels.set(kernelId, rec);
    this.opts.changed(s);
    return rec.connection;
  }
}
