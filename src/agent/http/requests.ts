/**
 * The bodies of the agent's API requests, typed and checked in one place: a route gets a
 * value of its request type or the client gets a 400 naming what is wrong. The shapes are
 * the contract with the frontend (src/lab) and the provisioner (provisioner.py).
 */
import type { IPromptAnswer, IResources } from '../../common/api';
import { parseResourceOverrides } from '../../common/profile';
import { InvalidRequestError } from '../schedulers/types';
import { REMOTE_SPEC_NAME } from '../sessions/remote-kernelspecs';

/** POST api/v1/sessions */
export interface ISubmitRequest {
  profile: string;
  resources: IResources;
  /** `kernel`: started by a profile kernelspec, cancelled when its kernel shuts down. */
  owner: 'user' | 'kernel';
}

const CHANNEL_PORTS = ['shell_port', 'iopub_port', 'stdin_port', 'control_port', 'hb_port'] as const;

/** POST api/v1/sessions/<id>/kernels: start one, or take a running one back. */
export type KernelRequest =
  | { action: 'start'; kernelId?: string; kernelspec?: string; notebookPath?: string }
  /** The agent restarted: the running kernel back on the client's local ports. */
  | { action: 'adopt'; kernelId: string; ports: Record<(typeof CHANNEL_PORTS)[number], number> }
  /** The Jupyter server that started it is gone: a new one connects to the same kernel. */
  | { action: 'attach'; kernelId: string };

/** POST api/v1/sessions/<id>/workers: elastic Dask workers, one batch job each. */
export interface IAddWorkersRequest {
  count: number;
}

/** At most this many worker jobs per request: a typo must not flood the queue. */
export const MAX_WORKER_JOBS = 32;

/** POST api/v1/sessions/<id>/extend: ask the batch system for more walltime, once. */
export interface IExtendRequest {
  minutes: number;
}

/** A week: more is a typo, and no site grants it. */
export const MAX_EXTEND_MINUTES = 7 * 24 * 60;

/** POST api/v1/sessions/<id>/terminals: a new shell in the job, of this size. */
export interface ITerminalRequest {
  rows?: number;
  cols?: number;
}

/** POST api/v1/kernels/<id>/signal */
export interface ISignalRequest {
  signal: 'SIGINT' | 'SIGTERM' | 'SIGKILL';
}

function invalid(message: string, field: string): InvalidRequestError {
  return new InvalidRequestError(message, field);
}

function object(body: unknown): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw invalid('The request body must be a JSON object.', 'body');
  }
  return body as Record<string, unknown>;
}

export function parseSubmitRequest(body: unknown): ISubmitRequest {
  const b = object(body);
  if (typeof b.profile !== 'string' || !b.profile) {
    throw invalid('Choose a cluster profile ("profile").', 'profile');
  }
  let resources: IResources;
  try {
    resources = parseResourceOverrides(b.resources);
  } catch (err) {
    throw invalid((err as Error).message, 'resources');
  }
  return { profile: b.profile, resources, owner: b.owner === 'kernel' ? 'kernel' : 'user' };
}

export function parseAddWorkersRequest(body: unknown): IAddWorkersRequest {
  const b = object(body);
  const count = b.count;
  if (typeof count !== 'number' || !Number.isInteger(count) || count < 1 || count > MAX_WORKER_JOBS) {
    throw invalid(`"count" must be a whole number of worker jobs from 1 to ${MAX_WORKER_JOBS}.`, 'count');
  }
  return { count };
}

export function parseExtendRequest(body: unknown): IExtendRequest {
  const minutes = object(body).minutes;
  if (typeof minutes !== 'number' || !Number.isInteger(minutes) || minutes < 1 || minutes > MAX_EXTEND_MINUTES) {
    throw invalid(`"minutes" must be a whole number of minutes from 1 to ${MAX_EXTEND_MINUTES}.`, 'minutes');
  }
  return { minutes };
}

/** POST api/v1/sessions/<id>/activity: the user is active with the session (`keep`: Keep running). */
export function parseActivityRequest(body: unknown): { keep: boolean } {
  const keep = object(body).keep;
  if (keep !== undefined && typeof keep !== 'boolean') {
    throw invalid('"keep" must be true or false.', 'keep');
  }
  return { keep: keep === true };
}

/** POST api/v1/sessions/<id>/web-ports: a TCP port the user's own servers may hold. */
export function parseWebPortRequest(body: unknown): { port: number } {
  const port = object(body).port;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1024 || port > 65535) {
    throw invalid('"port" must be a whole number from 1024 to 65535 (lower ports are the system\'s).', 'port');
  }
  return { port };
}

