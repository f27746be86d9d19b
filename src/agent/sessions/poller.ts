/**
 * Status polling per cluster, by the etiquette policy (docs/schedulers/slurm.md): one
 * status query for all of a cluster's jobs, however many sessions; the helper's
 * heartbeat (state.json over SFTP, no scheduler involved) as the cheap liveness signal;
 * back off on failures and slow answers. What a status means is the manager's business
 * (`apply`).
 */
import type { IClusterProfile } from '../../common/api';
import type { IJobStatus, ISchedulerAdapter } from '../schedulers/types';
import type { IClusterLink } from '../cluster/link';
import { HEARTBEAT_STALE_S, onLogin, type IHelperState, type ISessionRecord } from './records';
import { askAbout, idsToAsk } from './worker-jobs';

const POLL_STARTING_MS = 3_000;
const POLL_STEADY_MS = 30_000;
/**
 * While a running session has kernels, its helper's state.json (one SFTP read, no
 * scheduler) is read this often: what a notebook starts (a Dask scheduler and its
 * dashboard) shows in the sidebar within seconds.
 */
const POLL_KERNELS_MS = 5_000;
/** Fast polling lasts this long after a session is queued or starts: a long wait in the queue slows down. */
const POLL_FAST_FOR_MS = 120_000;
/** With every helper's heartbeat fresh, the scheduler itself is asked this often. */
const POLL_SCHEDULER_RECHECK_MS = 300_000;
/** Failures back off exponentially up to this; a slow answer waits this many times its duration. */
const POLL_BACKOFF_MAX_MS = 300_000;
const POLL_SLOW_FACTOR = 10;
/** A status cycle slower than this is logged (it delays every session of the cluster). */
const SLOW_GROUP_LOG_MS = 5_000;

export interface IStatusPollerOptions {
  log: (msg: string) => void;
  /** The cluster's sessions that are not ended. */
  liveSessions: (key: string) => ISessionRecord[];
  sessionProfile: (s: ISessionRecord) => Promise<IClusterProfile>;
  adapter: (p: IClusterProfile) => ISchedulerAdapter;
  link: (profile: IClusterProfile) => Promise<IClusterLink>;
  readHelperState: (s: ISessionRecord, link: IClusterLink) => Promise<IHelperState | undefined>;
  /** What the scheduler said about a session's job (`scheduler`: its title, for messages). */
  apply: (s: ISessionRecord, status: IJobStatus, link: IClusterLink, scheduler: string) => Promise<void>;
  /** What a running session's helper said between scheduler queries (its served ports, its workers). */
  helperSaid: (s: ISessionRecord, state: IHelperState) => void;
  /** What the scheduler said about the session's worker jobs (asked with the sessions' jobs). */
  workerJobsSaid: (s: ISessionRecord, statuses: ReadonlyMap<string, IJobStatus>) => void;
  /** Whether kernels of the session are connected through this agent. */
  hasKernels: (s: ISessionRecord) => boolean;
}

export class StatusPoller {
  private readonly timers = new Map<string, { timer: NodeJS.Timeout; due: number }>();
  /** Consecutive failed status cycles per cluster: back off, never hammer. */
  private readonly failures = new Map<string, number>();
  /** Per cluster and kind of query: when the scheduler was last asked, through which link. */
  private readonly paces = new Map<string, { lastQuery: number; link?: IClusterLink }>();
  private stopped = false;
  /** What the scheduler last said of each job still asked about. */
  private readonly said = new Map<string, string>();

  constructor(private readonly opts: IStatusPollerOptions) {}

  schedule(key: string, delayMs: number): void {
    if (this.stopped) {
      return; // (a cycle still running when the agent stops must not start another)
    }
    const old = this.timers.get(key);
    if (old) {
      clearTimeout(old.timer);
    }
    const timer = setTimeout(() => {
      this.timers.delete(key);
      void this.poll(key);
    }, delayMs);
    this.timers.set(key, { timer, due: Date.now() + delayMs });
  }

  /**
   * A session of the cluster got a kernel: the next cycle comes at the kernels' pace,
   * not the steady one planned before (a job cancelled from outside ends its kernels
   * within seconds, not at the next steady cycle). A sooner cycle stays.
   */
  hurry(key: string): void {
    const planned = this.timers.get(key);
    if (planned && planned.due > Date.now() + POLL_KERNELS_MS) {
      this.schedule(key, POLL_KERNELS_MS);
    }
  }

