/**
 * A login node whose Slurm (22.05, rows in the real adapter's format) answers from `jobs`,
 * and that counts every scheduler command: for session-manager specs without a cluster.
 */
import { FIELD_SEPARATOR } from '../../schedulers/slurm';
import type { ICommandResult } from '../../schedulers/types';
import type { IClusterLink } from '../../cluster/link';

export type JobState = 'PENDING' | 'RUNNING' | 'CANCELLED' | 'COMPLETED' | 'FAILED';

export class CountingLink implements IClusterLink {
  readonly jobs = new Map<string, { state: JobState; reason: string }>();
  /** helper state per job id; absent: no state.json yet */
  readonly helpers = new Map<
    string,
    {
      status: string;
      heartbeatAge: number;
      httpPorts?: unknown[];
      workerJobs?: string[];
      idleEnded?: unknown;
      error?: string;
    }
  >();
  readonly queries: { at: number; ids: string[] }[] = [];
  readonly cancels: string[] = [];
  controller: 'up' | 'down' | 'hung' = 'up';
  /** fake milliseconds each squeue takes */
  squeueMs = 0;
  /** what sbatch does: queue the job (default), or answer/fail as given */
  sbatch?: () => Promise<ICommandResult>;
  /** every command run, in order */
  readonly commands: string[] = [];
  private nextId = 100;

  async exec(command: string, opts?: { timeoutMs?: number }): Promise<ICommandResult> {
    this.commands.push(command);
    if (command.includes('printf %s "$HOME"')) {
      return { code: 0, stdout: '/home/u', stderr: '' };
    }
    if (command.includes('mkdir -p')) {
      return { code: 0, stdout: 'helper-present\n', stderr: '' };
    }
    if (command.startsWith('sbatch') && this.sbatch) {
      return this.sbatch();
    }
    if (command.startsWith('rm -rf')) {
      return { code: 0, stdout: '', stderr: '' };
    }
    if (command.startsWith('sbatch')) {
      const id = String(this.nextId++);
      this.jobs.set(id, { state: 'PENDING', reason: 'Resources' });
      return { code: 0, stdout: `${id}\n`, stderr: '' };
    }
    if (command.startsWith('scancel')) {
      const id = command.split(' ')[1];
      this.cancels.push(id);
      this.jobs.set(id, { state: 'CANCELLED', reason: 'None' });
      return { code: 0, stdout: '', stderr: '' };
    }
    const m = /squeue .*--jobs=([\d,]+)/.exec(command);
    if (m) {
      const ids = m[1].split(',');
      this.queries.push({ at: Date.now(), ids });
      if (this.squeueMs) {
        await new Promise(r => setTimeout(r, this.squeueMs));
      }
      if (this.controller === 'hung') {
        await new Promise(r => setTimeout(r, opts?.timeoutMs ?? 60_000));
        throw new Error('The command on login did not finish within 60 s and was stopped.');
      }
      if (this.controller === 'down') {
        return {
          code: 1,
          stdout: '',
          stderr: 'slurm_load_jobs error: Unable to contact slurm controller (connect failure)\n'
        };
      }
      const version = command.includes('squeue --version') ? 'slurm-wlm 22.05.8\n' : '';
      const rows = ids
        .filter(id => this.jobs.has(id))
        .map(id => {
          const j = this.jobs.get(id)!;
          const running = j.state === 'RUNNING';
          return [id, j.state, j.reason, running ? 'node1' : '', running ? '59:00' : '1:00:00', 'N/A'].join(
            FIELD_SEPARATOR
          );
        });
      return { code: 0, stdout: version + rows.map(r => r + '\n').join(''), stderr: '' };
    }
    throw new Error(`unexpected command ${command}`);
  }

  async writeFile(): Promise<void> {}

  async readFile(p: string): Promise<Buffer> {
    const id = [...this.jobs.keys()].find(j => p.includes(`/job-${j}/`));
    const h = id ? this.helpers.get(id) : undefined;
    if (!h) {
      throw new Error('ENOENT');
    }
    const heartbeat = Date.now() / 1000 - h.heartbeatAge;
    return Buffer.from(
      JSON.stringify({
        status: h.status,
        host: 'node1',
        controlPort: 1,
        heartbeat,
        httpPorts: h.httpPorts ?? [],
        ...(h.workerJobs && { workerJobs: h.workerJobs }),
        ...(h.idleEnded !== undefined && { idleEnded: h.idleEnded }),
        ...(h.error !== undefined && { error: h.error })
      })
    );
  }

  async forwardOut(): Promise<never> {
    throw new Error('not used here');
  }
  onClose(): void {}
  close(): void {}

  squeueCount(from: number, to: number): number {
    return this.queries.filter(q => q.at >= from && q.at < to).length;
  }
}
