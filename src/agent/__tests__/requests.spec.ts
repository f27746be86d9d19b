/** The API's request bodies: typed values for the routes, or a refusal naming the field. */
import {
  MAX_WORKER_JOBS,
  parseAddWorkersRequest,
  parseExtendRequest,
  parseActivityRequest,
  parseWebPortRequest,
  parseRelaunchRequest,
  parseKernelRequest,
  parsePromptAnswer,
  parseSignalRequest,
  parseSubmitRequest
} from '../http/requests';
import { refusal } from './helpers/adapters';

const PORTS = { shell_port: 40001, iopub_port: 40002, stdin_port: 40003, control_port: 40004, hb_port: 40005 };

describe('request bodies', () => {
  it.each([null, [], 'x', 3])('refuses a body that is not an object (%p)', body => {
    expect(refusal(() => parseSubmitRequest(body)).field).toBe('body');
    expect(refusal(() => parseKernelRequest(body)).field).toBe('body');
  });

  it('submit: a profile, the overridable resources, the owner', () => {
    expect(parseSubmitRequest({ profile: 'p', resources: { nodes: 2, cpus: 4 }, owner: 'kernel' })).toEqual({
      profile: 'p',
      resources: { nodes: 2, cpus: 4 },
      owner: 'kernel'
    });
    expect(parseSubmitRequest({ profile: 'p', owner: 'root' }).owner).toBe('user');
    expect(refusal(() => parseSubmitRequest({})).field).toBe('profile');
    const extra = refusal(() => parseSubmitRequest({ profile: 'p', resources: { extraDirectives: ['--x'] } }));
    expect(extra.field).toBe('resources');
    expect(extra.message).toMatch(/only be set in the profile/);
  });

  it('kernels: start, adopt on five local ports, attach', () => {
    expect(parseKernelRequest({})).toEqual({ action: 'start', kernelId: undefined });
    expect(parseKernelRequest({ kernelId: 'k1' })).toEqual({ action: 'start', kernelId: 'k1' });
    expect(parseKernelRequest({ kernelId: 'k1', adoptPorts: PORTS })).toEqual({
      action: 'adopt',
      kernelId: 'k1',
      ports: PORTS
    });
    expect(parseKernelRequest({ kernelId: 'k1', attach: true })).toEqual({ action: 'attach', kernelId: 'k1' });
    // another kernel of the job's environment, by its name there
    expect(parseKernelRequest({ kernelspec: 'ir' })).toEqual({
      action: 'start',
      kernelId: undefined,
      kernelspec: 'ir'
    });
    for (const kernelspec of ['', '../bash', 'a b', 7, 'x'.repeat(65)]) {
      expect(refusal(() => parseKernelRequest({ kernelspec })).field).toBe('kernelspec');
    }
    // the notebook's path as jupyter_server names it (a cluster drive notebook runs in its folder)
    expect(parseKernelRequest({ notebookPath: 'cluster-hpc:runs/a.ipynb' })).toEqual({
      action: 'start',
      kernelId: undefined,
      kernelspec: undefined,
      notebookPath: 'cluster-hpc:runs/a.ipynb'
    });
    for (const notebookPath of [7, 'a\0b', 'x'.repeat(4097)]) {
      expect(refusal(() => parseKernelRequest({ notebookPath })).field).toBe('notebookPath');
    }
    expect(refusal(() => parseKernelRequest({ kernelId: '../x' })).field).toBe('kernelId');
    expect(refusal(() => parseKernelRequest({ adoptPorts: PORTS })).field).toBe('adoptPorts');
    expect(refusal(() => parseKernelRequest({ kernelId: 'k', adoptPorts: { ...PORTS, hb_port: 22 } })).field).toBe(
      'adoptPorts'
    );
    expect(refusal(() => parseKernelRequest({ attach: true })).field).toBe('kernelId');
  });

  it('signals: only the three a kernel may get', () => {
    expect(parseSignalRequest({ signal: 'SIGINT' })).toEqual({ signal: 'SIGINT' });
    expect(refusal(() => parseSignalRequest({ signal: 'SIGSTOP' })).message).toMatch(/not allowed/);
  });

  it('add workers: a whole number of jobs, from 1 to the cap', () => {
    expect(parseAddWorkersRequest({ count: 3 })).toEqual({ count: 3 });
    expect(parseAddWorkersRequest({ count: MAX_WORKER_JOBS })).toEqual({ count: MAX_WORKER_JOBS });
    for (const count of [0, -1, 1.5, MAX_WORKER_JOBS + 1, '2', null, undefined, true]) {
      expect([count, refusal(() => parseAddWorkersRequest({ count })).field]).toEqual([count, 'count']);
    }
    expect(refusal(() => parseAddWorkersRequest([])).field).toBe('body');
  });

  it("extend: whole minutes, up to a week; relaunch: continue is true or false, resources as a submission's", () => {
    expect(parseExtendRequest({ minutes: 30 })).toEqual({ minutes: 30 });
    for (const minutes of [0, 1.5, 7 * 24 * 60 + 1, '30', undefined]) {
      expect([minutes, refusal(() => parseExtendRequest({ minutes })).field]).toEqual([minutes, 'minutes']);
    }
    expect(parseRelaunchRequest({})).toEqual({ continue: false });
    expect(parseRelaunchRequest({ continue: true })).toEqual({ continue: true });
    expect(refusal(() => parseRelaunchRequest({ continue: 'yes' })).field).toBe('continue');
    // continued with other resources (edited in the dialog), checked as a submission's
    expect(parseRelaunchRequest({ continue: true, resources: { walltime: '02:00:00', cpus: 4 } })).toEqual({
      continue: true,
      resources: { walltime: '02:00:00', cpus: 4 }
    });
    for (const resources of [{ cpus: -1 }, { gpus: 'two' }, { extraDirectives: ['--x'] }, 'big']) {
      expect(refusal(() => parseRelaunchRequest({ continue: true, resources })).field).toBe('resources');
    }
  });

  it('activity: keep is true or false', () => {
    expect(parseActivityRequest({})).toEqual({ keep: false });
    expect(parseActivityRequest({ keep: true })).toEqual({ keep: true });
    expect(refusal(() => parseActivityRequest({ keep: 'yes' })).field).toBe('keep');
    expect(refusal(() => parseActivityRequest([])).field).toBe('body');
  });

  it('web ports: a whole number from 1024 to 65535, nothing else', () => {
    expect(parseWebPortRequest({ port: 8123 })).toEqual({ port: 8123 });
    expect(parseWebPortRequest({ port: 1024, other: 1 })).toEqual({ port: 1024 });
    for (const port of [80, 1023, 65536, 8123.5, '8123', null, undefined, true]) {
      expect(refusal(() => parseWebPortRequest({ port })).field).toBe('port');
    }
    expect(refusal(() => parseWebPortRequest('8123')).field).toBe('body');
  });

  it('prompt answers keep only the fields of an answer, of their types', () => {
    expect(parsePromptAnswer({ answers: [123, 'x'], accept: 'yes', cancel: true, extra: 1 })).toEqual({
      answers: ['123', 'x'],
      cancel: true
    });
  });
});
