/**
 * Validation of cluster profiles as read from the settings file. The Settings Editor
 * validates against schema/profiles.json too; the agent cannot trust that (the file
 * can be edited by hand), so it checks again and says precisely what is wrong.
 */
import {
  CONNECTIVITY_MODES,
  SCHEDULERS,
  type ConnectivityMode,
  type ICandidate,
  type IClusterProfile,
  type IResources,
  type ISshTarget,
  type SchedulerName
} from './api';
import { DEFAULT_REMOTE_KERNEL } from './routes';

export const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const HOST_RE = /^[A-Za-z0-9._%-]+$/;
const USER_RE = /^[a-z_][a-z0-9._-]{0,31}$/;
const JUMP_RE = /^([a-z_][a-z0-9._-]*@)?[A-Za-z0-9._%-]+(:[0-9]{1,5})?$/;

export class ProfileError extends Error {}

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function str(o: Obj, key: string, where: string, re?: RegExp, required = false): string | undefined {
  const v = o[key];
  if (v === undefined || v === '') {
    if (required) {
      throw new ProfileError(`${where}: "${key}" is required.`);
    }
    return undefined;
  }
  if (typeof v !== 'string') {
    throw new ProfileError(`${where}: "${key}" must be a string.`);
  }
  if (re && !re.test(v)) {
    throw new ProfileError(`${where}: "${key}" has an invalid value ${JSON.stringify(v)}.`);
  }
  return v;
}

function int(o: Obj, key: string, where: string, min: number, max: number): number | undefined {
  const v = o[key];
  if (v === undefined) {
    return undefined;
  }
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new ProfileError(`${where}: "${key}" must be a whole number from ${min} to ${max}.`);
  }
  return v;
}

function strList(o: Obj, key: string, where: string, re?: RegExp): string[] | undefined {
  const v = o[key];
  if (v === undefined) {
    return undefined;
  }
  if (!Array.isArray(v) || v.some(x => typeof x !== 'string')) {
    throw new ProfileError(`${where}: "${key}" must be a list of strings.`);
  }
  for (const x of v as string[]) {
    if (re && !re.test(x)) {
      throw new ProfileError(`${where}: "${key}" has an invalid entry ${JSON.stringify(x)}.`);
    }
    if (/[\n\r\0]/.test(x)) {
      throw new ProfileError(`${where}: "${key}" entries must be single lines.`);
    }
  }
  return v as string[];
}

/*
 * The fields of a profile as this parser reads them. schema/profiles.json (what the Settings
 * Editor shows and checks) must list the same ones, require only those without a default
 * here, and give the same defaults: profile.spec.ts checks it.
 */
export const PROFILE_FIELDS: readonly string[] = [
  'name',
  'title',
  'ssh',
  'scheduler',
  'resources',
  'setup',
  'container',
  'loginSetup',
  'python',
  'dask',
  'connectivity',
  'reverseHost',
  'workdir',
  'candidates',
  'idleTimeout',
  'defaultKernel'
];
export const SSH_FIELDS: readonly string[] = [
  'host',
  'user',
  'port',
  'identityFiles',
  'certificateFiles',
  'jumpHosts',
  'configFile',
  'knownHostsFiles'
];
export const RESOURCE_FIELDS: readonly string[] = [
  'partition',
  'account',
  'walltime',
  'nodes',
  'cpus',
  'memory',
  'memoryPerCpu',
  'gpus',
  'qos',
  'constraint',
  'reservation',
  'parallelEnvironment',
  'extraDirectives'
];
/** What a profile gets when it leaves a field out. */
export const PROFILE_DEFAULTS = {
  scheduler: 'slurm',
  python: 'python3',
  dask: true,
  connectivity: 'via-login'
} as const;

function onlyKeys(o: Obj, allowed: readonly string[], where: string): void {
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) {
      throw new ProfileError(`${where}: unknown field "${k}".`);
    }
  }
}

