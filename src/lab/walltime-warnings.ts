/**
 * Warnings before a session's walltime ends (docs/allocation.md): at the configured
 * minutes before the end (default 30, 10, 2), and when the batch system itself warns
 * (Slurm's end signal), one notification per session and threshold, with the actions that
 * save the work: Continue in a new job, Extend, Save and stop. Time left comes from the
 * session's `endsAt` (the scheduler's answer), so the warnings hold after kernel events.
 * The thresholds come at their times whatever the batch system does (its signal may come
 * up to a minute early or late); its own warning is said only when no threshold was said
 * in the minute before it.
 */
import type { ISession } from '../common/api';
import { walltimeSeconds } from '../common/walltime';
import { timeLeftNow } from './format';

export const DEFAULT_WARNING_MINUTES = [30, 10, 2];
/** The batch system's warning is not said again within this long of one of ours. */
const SIGNAL_QUIET_MS = 60_000;

export interface IWalltimeWarning {
  session: ISession;
  /** Seconds left when warned. */
  left: number;
  /** The batch system said so (its end signal) rather than our clock. */
  bySchedulerSignal: boolean;
}

export class WalltimeWarnings {
  /** Per session: the thresholds (minutes) already warned about, and the scheduler's warning. */
  private readonly warned = new Map<string, Set<number | 'signal'>>();
  /** Per session: when a threshold was last warned about (ms). */
  private readonly lastWarned = new Map<string, number>();

  constructor(
    private readonly warn: (w: IWalltimeWarning) => void,
    private readonly minutes: () => number[] = () => DEFAULT_WARNING_MINUTES
  ) {}

  /**
   * Warn about what is due for `sessions` at `now`: the smallest threshold crossed since
   * the last check (crossing several at once warns once), a scheduler's warning once.
   */
  check(sessions: readonly ISession[], now = Date.now()): void {
    for (const s of sessions) {
      if (s.state !== 'running' || s.continuedBy) {
        continue; // (a continued session's successor is on its way: nothing more to do)
      }
      const left = timeLeftNow(s, now);
      const seen = this.warned.get(s.id) ?? new Set();
      this.warned.set(s.id, seen);
      const due = this.crossed(left, s).filter(m => !seen.has(m));
      if (due.length > 0 && left !== undefined && left > 0) {
        due.forEach(m => seen.add(m));
        this.lastWarned.set(s.id, now);
        this.warn({ session: s, left, bySchedulerSignal: false });
      }
      if (s.endWarnedAt !== undefined && !seen.has('signal')) {
        seen.add('signal');
        if (now - (this.lastWarned.get(s.id) ?? -Infinity) > SIGNAL_QUIET_MS) {
          this.warn({ session: s, left: left ?? 0, bySchedulerSignal: true });
        }
      }
    }
    for (const id of this.warned.keys()) {
      if (!sessions.some(s => s.id === id)) {
        this.warned.delete(id);
        this.lastWarned.delete(id);
      }
    }
  }

  /** Whether `s` is within the largest warning period (the sidebar shows its actions). */
  endsSoon(s: ISession, now = Date.now()): boolean {
    const left = timeLeftNow(s, now);
    const largest = Math.max(0, ...this.valid(s));
    return s.state === 'running' && ((left !== undefined && left <= largest * 60) || s.endWarnedAt !== undefined);
  }

  private crossed(left: number | undefined, s: ISession): number[] {
    return left === undefined ? [] : this.valid(s).filter(m => left <= m * 60);
  }

  /**
   * The thresholds that fit the job: not one as long as its whole walltime (a 30-minute
   * job is not "30 minutes from its end" news at its start).
   */
  private valid(s: ISession): number[] {
    const total = walltimeSeconds(s.resources.walltime);
    return this.minutes().filter(m => Number.isFinite(m) && m > 0 && (total === undefined || m * 60 < total));
  }
}
