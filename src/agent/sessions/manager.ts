/**
 * Sessions: one batch job (allocation) per session, hosting kernels and, optionally, a
 * Dask scheduler. The manager is the state machine that drives each session through
 *   submitting -> queued -> starting -> running -> ended
 * and the facade the server talks to. It delegates: one SSH link per cluster
 * (../cluster/links.ts), one batched status query per cluster per cycle (poller.ts), the
 * submission of its job (submit-job.ts), what ending it does on the cluster (ending.ts),
 * the helper on the node (helper-client.ts), kernels' local forwards (kernels.ts), worker
 * jobs (worker-jobs.ts), the allocation's hours (allocation.ts) and persistence (store.ts).
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { EventEmitter } from 'node:events';

import type {
  AgentEvent,
  IClusterProfile,
  IExtendAnswer,
  IKernelStatus,
  IResources,
  ISession,
  IServedPort,
  ISessionLogs,
  IStartEstimate
} from '../../common/api';
import { ClusterLinks, clusterKey } from '../cluster/links';
import {
  ConflictError,
  InvalidRequestError,
  NotFoundError,
  type IJobStatus,
  type ISchedulerAdapter
} from '../schedulers/types';
import type { IOpenedPort } from '../tunnels/http-proxy';
import { HelperClient } from './helper-client';
import { KernelTable } from './kernels';
import type { IClusterLink, LinkFactory } from '../cluster/link';
import { StatusPoller } from './poller';
import { publicView } from './view';
import {
  cancelJob,
  cancelWorkerJobs,
  jobAccounting,
  removeReverseDir,
  removeSessionDir,
  startFailure,
  withJobStderr
} from './ending';
import { submitWorkerJobs } from './scale-out';
import { submitSessionJob } from './submit-job';
import { endedIdle, idleReason, requestExtension } from './allocation';
import { StartEstimates } from './estimates';
import { withReported, withStatuses } from './worker-jobs';
import { HEARTBEAT_STALE_S, now, type IHelperState, type IKernelConnection, type ISessionRecord } from './records';
import { readRemoteFiles, type IRemoteFiles } from './remote-files';
import { SessionStore, type IRetention } from './store';
import { readSessionLogs } from './session-logs';
import { askToOpenWebPort } from './web-ports';
import { RemoteKernelspecs } from './remote-kernelspecs';
import { SessionTerminals } from './terminals';
import { ClusterDrives } from '../cluster/drive';
import { NotebookSessions } from './notebook-sessions';
import { LoginTerminals } from '../cluster/login-terminals';

export { REMOTE_ROOT, onLogin, type IHelperState, type IKernelConnection } from './records';

/** A helper that refuses connections makes the scheduler be asked at most this often. */
const HELPER_UNREACHABLE_RECHECK_MS = 10_000;

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
  /** Minutes: the idle timeout of profiles that set none (0 or absent: off). */
  defaultIdleTimeout?: number;
}

export class SessionManager {
  readonly events = new EventEmitter();
  private readonly sessions = new Map<string, ISessionRecord>();
  private readonly clusters: ClusterLinks;
  private readonly poller: StatusPoller;
  private readonly helper: HelperClient;
  private readonly kernels: KernelTable;
  /** The public view of each session as last emitted (helperSaid emits only changes). */
  private readonly shown = new Map<string, string>();
  private remoteSource?: IRemoteFiles;
  private saving = Promise.resolve();
  private readonly store: SessionStore<ISessionRecord>;
  private readonly noticeEvents: AgentEvent[] = [];
  private readonly startEstimates = new StartEstimates();
  /** When each session's refusing helper last made us ask the scheduler. */
  private readonly helperUnreachableAt = new Map<string, number>();
  /** Shells on the clusters' login nodes (login-terminals.ts). */
  readonly loginTerminals: LoginTerminals;
  /** The clusters' files over SFTP (cluster/drive.ts). */
  readonly drives = new ClusterDrives(name => this.clusterLink(name));
  /** Which session each notebook's stable kernel starts in (notebook-sessions.ts). */
  private readonly notebooks = new NotebookSessions();
  /** The job environments' other kernels, asked of each running session's helper once. */
  private readonly remoteKernelspecs: RemoteKernelspecs;