  /** Ask the scheduler in the next cycle, now (the job changed: more walltime). */
  askNow(key: string): void {
    for (const [k, pace] of this.paces) {
      if (k.startsWith(`${key}\0`)) {
        pace.lastQuery = 0;
      }
    }
    this.schedule(key, 0);
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers.values()) {
      clearTimeout(t.timer);
    }
  }

  /**
   * One cycle for a cluster. While every session runs and its helper's heartbeat is
   * fresh, the scheduler is asked only every POLL_SCHEDULER_RECHECK_MS. Every 3 s only
   * while a session is young in the queue or starting; failures and "unknown" answers
   * (controller down or timing out) back off, and a slow answer stretches the next wait.
   */
  private async poll(key: string): Promise<void> {
    const active = this.opts.liveSessions(key).filter(s => s.jobId);
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
        const profile = await this.opts.sessionProfile(s);
        const g = `${profile.scheduler}\0${(profile.loginSetup ?? []).join('\n')}`;
        const group = groups.get(g) ?? { profile, sessions: [] };
        group.sessions.push(s);
        groups.set(g, group);
      } catch (err) {
        this.opts.log(`status of session ${s.id}: ${(err as Error).message}`);
      }
    }
    for (const [g, { profile, sessions: members }] of groups) {
      const pace = this.pace(`${key}\0${g}`);
      const groupStart = Date.now();
      try {
        const base = this.opts.adapter(profile);
        // an adapter that learns per cluster (Slurm: version, --me, JSON) gets its own instance
        const adapter = base.forCluster?.(key) ?? base;
        const link = await this.opts.link(profile);
        // a new link (reconnected): ask the scheduler once, the jobs may have changed meanwhile
        let needQuery =
          pace.link !== link ||
          Date.now() - pace.lastQuery >= POLL_SCHEDULER_RECHECK_MS ||
          members.some(s => s.state !== 'running');
        for (const s of needQuery ? [] : members) {
          const h = await this.opts.readHelperState(s, link);
          if (!h || h.status !== 'ready' || Date.now() / 1000 - h.heartbeat > HEARTBEAT_STALE_S) {
            needQuery = true; // stopping, failed, gone or silent: what does the scheduler say?
            break;
          }
          this.opts.helperSaid(s, h);
        }
        if (!needQuery) {
          // worker jobs: one never asked about at once, waiting ones at the steady pace
          const due = members.map(s => askAbout(s.workerJobs));
          needQuery = due.includes('new') || (due.includes('waiting') && Date.now() - pace.lastQuery >= POLL_STEADY_MS);
        }
        if (needQuery) {
          // one query: the sessions' jobs and their worker jobs
          const ids = members.flatMap(s => [s.jobId!, ...idsToAsk(s.workerJobs)]);
          const t0 = Date.now();
          const result = await link.exec(onLogin(profile, adapter.statusCommand(ids)), { timeoutMs: 60_000 });
          tookMs = Math.max(tookMs, Date.now() - t0);
          pace.lastQuery = Date.now();
          pace.link = link;
          const statuses = adapter.parseStatus(ids, result);
          this.logChanges(statuses, Date.now() - t0);
          const unknown = [...statuses.values()].filter(st => st.phase === 'unknown');
          if (unknown.length === statuses.size) {
            failed = true; // says nothing about the jobs: keep them as they are, and back off
            this.opts.log(`status of cluster ${key}: ${unknown[0]?.reason ?? 'unknown'}`);
          }
          for (const s of members) {
            const st = statuses.get(s.jobId!);
            if (st) {
              await this.opts.apply(s, st, link, adapter.title);
            }
            this.opts.workerJobsSaid(s, statuses);
          }
        }
      } catch (err) {
        this.opts.log(`status of cluster ${key}: ${(err as Error).message}`);
        failed = true;
      }
      if (Date.now() - groupStart > SLOW_GROUP_LOG_MS) {
        this.opts.log(
          `status of cluster ${key} (${profile.scheduler}, ${members.length} sessions): the cycle took ${Math.round((Date.now() - groupStart) / 1000)} s`
        );
      }
    }
    const failures = failed ? (this.failures.get(key) ?? 0) + 1 : 0;
    this.failures.set(key, failures);
    const live = this.opts.liveSessions(key);
    if (live.length) {
      const now = Date.now();
      const young = live.some(
        s => (s.state === 'queued' || s.state === 'starting') && now - stateSince(s) < POLL_FAST_FOR_MS
      );
      const withKernels = live.some(s => s.state === 'running' && this.opts.hasKernels(s));
      const base = young ? POLL_STARTING_MS : withKernels ? POLL_KERNELS_MS : POLL_STEADY_MS;
      const delay = Math.min(
        POLL_BACKOFF_MAX_MS,
        // a controller that took 4 s to answer is not asked again within 40 s
        Math.max(failed ? base * 2 ** failures : base, tookMs * POLL_SLOW_FACTOR)
      );
      this.schedule(key, delay);
    }
  }

  /** Each job's state as the scheduler says it, logged when it changes (what a failure's log shows). */
  private logChanges(statuses: ReadonlyMap<string, IJobStatus>, tookMs: number): void {
    for (const [id, st] of statuses) {
      const said = st.nativeState ?? st.phase;
      if (this.said.get(id) !== said) {
        this.opts.log(`job ${id}: ${said} (asked in ${tookMs} ms)`);
      }
      if (st.phase === 'ended') {
        this.said.delete(id); // never asked again
      } else {
        this.said.set(id, said);
      }
    }
  }

  private pace(key: string): { lastQuery: number; link?: IClusterLink } {
    let p = this.paces.get(key);
    if (!p) {
      p = { lastQuery: 0 };
      this.paces.set(key, p);
    }
    return p;
  }
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