/**
 * POST api/v1/sessions/<id>/relaunch: `continue` links the new session to this one;
 * `resources` (as a submission's) replace the old session's, else they are the same.
 */
export function parseRelaunchRequest(body: unknown): { continue: boolean; resources?: IResources } {
  const b = object(body);
  const c = b.continue;
  if (c !== undefined && typeof c !== 'boolean') {
    throw invalid('"continue" must be true or false.', 'continue');
  }
  if (b.resources === undefined) {
    return { continue: c === true };
  }
  try {
    return { continue: c === true, resources: parseResourceOverrides(b.resources) };
  } catch (err) {
    throw invalid((err as Error).message, 'resources');
  }
}

export function parseKernelRequest(body: unknown): KernelRequest {
  const b = object(body);
  const kernelId = b.kernelId === undefined ? undefined : String(b.kernelId);
  if (kernelId !== undefined && !/^[A-Za-z0-9_-]{1,64}$/.test(kernelId)) {
    throw invalid('Invalid kernelId.', 'kernelId');
  }
  if (b.adoptPorts !== undefined) {
    const ports = b.adoptPorts as Record<string, unknown> | null;
    const valid = CHANNEL_PORTS.every(
      k => Number.isInteger(ports?.[k]) && (ports![k] as number) > 1023 && (ports![k] as number) < 65536
    );
    if (!kernelId || !valid) {
      throw invalid('Adopting a kernel needs its kernelId and five local ports.', 'adoptPorts');
    }
    return { action: 'adopt', kernelId, ports: ports as Record<(typeof CHANNEL_PORTS)[number], number> };
  }
  if (b.attach === true) {
    if (!kernelId) {
      throw invalid('Attaching a kernel needs its kernelId.', 'kernelId');
    }
    return { action: 'attach', kernelId };
  }
  const kernelspec = b.kernelspec === undefined || b.kernelspec === null ? undefined : b.kernelspec;
  if (kernelspec !== undefined && (typeof kernelspec !== 'string' || !REMOTE_SPEC_NAME.test(kernelspec))) {
    throw invalid('Invalid kernelspec: 1-64 of letters, digits, ".", "_" and "-".', 'kernelspec');
  }
  // The Jupyter session's path (JPY_SESSION_NAME): a notebook of the cluster drive runs in its folder.
  const notebookPath = parseNotebookPath(b, false);
  return { action: 'start', kernelId, kernelspec, ...(notebookPath && { notebookPath }) };
}

export function parseSignalRequest(body: unknown): ISignalRequest {
  const signal = object(body).signal;
  if (signal !== 'SIGINT' && signal !== 'SIGTERM' && signal !== 'SIGKILL') {
    throw invalid(`Signal ${String(signal)} is not allowed (SIGINT, SIGTERM, SIGKILL).`, 'signal');
  }
  return { signal };
}

/** POST api/v1/prompts/<id>: only the fields an answer has, of their types. */
export function parsePromptAnswer(body: unknown): IPromptAnswer {
  const b = object(body);
  return {
    ...(Array.isArray(b.answers) && { answers: b.answers.map(String) }),
    ...(typeof b.accept === 'boolean' && { accept: b.accept }),
    ...(b.cancel === true && { cancel: true })
  };
}

export function parseTerminalRequest(body: unknown): ITerminalRequest {
  const b = object(body);
  const size: ITerminalRequest = {};
  for (const k of ['rows', 'cols'] as const) {
    const v = b[k];
    if (v === undefined) {
      continue;
    }
    if (!Number.isInteger(v) || (v as number) < 1 || (v as number) > 1000) {
      throw invalid(`${k} must be an integer from 1 to 1000.`, k);
    }
    size[k] = v as number;
  }
  return size;
}

/**
 * A notebook's path as Jupyter names it (`notebookPath`, or `path` when `required`):
 * POST api/v1/sessions/<id>/notebooks, api/v1/profiles/<name>/kernel-session, kernels.
 */
export function parseNotebookPath(body: unknown, required: boolean): string | undefined {
  const b = (body ?? {}) as Record<string, unknown>;
  const field = required ? 'path' : 'notebookPath';
  const value = b[field];
  if ((value === undefined || value === null) && !required) {
    return undefined;
  }
  if (typeof value !== 'string' || !value || value.length > 4096 || value.includes('\0')) {
    throw invalid(`Invalid ${field}: a path of 1 to 4096 characters.`, field);
  }
  return value;
}
