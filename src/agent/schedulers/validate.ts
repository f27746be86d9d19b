/**
 * Validation shared by every scheduler adapter: a value that reaches a job script or a
 * command is checked here first, and a refusal names the field and the rule.
 */
import type { IResources } from '../../common/api';
import { walltimeSeconds } from '../../common/walltime';
import { shQuote } from './shell';
import { InvalidRequestError, type IJobSpec, type IJobStatus } from './types';

export const NAME_RE = /^[A-Za-z0-9._-]{1,64}$/;
/** Absolute paths without spaces or shell metacharacters (they go into directives). */
export const PATH_RE = /^\/[A-Za-z0-9._/+@%,:=~-]*$/;

export function show(value: unknown): string {
  let s: string;
  try {
    s = typeof value === 'string' ? JSON.stringify(value) : (JSON.stringify(value) ?? String(value));
  } catch {
    s = String(value);
  }
  return s.length > 80 ? `${s.slice(0, 77)}..."` : s;
}

export function invalid(field: string, value: unknown, rule: string): InvalidRequestError {
  return new InvalidRequestError(`Invalid ${field} ${show(value)}: ${rule}.`, field);
}

export function isSet(v: unknown): boolean {
  return v !== undefined && v !== null && v !== '';
}

/** An integer field: a number, or a string of digits (form inputs). */
export function intField(field: string, v: unknown, min: number, max: number): number {
  const n = typeof v === 'string' && /^\d{1,9}$/.test(v.trim()) ? Number(v.trim()) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
    throw invalid(field, v, `use a whole number from ${min} to ${max}`);
  }
  return n;
}

/** Compute nodes of the job: `nodes`, 1 when unset. */
export function nodesField(r: IResources): number {
  return isSet(r.nodes) ? intField('nodes', r.nodes, 1, 1024) : 1;
}

/** For batch systems that run a job on one machine: refuses `nodes` > 1 by name. */
export function oneNodeOnly(r: IResources, system: string): void {
  if (nodesField(r) > 1) {
    throw invalid(
      'nodes',
      r.nodes,
      `${system} runs a job on one machine: sessions on several nodes are not supported by this product for ${system}; leave nodes at 1`
    );
  }
}

export function nameField(field: string, v: unknown): string {
  if (typeof v !== 'string' || !NAME_RE.test(v)) {
    throw invalid(field, v, "use 1-64 letters, digits, '.', '_' or '-'");
  }
  return v;
}

export function pathField(field: string, v: unknown): string {
  if (typeof v !== 'string' || !PATH_RE.test(v) || v.length > 4096) {
    throw invalid(field, v, 'must be an absolute path of letters, digits and ._/+@%,:=~- (no spaces)');
  }
  return v;
}

/**
 * The profile's setup lines, checked for a job script: shell lines, none of which may
 * carry the scheduler's directive prefix (`directive`), since those would bypass this
 * validation; `whereInstead` tells the user what to use.
 */
export function setupLines(value: unknown, directive: RegExp, whereInstead: string): string[] {
  const setup = value ?? [];
  if (!Array.isArray(setup) || !setup.every(l => typeof l === 'string' && !l.includes('\0'))) {
    throw invalid('setup', setup, 'give a list of shell lines');
  }
  const sneaky = (setup as string[]).find(l => directive.test(l));
  if (sneaky !== undefined) {
    throw invalid('setup', sneaky, whereInstead);
  }
  return setup as string[];
}

/** The command a job script runs: one non-empty line. */
export function commandLine(value: unknown): string {
  if (typeof value !== 'string' || !value.trim() || /[\0\r\n]/.test(value)) {
    throw invalid('command', value, 'must be one non-empty line');
  }
  return value;
}

/**
 * Extra directives: a list of strings, each matching the scheduler's directive syntax
 * `re` (else refused with `rule`); `check` refuses the reserved ones and returns the line.
 */
export function eachDirective<T>(
  value: unknown,
  example: string,
  re: RegExp,
  rule: string,
  check: (match: RegExpExecArray, directive: string) => T
): T[] {
  if (value === undefined || value === null) {
    return [];
  }
  if (!Array.isArray(value)) {
    throw invalid('extraDirectives', value, example);
  }
  return value.map(d => {
    const m = typeof d === 'string' ? re.exec(d.trim()) : null;
    if (!m) {
      throw invalid('extraDirectives', d, rule);
    }
    return check(m, d as string);
  });
}

/** What an `-opt [value]` batch system (PBS, Grid Engine) refuses in extra directives. */
export interface IOptionRules {
  /** options the product sets itself or a session cannot use: why */
  reserved: Record<string, string>;
  /** options a profile field covers: that field */
  fields: Record<string, string>;
  /** options whose value is a resource list (`-l a=1,b=2`) */
  listOptions: string[];
  /** resource names a profile field covers: that field */
  resources: Record<string, string>;
  /** the resource name of one list item (`mem=4G` → `mem`) */
  resourceName: (item: string) => string;
}