export function parseSshTarget(raw: unknown, where: string): ISshTarget {
  if (!isObj(raw)) {
    throw new ProfileError(`${where}: "ssh" must be an object with at least "host".`);
  }
  onlyKeys(raw, SSH_FIELDS, `${where}.ssh`);
  const w = `${where}.ssh`;
  const t: ISshTarget = { host: str(raw, 'host', w, HOST_RE, true)! };
  const user = str(raw, 'user', w, USER_RE);
  const port = int(raw, 'port', w, 1, 65535);
  const identityFiles = strList(raw, 'identityFiles', w);
  const certificateFiles = strList(raw, 'certificateFiles', w);
  const jumpHosts = strList(raw, 'jumpHosts', w, JUMP_RE);
  const configFile = str(raw, 'configFile', w);
  const knownHostsFiles = strList(raw, 'knownHostsFiles', w);
  return {
    ...t,
    ...(user !== undefined && { user }),
    ...(port !== undefined && { port }),
    ...(identityFiles && { identityFiles }),
    ...(certificateFiles && { certificateFiles }),
    ...(jumpHosts && { jumpHosts }),
    ...(configFile && { configFile }),
    ...(knownHostsFiles && { knownHostsFiles })
  };
}

/** Shape check of resources; the scheduler adapter checks the values it will use. */
export function parseResources(raw: unknown, where: string): IResources {
  if (raw === undefined) {
    return {};
  }
  if (!isObj(raw)) {
    throw new ProfileError(`${where}: "resources" must be an object.`);
  }
  onlyKeys(raw, RESOURCE_FIELDS, where);
  const r: IResources = {};
  for (const k of [
    'partition',
    'account',
    'walltime',
    'memory',
    'memoryPerCpu',
    'qos',
    'constraint',
    'reservation',
    'parallelEnvironment'
  ] as const) {
    const v = str(raw, k, where);
    if (v !== undefined) {
      r[k] = v;
    }
  }
  const nodes = int(raw, 'nodes', where, 1, 1024);
  const cpus = int(raw, 'cpus', where, 1, 4096);
  const gpus = int(raw, 'gpus', where, 0, 64);
  const extra = strList(raw, 'extraDirectives', where);
  return {
    ...r,
    ...(nodes !== undefined && { nodes }),
    ...(cpus !== undefined && { cpus }),
    ...(gpus !== undefined && { gpus }),
    ...(extra && { extraDirectives: extra })
  };
}

/**
 * What a submission may change of the profile's resources: the submit dialog's fields.
 * Raw scheduler directives (`extraDirectives`, which can change the job's environment,
 * e.g. `--export=PYTHONPATH=...`) come only from the profile file the user edited, never
 * from a request.
 */
export const OVERRIDABLE_RESOURCES = [
  'partition',
  'account',
  'walltime',
  'nodes',
  'cpus',
  'memory',
  'gpus',
  'qos',
  'constraint',
  'reservation',
  'memoryPerCpu',
  'parallelEnvironment'
] as const;

/** The resources of a submit request, checked against OVERRIDABLE_RESOURCES. */
export function parseResourceOverrides(raw: unknown): IResources {
  if (raw === undefined || raw === null) {
    return {};
  }
  if (!isObj(raw)) {
    throw new ProfileError('"resources" must be an object.');
  }
  for (const k of Object.keys(raw)) {
    if (!(OVERRIDABLE_RESOURCES as readonly string[]).includes(k)) {
      throw new ProfileError(
        k === 'extraDirectives'
          ? 'Extra directives can only be set in the profile (Settings Editor), not when submitting.'
          : `"resources.${k}" cannot be set when submitting.`
      );
    }
  }
  return parseResources(raw, 'resources');
}

