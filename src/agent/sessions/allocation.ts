/**
 * The allocation's hours (docs/allocation.md): asking the batch system for more walltime.
 * Tried once, where the batch system has a user command for it; its answer (usually a
 * refusal: most sites let only operators raise a running job's limit) is shown as it is.
 */
import type { IClusterProfile, IExtendAnswer, IIdleState, ISession } from '../../common/api';
import type { IClusterLink } from '../cluster/link';
import { formatHms } from '../schedulers/pbs';
import { ConflictError, type ISchedulerAdapter } from '../schedulers/types';
import { parseWalltime } from '../schedulers/validate';
import { onLogin, type IHelperState, type ISessionRecord } from './records';

export interface IExtend {
  s: ISessionRecord;
  profile: IClusterProfile;
  adapter: ISchedulerAdapter;
  link: IClusterLink;
  minutes: number;
}

/** Ask once for `minutes` more; never retried, never pretended. */
export async function requestExtension(a: IExtend): Promise<IExtendAnswer> {
  const { s, profile, adapter, link, minutes } = a;
  if (!adapter.extendCommand) {
    throw new ConflictError(`${adapter.title} has no command for users to extend a job's walltime.`);
  }
  if (!s.jobId || s.state === 'ended' || s.state === 'submitting') {
    throw new ConflictError(`Session ${s.id} is ${s.state}: there is no job to extend.`);
  }
  if (!s.resources.walltime) {
    throw new ConflictError(
      `Session ${s.id} asked for no walltime of its own (the queue's default applies): there is nothing to extend.`
    );
  }
  const walltime = formatHms(parseWalltime(s.resources.walltime) + minutes * 60);
  const command = adapter.extendCommand(s.jobId, { ...s.resources, walltime }, minutes * 60);
  const r = await link.exec(onLogin(profile, command), { timeoutMs: 60_000 });
  const said = `${r.stdout}\n${r.stderr}`.trim();
  const granted = r.code === 0;
  return {
    granted,
    answer: said || (granted ? `${adapter.title} accepted it.` : `${adapter.title} refused (exit ${r.code}).`),
    ...(granted && { walltime })
  };
}

/** The helper's idle reclaim state as the frontend sees it (ms, minutes). */
export function idleView(h: IHelperState | undefined): IIdleState | undefined {
  const i = h?.idle;
  if (!i || typeof i.timeoutSeconds !== 'number' || typeof i.lastUse !== 'number') {
    return undefined;
  }
  return {
    timeoutMinutes: Math.round(i.timeoutSeconds / 60),
    lastUseAt: i.lastUse * 1000,
    lastUseWhy: String(i.lastUseWhy ?? ''),
    ...(typeof i.reclaimAt === 'number' && { reclaimAt: i.reclaimAt * 1000 }),
    ...(typeof i.keptAt === 'number' && { keptAt: i.keptAt * 1000 })
  };
}

/** The helper ended the session for being idle: for how long, what that released. */
export function endedIdle(h: IHelperState | undefined): ISession['endedIdle'] {
  const e = h?.idleEnded;
  if (!e || typeof e.idleSeconds !== 'number') {
    return undefined;
  }
  return {
    idleMinutes: Math.round(e.idleSeconds / 60),
    ...(typeof e.coreHoursReleased === 'number' && { coreHoursReleased: e.coreHoursReleased })
  };
}

/** The ended session's reason: "idle for 60 min, released 12.5 core-hours". */
export function idleReason(idle: NonNullable<ISession['endedIdle']>): string {
  const released = idle.coreHoursReleased !== undefined ? `, released ${idle.coreHoursReleased} core-hours` : '';
  return `idle for ${idle.idleMinutes} min${released}`;
}