/** Refuses `-opt value` (as written: `directive`) if the rules say so; else returns it normalized. */
export function checkOption(rules: IOptionRules, directive: string, opt: string, value: string | undefined): string {
  if (rules.reserved[opt]) {
    throw invalid('extraDirectives', directive, `-${opt} is not allowed: ${rules.reserved[opt]}`);
  }
  if (rules.fields[opt]) {
    throw invalid('extraDirectives', directive, `use the ${rules.fields[opt]} field instead`);
  }
  if (rules.listOptions.includes(opt) && value) {
    for (const item of value.split(',')) {
      const key = rules.resourceName(item);
      if (rules.resources[key]) {
        throw invalid('extraDirectives', directive, `use the ${rules.resources[key]} field instead of -l ${key}`);
      }
    }
  }
  return value ? `-${opt} ${value}` : `-${opt}`;
}

/** The job's name and files, checked: they go into directives verbatim. */
export function jobFiles(spec: IJobSpec): { name: string; stdout: string; stderr: string; workdir: string } {
  return {
    name: nameField('name', spec.name),
    stdout: pathField('stdoutPath', spec.stdoutPath),
    stderr: pathField('stderrPath', spec.stderrPath),
    workdir: pathField('workdir', spec.workdir)
  };
}

/** Builders for parseStatus: one status for every asked id, or `unknown` for all of them. */
export function statusOf(jobIds: string[]): {
  all: (make: (id: string) => IJobStatus) => Map<string, IJobStatus>;
  unknown: (reason: string) => Map<string, IJobStatus>;
} {
  const out = new Map<string, IJobStatus>();
  const all = (make: (id: string) => IJobStatus): Map<string, IJobStatus> => {
    for (const id of jobIds) {
      out.set(id, make(id));
    }
    return out;
  };
  return { all, unknown: reason => all(jobId => ({ jobId, phase: 'unknown', nativeState: '', reason })) };
}

/**
 * The job-script lines for the profile's setup: each line runs in the job's own shell (so
 * exports, `.` and `cd` persist), and the job stops at the first line that fails, saying
 * which on stderr (job.err, shown as the session's end reason). Empty: no lines.
 */
/** How a job script starts the lines that say why it stopped (ending.ts reads them). */
export const FAILURE_MARKER = 'jupyterlab-remote-cluster:';

export function setupBlock(setup: string[]): string[] {
  if (!setup.length) {
    return [];
  }
  const lines = ['# environment setup from the profile: the job stops at the first line that fails'];
  setup.forEach((l, i) => {
    if (!l.trim() || l.trim().startsWith('#')) {
      lines.push(l); // `{ }` around nothing is a syntax error
      return;
    }
    lines.push(
      `{ ${l}`,
      `} || { printf '${FAILURE_MARKER} setup line ${i + 1} failed (exit code %s): %s\\n' "$?" ${shQuote(l.trim())} >&2; exit 1; }`
    );
  });
  lines.push('');
  return lines;
}

/**
 * Before the helper runs: its Python must be there, or the job says so in one line the
 * agent turns into the session's reason (ending.ts), instead of a shell's "exec: not found".
 */
export function pythonCheck(python: string | undefined): string[] {
  if (!python) {
    return [];
  }
  const q = shQuote(python);
  return [
    '# the remote Python, looked for before anything runs it',
    `command -v ${q} >/dev/null 2>&1 || { printf '${FAILURE_MARKER} the remote Python %s was not found on %s\\n' ${q} "$(hostname)" >&2; exit 127; }`,
    ''
  ];
}

/** The first `n` non-empty lines of a command's output, on one line (for messages). */
export function firstLines(text: string, n = 2): string {
  return text
    .split('\n')
    .map(l => l.trim())
    .filter(Boolean)
    .slice(0, n)
    .join(' | ');
}

/** Which resource field a scheduler's refusal is about: the first of `words` found in `text`. */
export function fieldNamedIn(text: string, words: [RegExp, string][]): string | undefined {
  return words.find(([re]) => re.test(text))?.[1];
}

const MEMORY_RE = /^(\d{1,12})([KMGT]?)$/;

/** A memory value as the profile writes it (`4G`, `500M`, `500` = megabytes): amount and unit. */
export function memoryAmount(v: unknown, field = 'memory'): { n: number; unit: '' | 'K' | 'M' | 'G' | 'T' } {
  const m = typeof v === 'string' ? MEMORY_RE.exec(v.trim()) : null;
  if (!m || Number(m[1]) === 0) {
    throw invalid(field, v, 'use a number with an optional unit K, M, G or T, e.g. 4G or 500M (no unit: megabytes)');
  }
  return { n: Number(m[1]), unit: m[2] as '' | 'K' | 'M' | 'G' | 'T' };
}

/**
 * Seconds in a Slurm walltime: `minutes`, `MM:SS`, `HH:MM:SS`, `D-HH`, `D-HH:MM` or
 * `D-HH:MM:SS`. Throws InvalidRequestError (field `walltime`) for anything else.
 */
export function parseWalltime(value: unknown): number {
  const secs = walltimeSeconds(value);
  if (secs === undefined) {
    throw invalid('walltime', value, 'use minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS, more than zero');
  }
  return secs;
}

/**
 * Seconds before the walltime's end at which the batch system warns the job (SIGUSR1,
 * handled by the helper): 5 minutes, a quarter of a short walltime (at least 30 s).
 */
export function endWarningLead(walltime: unknown): number {
  const w = isSet(walltime) ? parseWalltime(walltime) : Infinity;
  return Math.max(30, Math.min(300, Math.floor(w / 4)));
}