export function parseProfile(raw: unknown, index: number): IClusterProfile {
  const where0 = `profiles[${index}]`;
  if (!isObj(raw)) {
    throw new ProfileError(`${where0} must be an object.`);
  }
  const name = str(raw, 'name', where0, NAME_RE, true)!;
  const where = `profile "${name}"`;
  onlyKeys(raw, PROFILE_FIELDS, where);
  const scheduler = (str(raw, 'scheduler', where, undefined, false) ?? PROFILE_DEFAULTS.scheduler) as SchedulerName;
  if (!SCHEDULERS.includes(scheduler)) {
    throw new ProfileError(
      `${where}: scheduler "${scheduler}" is not supported (supported: ${SCHEDULERS.join(', ')}).`
    );
  }
  const connectivity = (str(raw, 'connectivity', where) ?? PROFILE_DEFAULTS.connectivity) as ConnectivityMode;
  if (!CONNECTIVITY_MODES.includes(connectivity)) {
    throw new ProfileError(
      `${where}: connectivity "${connectivity}" is not supported (supported: ${CONNECTIVITY_MODES.join(', ')}).`
    );
  }
  const reverseHost = str(raw, 'reverseHost', where, /^[A-Za-z0-9][A-Za-z0-9._-]*$/);
  // A command prefix, run by the job's shell: one line, no shell control characters.
  const container = str(raw, 'container', where, /^[^\n\r\0;&|`$<>]+$/);
  const loginSetup = strList(raw, 'loginSetup', where);
  const python = str(raw, 'python', where, /^[^\s'"`$;|&<>\\]+$/) ?? PROFILE_DEFAULTS.python;
  const dask = raw['dask'];
  if (dask !== undefined && typeof dask !== 'boolean') {
    throw new ProfileError(`${where}: "dask" must be true or false.`);
  }
  const workdir = str(raw, 'workdir', where, /^[^\n\r\0'"`$]+$/);
  const candidates = parseCandidates(raw['candidates'], where);
  const idleTimeout = raw['idleTimeout'];
  if (
    idleTimeout !== undefined &&
    (typeof idleTimeout !== 'number' ||
      !Number.isInteger(idleTimeout) ||
      idleTimeout < 0 ||
      idleTimeout > MAX_IDLE_MINUTES)
  ) {
    throw new ProfileError(
      `${where}: "idleTimeout" must be a whole number of minutes from 0 (never) to ${MAX_IDLE_MINUTES}.`
    );
  }
  // A kernelspec of the job environment by its name there (`jupyter kernelspec list`).
  const defaultKernel = str(raw, 'defaultKernel', where, /^[A-Za-z0-9._-]{1,64}$/);
  const title = str(raw, 'title', where);
  return {
    name,
    ...(title && { title }),
    ssh: parseSshTarget(raw['ssh'], where),
    scheduler,
    resources: parseResources(raw['resources'], `${where}.resources`),
    setup: strList(raw, 'setup', where) ?? [],
    ...(container && { container: container.trim() }),
    ...(loginSetup && loginSetup.length > 0 && { loginSetup }),
    python,
    dask: dask === undefined ? PROFILE_DEFAULTS.dask : dask,
    connectivity,
    ...(reverseHost && { reverseHost }),
    ...(workdir && { workdir }),
    ...(candidates && { candidates }),
    ...(idleTimeout !== undefined && { idleTimeout: idleTimeout as number }),
    ...(defaultKernel && defaultKernel !== DEFAULT_REMOTE_KERNEL && { defaultKernel })
  };
}

/** A week: an idle timeout beyond any walltime is a typo. */
export const MAX_IDLE_MINUTES = 7 * 24 * 60;

/** At most this many candidates: each is one probe of the batch system when the dialog opens. */
export const MAX_CANDIDATES = 6;

/** `candidates`: partitions (queues) and walltimes to choose the earliest start from. */
function parseCandidates(raw: unknown, where: string): ICandidate[] | undefined {
  if (raw === undefined) {
    return undefined;
  }
  if (!Array.isArray(raw) || raw.length === 0 || raw.length > MAX_CANDIDATES) {
    throw new ProfileError(`${where}: "candidates" must be a list of 1 to ${MAX_CANDIDATES} partitions.`);
  }
  return raw.map((c, i) => {
    if (!isObj(c)) {
      throw new ProfileError(`${where}: candidates[${i}] must be an object.`);
    }
    onlyKeys(c, ['partition', 'walltime'], `${where}: candidates[${i}]`);
    const partition = str(c, 'partition', `${where}: candidates[${i}]`, /^[A-Za-z0-9._-]{1,64}$/, true)!;
    const walltime = str(c, 'walltime', `${where}: candidates[${i}]`, /^[0-9:-]{1,16}$/);
    return { partition, ...(walltime && { walltime }) };
  });
}

/** All valid profiles, and one message per invalid one (which is left out). */
export function parseProfiles(settings: unknown): { profiles: IClusterProfile[]; errors: string[] } {
  const profiles: IClusterProfile[] = [];
  const errors: string[] = [];
  const list = isObj(settings) ? settings['profiles'] : undefined;
  if (list === undefined) {
    return { profiles, errors };
  }
  if (!Array.isArray(list)) {
    return { profiles, errors: ['"profiles" must be a list.'] };
  }
  const seen = new Set<string>();
  list.forEach((raw, i) => {
    try {
      const p = parseProfile(raw, i);
      if (seen.has(p.name)) {
        throw new ProfileError(`profile "${p.name}" is defined twice; names must be unique.`);
      }
      seen.add(p.name);
      profiles.push(p);
    } catch (e) {
      errors.push((e as Error).message);
    }
  });
  return { profiles, errors };
}
