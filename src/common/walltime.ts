/**
 * A walltime as profiles and Slurm write it, in seconds: `minutes`, `MM:SS`, `HH:MM:SS`,
 * `D-HH`, `D-HH:MM` or `D-HH:MM:SS`. One parser for the agent (which refuses what this
 * cannot read, schedulers/validate.ts) and the page (warnings that fit the job's length).
 */
export function walltimeSeconds(value: unknown): number | undefined {
  if (typeof value !== 'string' && typeof value !== 'number') {
    return undefined;
  }
  const s = String(value).trim();
  let m: RegExpExecArray | null;
  let secs: number | undefined;
  let bad = false;
  const two = (x: string | undefined, max: number): number => {
    const n = x === undefined ? 0 : Number(x);
    bad = bad || n >= max;
    return n;
  };
  if ((m = /^(\d{1,7})$/.exec(s))) {
    secs = Number(m[1]) * 60;
  } else if ((m = /^(\d{1,7}):(\d{1,2})$/.exec(s))) {
    secs = Number(m[1]) * 60 + two(m[2], 60);
  } else if ((m = /^(\d{1,5}):(\d{1,2}):(\d{1,2})$/.exec(s))) {
    secs = Number(m[1]) * 3600 + two(m[2], 60) * 60 + two(m[3], 60);
  } else if ((m = /^(\d{1,4})-(\d{1,2})(?::(\d{1,2})(?::(\d{1,2}))?)?$/.exec(s))) {
    secs = Number(m[1]) * 86400 + two(m[2], 24) * 3600 + two(m[3], 60) * 60 + two(m[4], 60);
  }
  return bad || secs === undefined || secs <= 0 ? undefined : secs;
}
