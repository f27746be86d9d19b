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
