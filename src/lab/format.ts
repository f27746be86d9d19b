/** Small formatting helpers shared by the sidebar and dialogs. */
import type { ISession } from '../common/api';

export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) {
    return `${d}d ${h}h`;
  }
  if (h > 0) {
    return `${h}h ${String(m).padStart(2, '0')}m`;
  }
  return `${m}m ${String(s % 60).padStart(2, '0')}s`;
}

/**
 * Walltime left now, from the job's absolute end (`endsAt`); a session saved by an earlier
 * release has only the seconds left as of `updatedAt`.
 */
export function timeLeftNow(s: ISession, now = Date.now()): number | undefined {
  if (s.endsAt !== undefined) {
    return (Date.parse(s.endsAt) - now) / 1000;
  }
  if (s.timeLeftSeconds === undefined) {
    return undefined;
  }
  return s.timeLeftSeconds - (now - Date.parse(s.updatedAt)) / 1000;
}

/** A form's error line (why the last attempt was refused), read out by screen readers. */
export function appendError(form: HTMLElement, error: string | undefined): void {
  if (!error) {
    return;
  }
  const err = document.createElement('p');
  err.className = 'jp-RemoteCluster-error';
  err.setAttribute('role', 'alert');
  err.textContent = error;
  form.appendChild(err);
}
