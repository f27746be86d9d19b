/**
 * A submission the batch system did not answer (the command timed out, the controller did
 * not respond) may have queued the job all the same: it is not handled as a refusal. The
 * user is told the job's name to look for, and its files stay (the job would need them).
 * A refusal still leaves nothing behind.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { InvalidRequestError, SchedulerUnavailableError } from '../schedulers/types';
import type { SessionManager } from '../sessions/manager';
import { CountingLink } from './helpers/counting-link';
import { slurmManager } from './helpers/slurm-manager';

let dir: string;
let link: CountingLink;
let manager: SessionManager;

beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'rc-unanswered-'));
  await fs.writeFile(path.join(dir, 'helper.py'), '# helper\n');
  link = new CountingLink();
  manager = slurmManager(dir, link);
});

afterEach(async () => {
  await manager.shutdown();
  await fs.rm(dir, { recursive: true, force: true });
});

const removals = () => link.commands.filter(c => c.startsWith('rm -rf'));

describe('a submission without an answer', () => {
  it('sbatch that never returns: the job may be queued; its name is given and its files kept', async () => {
    link.sbatch = () => Promise.reject(new Error('The command on login did not finish within 60 s and was stopped.'));
    const err = (await manager.submit('hpc').catch(e => e)) as Error;
    expect(err).toBeInstanceOf(SchedulerUnavailableError);
    expect(err.message).toMatch(
      /^The submission got no answer: The command on login did not finish within 60 s and was stopped\. The job may have been queued all the same, named "jrc-[0-9a-f]{12}": look for it with your batch system and cancel it if you do not want it \(its files stay in \/home\/u\/\.jupyter-remote-cluster\/sessions\/[0-9a-f]{12}\)\.$/
    );
    expect(removals()).toEqual([]);
    expect(manager.list()).toEqual([]);
  });

  it('a controller that does not answer sbatch: the same, in Slurm words', async () => {
    link.sbatch = async () => ({
      code: 1,
      stdout: '',
      stderr: 'sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)\n'
    });
    const err = (await manager.submit('hpc').catch(e => e)) as Error;
    expect(err).toBeInstanceOf(SchedulerUnavailableError);
    expect(err.message).toMatch(
      /^Slurm did not answer the submission \(.*Unable to contact slurm controller.*\)\. The job may have been queued all the same, named "jrc-/
    );
    expect(removals()).toEqual([]);
  });

  it('a refusal is still a refusal: nothing queued, nothing left behind', async () => {
    link.sbatch = async () => ({
      code: 1,
      stdout: '',
      stderr: 'sbatch: error: Batch job submission failed: Invalid partition name specified\n'
    });
    const err = (await manager.submit('hpc').catch(e => e)) as Error;
    expect(err).toBeInstanceOf(InvalidRequestError);
    expect(removals()).toHaveLength(1);
    expect(manager.list()).toEqual([]);
  });
});
