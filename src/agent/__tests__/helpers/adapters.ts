/** Shared by the scheduler adapters' tests. */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';

import { InvalidRequestError, type IJobSpec } from '../../schedulers/types';

/** A recorded or published command output: fixtures/<scheduler>/<name>.json. */
export function readFixture<T>(scheduler: string, name: string): T {
  return JSON.parse(readFileSync(path.join(__dirname, '..', 'fixtures', scheduler, `${name}.json`), 'utf8')) as T;
}

/** The InvalidRequestError that `fn` throws (the test fails if it throws nothing or something else). */
export function refusal(fn: () => unknown): InvalidRequestError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidRequestError);
    return err as InvalidRequestError;
  }
  throw new Error('expected an InvalidRequestError');
}

/** A job spec as the session manager writes it, with `over` applied. */
export const spec = (over: Partial<IJobSpec> = {}): IJobSpec => ({
  name: 'jrc-ab12cd',
  workdir: '/home/alice/.jupyter-remote-cluster/sessions/ab12cd',
  stdoutPath: '/home/alice/.jupyter-remote-cluster/sessions/ab12cd/job.out',
  stderrPath: '/home/alice/.jupyter-remote-cluster/sessions/ab12cd/job.err',
  resources: {},
  setup: [],
  command: "/opt/py/bin/python '/home/alice/.jupyter-remote-cluster/helper-1.py' serve --session-dir /home/alice/s",
  ...over
});

/** Setup lines the full-script tests use. */
export const SETUP = ['module load python/3.11', 'source ~/venvs/lab/bin/activate'];

/**
 * The end of every batch job script for `SETUP` and spec()'s command, written out (not
 * computed): the setup lines, each stopping the job if it fails, then exec of the helper.
 */
export function scriptTail(title: string): string[] {
  return [
    '# environment setup from the profile: the job stops at the first line that fails',
    '{ module load python/3.11',
    "} || { printf 'jupyterlab-remote-cluster: setup line 1 failed (exit code %s): %s\\n' \"$?\" 'module load python/3.11' >&2; exit 1; }",
    '{ source ~/venvs/lab/bin/activate',
    "} || { printf 'jupyterlab-remote-cluster: setup line 2 failed (exit code %s): %s\\n' \"$?\" 'source ~/venvs/lab/bin/activate' >&2; exit 1; }",
    '',
    `# the remote helper replaces this shell: ${title} signals reach it directly`,
    "exec /opt/py/bin/python '/home/alice/.jupyter-remote-cluster/helper-1.py' serve --session-dir /home/alice/s",
    ''
  ];
}