  constructor(private readonly opts: ISessionManagerOptions) {
    this.store = new SessionStore(opts.stateDir, opts.retention);
    const sessionProfile = (s: ISessionRecord) => this.sessionProfile(s);
    const liveSessions = (key: string) =>
      [...this.sessions.values()].filter(s => s.clusterKey === key && s.state !== 'ended');
    this.clusters = new ClusterLinks({
      connect: opts.connect,
      log: opts.log,
      emit: e => this.emit(e),
      hasLiveSessions: key => liveSessions(key).length > 0,
      profilesOn: key => [...this.sessions.values()].filter(s => s.clusterKey === key).map(s => s.profile),
      // Local sockets of kernel forwards close so ZMQ reconnects (and so re-opens them through the new link).
      onLost: key => this.kernels.dropConnections(id => this.sessions.get(id)?.clusterKey === key),
      // Catch up at once: the jobs may have changed state while we were away.
      onReconnected: key => this.poller.schedule(key, 0)
    });
    const link = (p: IClusterProfile) => this.clusters.link(p);
    this.helper = new HelperClient({
      stateDir: opts.stateDir,
      log: opts.log,
      link,
      sessionProfile,
      adapter: p => this.adapter(p),
      onModeFound: (s, mode) => this.update(s, { connectivity: mode })
    });
    this.poller = new StatusPoller({
      log: opts.log,
      liveSessions,
      sessionProfile,
      adapter: p => this.adapter(p),
      link,
      readHelperState: (s, l) => this.helper.readState(s, l),
      apply: (s, st, l, scheduler) => this.apply(s, st, l, scheduler),
      helperSaid: (s, h) => this.helperSaid(s, h),
      workerJobsSaid: (s, statuses) => {
        const workerJobs = withStatuses(s.workerJobs, statuses);
        if (workerJobs) {
          this.update(s, { workerJobs });
        }
      },
      hasKernels: s => this.kernels.ofSession(s.id).length > 0
    });
    this.loginTerminals = new LoginTerminals(m => this.opts.log(m));
    this.remoteKernelspecs = new RemoteKernelspecs(this.helper, this.opts.log, (s, kernelspecs) => {
      if (this.sessions.get(s.id) === s && s.state === 'running') {
        this.update(s, { kernelspecs });
      }
    });
    this.kernels = new KernelTable({
      helper: this.helper,
      log: opts.log,
      session: id => this.sessions.get(id),
      sessionProfile,
      linkNow: (p, waitMs) => this.clusters.linkNow(p, waitMs),
      changed: s => {
        this.update(s, {});
        if (this.kernels.ofSession(s.id).length > 0) {
          this.poller.hurry(s.clusterKey);
        }
      },
      helperUnreachable: s => {
        // Jupyter asks about a kernel every few seconds: the scheduler, at most every 10 s
        if (Date.now() - (this.helperUnreachableAt.get(s.id) ?? 0) >= HELPER_UNREACHABLE_RECHECK_MS) {
          this.helperUnreachableAt.set(s.id, Date.now());
          this.opts.log(`session ${s.id}: its helper cannot be reached while the link is up: asking the scheduler now`);
          this.poller.askNow(s.clusterKey);
        }
      }
    });
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
        this.poller.schedule(s.clusterKey, 0);
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
        this.removeRemoteDir(s);
      }
    }
    this.saving = this.store.save(kept).catch(err => this.opts.log(`cannot save sessions: ${(err as Error).message}`));
  }

  /* ---------------- queries ---------------- */

  /** Session `id` (NotFoundError if none); running, or a ConflictError saying `runningFor`. */
  private known(id: string, runningFor?: string): ISessionRecord {
    const s = this.sessions.get(id);
    if (!s) {
      throw new NotFoundError(`No session ${id}.`, 'session');
    }
    if (runningFor !== undefined && s.state !== 'running') {
      throw new ConflictError(`Session ${id} is ${s.state}: ${runningFor}.`);
    }
    return s;
  }

  list(): ISession[] {
    return [...this.sessions.values()].map(s => this.publicView(s));
  }

  get(id: string): ISession | undefined {
    const s = this.sessions.get(id);
    return s && this.publicView(s);
  }

  owner(id: string): 'user' | 'kernel' | undefined {
    return this.sessions.get(id)?.owner;
  }

  /** The last connection event of each profile (for clients that connect later). */
  connectionEvents(): AgentEvent[] {
    return this.clusters.connectionEvents();
  }

  private publicView(s: ISessionRecord): ISession {
    return publicView(s, {
      kernels: this.kernels.ofSession(s.id),
      knows: id => this.kernels.knows(id),
      helper: s.state === 'ended' ? undefined : this.helper.state(s.id)
    });
  }

  private emit(event: AgentEvent): void {
    this.events.emit('event', event);
  }

  private update(s: ISessionRecord, patch: Partial<ISessionRecord>): void {
    Object.assign(s, patch, { updatedAt: now() });
    this.save();
    const view = this.publicView(s);
    this.shown.set(s.id, JSON.stringify(view));
    this.emit({ type: 'session', session: view });
  }

  /**
   * What a running session's helper said between scheduler queries: the ports it serves
   * now (a notebook started a Dask scheduler), its workers, its kernels. Said to the
   * frontend only when the session looks different.
   */
  private helperSaid(s: ISessionRecord, h: IHelperState): void {
    if (s.state !== 'running') {
      return;
    }
    const httpPorts = h.httpPorts ?? [];
    const workerJobs = withReported(s.workerJobs, h.workerJobs ?? []) ?? s.workerJobs;
    const terminals = h.terminals ?? [];
    if (JSON.stringify(this.publicView({ ...s, httpPorts, workerJobs, terminals })) !== this.shown.get(s.id)) {
      this.update(s, { httpPorts, workerJobs, terminals });
    }
  }

  /* ---------------- profiles ---------------- */

  /**
   * The user asks to sign in to the cluster of `profileName` (after `sign-in-needed`).
   * A profile deleted while its jobs run: sign in for them with what they were submitted with.
   */
  async signIn(profileName: string): Promise<void> {
    const orphan = [...this.sessions.values()].find(s => s.profile === profileName && s.submittedProfile);
    const profile = await this.profile(profileName).catch(err => orphan?.submittedProfile ?? Promise.reject(err));
    this.clusters.signIn(profile);
  }

  /** The link to a profile's cluster now (the user asked: may sign in), for a login-node terminal. */
  async clusterLink(profileName: string): Promise<IClusterLink> {
    return this.clusters.link(await this.profile(profileName), true);
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

  private async remoteFiles(): Promise<IRemoteFiles> {
    this.remoteSource ??= await readRemoteFiles(this.opts.helperPath);
    return this.remoteSource;
  }

  /* ---------------- submit ---------------- */

  /**
   * Validate everything first (nothing is sent to the cluster for bad input), connect
   * (prompts may be answered meanwhile), submit, and return the queued session. If the
   * scheduler refuses, its message comes back as an InvalidRequestError and no session,
   * job or remote directory is left behind.
   */
  async submit(
    profileName: string,
    overrides: IResources = {},
    owner: 'user' | 'kernel' = 'user',
    links: Pick<ISessionRecord, 'continues'> = {},
    fallback?: IClusterProfile
  ): Promise<ISession> {
    const profile = await this.profile(profileName).catch(err => fallback ?? Promise.reject(err));
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
      clusterKey: clusterKey(profile),
      remoteDir: '',
      owner,
      kernels: [],
      ...(profile.defaultKernel && { defaultKernel: profile.defaultKernel }),
      submittedProfile: profile,
      ...links
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
    const link = await this.clusters.link(profile, true); // the user asked: may sign in
    const home = await this.clusters.home(s.clusterKey, link);
    const jobId = await submitSessionJob({
      s,
      profile,
      adapter,
      link,
      home,
      remote: await this.remoteFiles(),
      baseUrl: this.opts.baseUrl,
      defaultIdleTimeout: this.opts.defaultIdleTimeout ?? 0
    });
    this.update(s, { state: 'queued', jobId });
    this.poller.schedule(s.clusterKey, 0);
  }

  /* ---------------- the state machine ---------------- */

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
    const helper = await this.helper.readState(s, link);
    if (!helper || helper.status === 'starting') {
      if (s.state !== 'starting' || s.node !== st.node) {
        this.update(s, { state: 'starting', node: st.node, reason: undefined, ...walltimeLeft(st) });
      }
      return;
    }
    if (helper.status === 'failed') {
      await this.cancelJob(s, link);
      await this.end(s, startFailure(helper), link);
      return;
    }
    const stale = Date.now() / 1000 - helper.heartbeat > HEARTBEAT_STALE_S;
    if (s.state !== 'running' && !s.connectivity) {
      // auto: find the mode now, so the sidebar shows it and the first kernel starts at once
      void this.helper
        .route(s)
        .catch(err => this.opts.log(`connectivity of session ${s.id}: ${(err as Error).message}`));
    }
    this.update(s, {
      state: 'running',
      node: helper.host || st.node,
      reason: stale
        ? `no heartbeat from the helper for ${Math.round(Date.now() / 1000 - helper.heartbeat)} s`
        : undefined,
      ...walltimeLeft(st),
      httpPorts: helper.httpPorts ?? [],
      workerJobs: withReported(s.workerJobs, helper.workerJobs ?? []) ?? s.workerJobs,
      terminals: helper.terminals ?? []
    });
    void this.remoteKernelspecs.listOnce(s);
  }

  private async end(s: ISessionRecord, reason: string, link?: IClusterLink, withStderr = true): Promise<void> {
    if (s.state === 'ended') {
      return;
    }
    if (link && s.state !== 'submitting') {
      // The helper's last words (idle reclaim, usage, why it could not start) are in its
      // state.json: read it now, not as last polled (a refusing helper makes the agent ask
      // the scheduler at once; a failing one ends its job before it is seen starting).
      await this.helper.readState(s, link);
    }
    // Ended before it was usable: the helper's sentence, or the job's stderr (which usually
    // says why). Ended by its helper for being idle: how long, and what that gave back.
    const helper = this.helper.state(s.id);
    const idle = endedIdle(helper);
    const why = idle
      ? idleReason(idle)
      : s.state !== 'running' && helper?.status === 'failed'
        ? startFailure(helper)
        : link && withStderr && s.state !== 'running'
          ? await withJobStderr(s, reason, link)
          : reason;
    this.kernels.endSession(s.id, `the session ended: ${why}`);
    if (link) {
      const profile = await this.sessionProfile(s).catch(() => undefined);
      if (profile && s.state === 'running') {
        await cancelWorkerJobs(s, profile, this.adapter(profile), link);
        // the card's scheduler figures, when they come (not waited for)
        void jobAccounting(s, profile, this.adapter(profile), link).then(accounting => {
          if (accounting && this.sessions.get(s.id) === s) {
            this.update(s, { accounting });
          }
        });
      }
      await removeReverseDir(s, this.helper.state(s.id)?.reverse?.dir, link, this.opts.log);
    }
    const usage = this.helper.state(s.id)?.usage ?? s.usage; // the efficiency card stays
    this.helper.forget(s.id);
    this.update(s, {
      state: 'ended',
      reason: why,
      timeLeftSeconds: undefined,
      endsAt: undefined,
      httpPorts: [],
      ...(usage && { usage }),
      ...(idle && { endedIdle: idle })
    });
  }

  /** "Add workers": `count` worker jobs joining the session's Dask (elastic.ts). */
  async addWorkers(id: string, count: number): Promise<{ jobIds: string[]; walltime: string }> {
    const s = this.known(id, 'workers join a running session');
    const profile = await this.sessionProfile(s);
    const link = await this.clusters.link(profile, true);
    const helper = (await this.helper.readState(s, link)) ?? this.helper.state(s.id);
    const adapter = this.adapter(profile);
    const added = await submitWorkerJobs({ s, profile, adapter, link, helper, count });
    this.opts.log(`session ${id}: ${count} worker job(s) ${added.jobIds.join(', ')} (walltime ${added.walltime})`);
    this.update(s, { workerJobs: withReported(s.workerJobs, added.jobIds) ?? s.workerJobs });
    this.poller.schedule(s.clusterKey, 0); // asked about in the next status query, now
    return added;
  }

  /**
   * A new session of the same profile (as it is now; as it was, if deleted since) and
   * resources: "Relaunch" (any session), or "Continue in a new job" (`continues`: a live
   * session nearing its end, linked to its successor, where the frontend moves the
   * notebooks once it runs). `resources` replace the old session's (edited in the
   * dialog). A refused submission changes nothing.
   */
  async relaunch(id: string, continues: boolean, resources?: IResources): Promise<ISession> {
    const s = this.known(id);
    if (continues) {
      if (s.state === 'ended') {
        throw new ConflictError(`Session ${id} has ended: there is nothing to continue (relaunch it instead).`);
      }
      const next = s.continuedBy ? this.sessions.get(s.continuedBy) : undefined;
      if (next && next.state !== 'ended') {
        throw new ConflictError(`Session ${id} is already continued by session ${next.id} (${next.state}).`);
      }
    }
    const next = await this.submit(
      s.profile,
      resources ?? s.resources,
      'user',
      continues ? { continues: s.id } : {},
      s.submittedProfile
    );
    if (continues && this.sessions.get(id)) {
      this.update(s, { continuedBy: next.id });
    }
    return next;
  }

  /** When each candidate partition of profile `name` would start ("fastest start", estimates.ts). */
  async estimates(name: string): Promise<IStartEstimate[]> {
    const profile = await this.profile(name);
    return this.startEstimates.get(profile, this.adapter(profile), () => this.clusters.link(profile, true));
  }

  /**
   * The user is active with the session in JupyterLab (`keep`: pressed Keep running):
   * its helper restarts its idle clock (idle reclaim is decided there, idle.py).
   */
  async activity(id: string, keep: boolean): Promise<ISession> {
    const s = this.known(id, 'only a running session can be kept');
    const r = await this.helper.request(s, 'POST', '/activity', { keep }, 30_000);
    if (r.status !== 200) {
      throw new Error(`The session's helper refused: ${r.json?.error?.message ?? `HTTP ${r.status}`}`);
    }
    this.helper.merge(s.id, { idle: r.json?.idle ?? undefined });
    this.update(s, {});
    return this.publicView(s);
  }

  /** "Open a Port of the Session…": `port` offered now if a web server of the session holds it. */
  async openWebPort(id: string, port: number): Promise<IServedPort> {
    const s = this.known(id, 'only a running session serves ports');
    const { entry, httpSockets } = await askToOpenWebPort(this.helper, s, port);
    const httpPorts = [...(s.httpPorts ?? []).filter(p => p.port !== port), entry];
    this.helper.merge(s.id, { httpPorts, httpSockets });
    this.update(s, { httpPorts });
    return entry;
  }

  /** The terminals of a running session (terminals.ts). */
  terminals(id: string): SessionTerminals {
    const s = this.known(id, 'only a running session has terminals');
    // opened or ended here: said at once, not at the next read of the helper's state
    return new SessionTerminals(this.helper, s, terminals => this.update(s, { terminals }));
  }

  /** "Show log": the ends of the session's log files on the cluster (session-logs.ts). */
  async logs(id: string): Promise<ISessionLogs> {
    const s = this.known(id);
    if (!s.jobId) {
      throw new ConflictError(`Session ${id} was never submitted: it has no logs.`);
    }
    return readSessionLogs(s.remoteDir, await this.clusters.link(await this.sessionProfile(s), true));
  }

  /** "Extend": ask the batch system once for `minutes` more walltime (allocation.ts). */
  async extend(id: string, minutes: number): Promise<IExtendAnswer> {
    const s = this.known(id);
    const profile = await this.sessionProfile(s);
    const link = await this.clusters.link(profile, true);
    const answer = await requestExtension({ s, profile, adapter: this.adapter(profile), link, minutes });
    this.opts.log(
      `session ${id}: extend by ${minutes} min: ${answer.granted ? 'granted' : 'refused'}: ${answer.answer}`
    );
    if (answer.walltime) {
      this.update(s, { resources: { ...s.resources, walltime: answer.walltime } });
      this.poller.askNow(s.clusterKey); // the time left, from the scheduler
    }
    return answer;
  }

  /* ---------------- cancel ---------------- */

  private async cancelJob(s: ISessionRecord, link: IClusterLink): Promise<void> {
    const profile = await this.sessionProfile(s);
    await cancelJob(s, profile, this.adapter(profile), link);
  }

  async cancel(id: string, reason = 'cancelled by you'): Promise<ISession> {
    const s = this.known(id);
    if (s.state === 'ended') {
      return this.publicView(s);
    }
    const profile = await this.sessionProfile(s);
    const link = await this.clusters.link(profile, true); // the user asked: may sign in
    if (s.state === 'running') {
      // Let the helper stop kernels and Dask cleanly; scancel follows regardless.
      await this.helper.request(s, 'POST', '/shutdown', {}, 5_000).catch(() => undefined);
    }
    await this.cancelJob(s, link);
    // with the link: the accounting, the worker jobs and the reverse dir are seen to as for
    // any end; the job's stderr does not explain an end the user asked for
    await this.end(s, reason, link, false);
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
    this.removeRemoteDir(s);
    return true;
  }

  /**
   * A forgotten session's directory on the cluster goes too (a home's quota is small), on
   * the cluster's link if it is up: no login, no prompt for it. Else it stays (docs/remote-helper.md).
   */
  private removeRemoteDir(s: ISessionRecord): void {
    const link = this.clusters.connected(s.clusterKey);
    void link
      ?.then(l => removeSessionDir(s, l))
      .then(done => done && this.opts.log(`session ${s.id}: removed ${s.remoteDir} on the cluster`))
      .catch(err => this.opts.log(`session ${s.id}: ${s.remoteDir} stays on the cluster: ${(err as Error).message}`));
  }

  /* ---------------- the helper, kernels and proxied ports ---------------- */

  /** `notebookPath`: the notebook's path (JPY_SESSION_NAME), its stable kernel's next start goes here too. */
  async startKernel(
    sessionId: string,
    kernelId?: string,
    kernelspec?: string,
    notebookPath?: string
  ): Promise<IKernelConnection> {
    const rec = this.sessions.get(sessionId);
    if (kernelspec && rec?.state === 'running') {
      // (a job a kernel just submitted: its helper may not have listed its kernels yet)
      await this.remoteKernelspecs.listOnce(rec);
    }
    const conn = await this.kernels.start(sessionId, kernelId, kernelspec);
    if (notebookPath) {
      this.notebooks.bind(notebookPath, sessionId); // (its next start, a reopen, goes here too)
    }
    return conn;
  }

  /** The session a stable kernel of `profile` for `notebookPath` starts in; undefined: a new one. */
  kernelSessionFor(profile: string, notebookPath?: string): string | undefined {
    return this.notebooks.choose(profile, notebookPath, this.sessions.values());
  }

  /** The user opened the notebook at `path` on session `id` (its row's Notebook button). */
  bindNotebook(id: string, path: string): void {
    if (!this.sessions.has(id)) {
      throw new NotFoundError(`No session ${id}.`, 'session');
    }
    this.notebooks.bind(path, id);
  }

  adoptKernel(sessionId: string, kernelId: string, localPorts?: Record<string, number>): Promise<IKernelConnection> {
    return this.kernels.adopt(sessionId, kernelId, localPorts);
  }

  kernelStatus(kernelId: string): Promise<IKernelStatus> {
    return this.kernels.status(kernelId);
  }

  signalKernel(kernelId: string, signal: string): Promise<void> {
    return this.kernels.signal(kernelId, signal);
  }

  shutdownKernel(kernelId: string, restart = false): Promise<void> {
    return this.kernels.shutdown(kernelId, restart);
  }

  detachKernel(kernelId: string): void {
    this.kernels.detach(kernelId);
  }

  /**
   * A stream to a port the session with proxy key `key` serves, as its helper reports it
   * right now, and nothing else.
   */
  async openProxiedPort(key: string, port: number): Promise<IOpenedPort> {
    const s = [...this.sessions.values()].find(x => x.proxyKey !== undefined && safeEqual(x.proxyKey, key));
    if (!s || s.state !== 'running' || !s.node) {
      throw Object.assign(new Error('No running session serves this address.'), { status: 404 });
    }
    return this.helper.openServedPort(s, port);
  }

  async shutdown(): Promise<void> {
    this.loginTerminals.closeAll();
    this.drives.dispose();
    this.clusters.shutdown();
    this.poller.stop();
    this.kernels.closeAll();
    await this.saving;
  }
}

/** The walltime left as the scheduler said it now, and the absolute end it means. */
function walltimeLeft(st: IJobStatus): Pick<ISessionRecord, 'timeLeftSeconds' | 'endsAt'> {
  const left = st.timeLeftSeconds;
  return {
    timeLeftSeconds: left,
    endsAt: left === undefined ? undefined : new Date(Date.now() + left * 1000).toISOString()
  };
}

/** Comparing a capability in constant time. */
function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function stripEmpty(r: IResources): IResources {
  return Object.fromEntries(
    Object.entries(r).filter(([, v]) => v !== undefined && v !== '' && !(Array.isArray(v) && v.length === 0))
  ) as IResources;
}
