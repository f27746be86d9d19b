/** Small formatting helpers shared by the sidebar and dialogs. */
import type { TranslationBundle } from '@jupyterlab/translation';

import type { IJobAccounting, ISession, IUsage } from '../common/api';

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

/** `312 MB`, `1.5 GB` (powers of 1024, as batch systems count memory). */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let n = Math.max(0, bytes);
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n >= 10 || i === 0 ? Math.round(n) : n.toFixed(1)} ${units[i]}`;
}

/** A session that has run this long with most of its CPUs idle gets a suggestion. */
const SUGGEST_AFTER_S = 600;
/** GPUs never busier than this (%) were not needed. */
const GPU_UNUSED_PERCENT = 5;

/**
 * The efficiency card's lines for a session's usage: what it used, and a suggestion when
 * it asked for far more CPUs than it ever used at once.
 */
export function describeUsage(
  u: IUsage,
  trans: TranslationBundle
): { used: string; gpu?: string; suggestion?: string } {
  const elapsed = Math.max(1, u.at - u.since);
  const parts = [
    trans.__('%1 of CPU time', formatDuration(u.cpuSeconds)),
    u.cpus
      ? trans.__('at most %1 of %2 CPUs busy', u.peakCores.toFixed(1), u.cpus)
      : trans.__('at most %1 CPUs busy', u.peakCores.toFixed(1)),
    trans.__('memory %1 (peak %2)', formatBytes(u.rssBytes), formatBytes(u.peakRssBytes))
  ];
  if (u.cpus) {
    parts.push(trans.__('%1% of the CPU time asked for', Math.round((100 * u.cpuSeconds) / (u.cpus * elapsed))));
  }
  const usedAtMost = Math.max(1, Math.ceil(u.peakCores));
  const suggestions: string[] = [];
  if (u.cpus && u.cpus >= 2 && elapsed >= SUGGEST_AFTER_S && usedAtMost <= u.cpus / 2) {
    suggestions.push(trans.__('Asked for %1 CPUs, used at most %2: fewer would do next time.', u.cpus, usedAtMost));
  }
  const g = u.gpu;
  let gpu: string | undefined;
  if (g && g.count > 0) {
    gpu = trans._n(
      'GPU: %2',
      '%1 GPUs: %2',
      g.count,
      [
        trans.__('at most %1% busy (mean %2%)', Math.round(g.peakPercent), Math.round(g.meanPercent)),
        trans.__('memory peak %1 of %2', formatBytes(g.memPeakBytes), formatBytes(g.memTotalBytes))
      ].join(' · ')
    );
    if (elapsed >= SUGGEST_AFTER_S && g.peakPercent < GPU_UNUSED_PERCENT) {
      suggestions.push(trans.__('The GPUs were never busy: a job without GPUs would do next time.'));
    }
  }
  return {
    used: trans.__('Used: %1', parts.join(' · ')),
    ...(gpu && { gpu }),
    ...(suggestions.length && { suggestion: suggestions.join(' ') })
  };
}

/**
 * The efficiency card's line for an ended job as its batch system accounted it
 * (`sacct`, `qstat`, `bjobs`): only the figures it gave.
 */
export function describeAccounting(a: IJobAccounting, trans: TranslationBundle): string {
  const parts: string[] = [];
  if (a.cpuSeconds !== undefined) {
    parts.push(trans.__('%1 of CPU time', formatDuration(Math.round(a.cpuSeconds))));
  }
  if (a.maxRssBytes !== undefined) {
    parts.push(trans.__('peak memory %1', formatBytes(a.maxRssBytes)));
  }
  if (a.elapsedSeconds !== undefined) {
    parts.push(trans.__('ran %1', formatDuration(Math.round(a.elapsedSeconds))));
  }
  if (a.state) {
    parts.push(a.exitCode ? trans.__('%1 (exit %2)', a.state, a.exitCode) : a.state);
  }
  return trans.__("The batch system's accounting (%1): %2", a.source, parts.join(' · '));
}
