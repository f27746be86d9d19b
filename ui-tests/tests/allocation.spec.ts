/**
 * The allocation's hours in the page, on the testbed's Slurm: a 4-minute session with
 * warnings at 3 and 1 minutes; each comes at its time (±10 s of the scheduler's own time
 * left); the countdown matches the scheduler's right after the kernel starts; Extend shows
 * Slurm's answer; Continue in a new job gives a running successor, and the notebook's
 * kernel moves there (SLURM_JOB_ID changes) with its variables, a function too; a cell that keeps a CPU busy for 20 s shows in
 * the successor's efficiency card. Fastest start: with partition big full, the dialog says
 * when each candidate would start and preselects the free one. Screenshots for
 * docs/allocation.md.
 */
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';

import { expect, test, type IJupyterLabPageFixture } from '@jupyterlab/galata';

import { STABLE_IDLE, dismissNews, remoteClusterSection } from './page';

const TESTBED = path.resolve(__dirname, '..', '..', 'testbed', 'testbed');
const SETTINGS = 'jupyterlab-remote-cluster:sessions';

function onLogin(...args: string[]): string {
  return execFileSync(TESTBED, ['exec', 'login', '--user', 'alice', '--', ...args], { encoding: 'utf8' }).trim();
}

/** Seconds of walltime Slurm says job `id` has left (squeue %L: [D-]HH:MM:SS, MM:SS). */
function slurmLeft(id: string): number {
  const parts = onLogin('squeue', '-h', '-j', id, '-o', '%L').split(':').map(Number);
  return parts.reduce((acc, n) => acc * 60 + n, 0);
}

/** The sidebar's "3m 40s left". */
function shownLeft(text: string): number {
  const m = /(\d+)m (\d+)s left/.exec(text);
  expect(m, text).toBeTruthy();
  return Number(m![1]) * 60 + Number(m![2]);
}

async function shot(page: IJupyterLabPageFixture, name: string): Promise<void> {
  await page.screenshot({ path: test.info().outputPath(`${name}.png`) });
}

async function runCell(page: IJupyterLabPageFixture, source: string): Promise<string> {
  await page.notebook.setCell(0, 'code', source);
  await page.notebook.runCell(0, true);
  return (await page.notebook.getCellTextOutput(0))?.join('\n') ?? '';
}

async function setWarnings(page: IJupyterLabPageFixture, minutes: number[] | null): Promise<void> {
  await page.evaluate(
    async ([id, value]) => {
      const registry = await window.galata.getPlugin('@jupyterlab/apputils-extension:settings');
      if (value === null) {
        await registry!.remove(id as string, 'walltimeWarnings');
      } else {
        await registry!.set(id as string, 'walltimeWarnings', value);
      }
    },
    [SETTINGS, minutes] as const
  );
}

/** The efficiency card's "Used: 1m 05s of CPU time · …", in seconds. */
function cpuSecondsShown(text: string): number {
  const m = /Used: (?:(\d+)h )?(\d+)m (\d+)s of CPU time/.exec(text);
  expect(m, text).toBeTruthy();
  return Number(m![1] ?? 0) * 3600 + Number(m![2]) * 60 + Number(m![3]);
}

test.use({ mockSettings: false, kernels: null, sessions: null });

test.describe.serial('Allocation hours on the testbed', () => {
  test.setTimeout(9 * 60 * 1000);

  test('Fastest start: with partition big full, the dialog preselects the free one', async ({ page }) => {
    await dismissNews(page);
    // node2, big's only node, taken whole by a job of 10 minutes
    const filler = onLogin('sbatch', '--parsable', '-p', 'big', '--exclusive', '-t', '10', '--wrap', 'sleep 600');
    const alicesJobs = () => onLogin('squeue', '-h', '-u', 'alice', '-o', '%i').split(/\s+/).sort();
    const before = alicesJobs();
    try {
      await expect.poll(() => onLogin('squeue', '-h', '-j', filler, '-o', '%T'), { timeout: 60_000 }).toBe('RUNNING');
      await remoteClusterSection(page).locator('.jp-LauncherCard', { hasText: 'Testbed (fastest start)' }).click();
      const dialog = page.locator('.jp-Dialog');
      const where = dialog.locator('select[name="candidate"]');
      await expect(where.locator('option').nth(0)).toHaveText(/^big — starts in (\d+m \d\ds)$/, { timeout: 60_000 });
      await expect(where.locator('option').nth(1)).toHaveText('sshonly · 00:30:00 — starts now');
      // preselected, and the fields follow
      expect(await where.evaluate(s => (s as HTMLSelectElement).selectedIndex)).toBe(1);
      await expect(dialog.locator('input[name="partition"]')).toHaveValue('sshonly');
      await expect(dialog.locator('input[name="walltime"]')).toHaveValue('00:30:00');
      await shot(page, 'allocation-05-fastest-start');
      // asking submitted nothing
      await dialog.getByRole('button', { name: 'Cancel' }).click();
      expect(alicesJobs()).toEqual(before);
    } finally {
      onLogin('scancel', filler);
    }
  });

  test('warnings at 3 and 1 min, Extend, Continue in a new job', async ({ page }) => {
    await dismissNews(page);
    await setWarnings(page, [3, 1]);
    let jobId = '';
    let nextJob = '';
    try {
      // A 4-minute session from the tile.
      const section = remoteClusterSection(page);
      await section.locator('.jp-LauncherCard', { hasText: 'Testbed (Slurm)' }).click();
      await page.locator('.jp-Dialog input[name="walltime"]').fill('00:04:00');
      await page.locator('.jp-Dialog').getByRole('button', { name: 'Submit' }).click();
      const newest = page.locator('.jp-RemoteCluster-session').first();
      await expect(newest.locator('.jp-RemoteCluster-sessionState')).toContainText(/Running on node[12]/, {
        timeout: 180_000
      });
      // (by id: the successor will be listed first)
      const sid = (await newest.getAttribute('data-session-id'))!;
      const session = page.locator(`[data-session-id="${sid}"]`);
      jobId = /job (\d+)/.exec((await session.locator('.jp-RemoteCluster-sessionTitle').textContent()) ?? '')![1];
      await expect(page.locator('#jp-main-statusbar')).toContainText(STABLE_IDLE, { timeout: 120_000 });
      expect(await runCell(page, 'import os; os.environ["SLURM_JOB_ID"]')).toContain(jobId);

      // The countdown is the scheduler's (±5 s) right after the kernel started, and
      // after a restart, a detach and an attach (kernel events must not move it).
      const clock = session.locator('.jp-RemoteCluster-timeLeft');
      const countdownIsSlurms = async (after: string): Promise<number> => {
        const shown = shownLeft((await clock.textContent()) ?? '');
        const left = slurmLeft(jobId);
        expect(Math.abs(shown - left), `after ${after}: shown ${shown} s, Slurm ${left} s`).toBeLessThanOrEqual(5);
        return left;
      };
      const left = await countdownIsSlurms('the kernel started');
      const now = Date.now();
      await page.menu.clickMenuItem('Kernel>Restart Kernel…');
      await page.locator('.jp-Dialog .jp-mod-accept').click();
      await expect(page.locator('#jp-main-statusbar')).toContainText(STABLE_IDLE, { timeout: 60_000 });
      expect(await runCell(page, 'import os; os.environ["SLURM_JOB_ID"]')).toContain(jobId);
      await countdownIsSlurms('a restart');
      const started = await page.request.post(`/remote-cluster/api/v1/sessions/${sid}/kernels`, { data: {} });
      expect(started.status()).toBe(201);
      const kid = ((await started.json()) as { kernelId: string }).kernelId;
      expect((await page.request.post(`/remote-cluster/api/v1/kernels/${kid}/detach`, { data: {} })).status()).toBe(
        200
      );
      const detached = session.locator(`.jp-RemoteCluster-detachedKernel[data-kernel-id="${kid}"]`);
      await expect(detached).toBeVisible({ timeout: 30_000 });
      await countdownIsSlurms('a detach');
      await detached.getByRole('button', { name: 'Attach' }).click();
      await expect(detached).toHaveCount(0, { timeout: 30_000 });
      await countdownIsSlurms('an attach');
      // what the notebook holds, to carry to the successor (a lock does not pickle)
      // (one line each: the editor indents what is typed after a colon)
      await runCell(page, 'answer = 42\ntwice = lambda x: 2 * x\nimport threading\nlock = threading.Lock()');
      // when each warning is due, by Slurm's clock (as read before the kernel events)
      const due3 = now + (left - 180) * 1000;
      const due1 = now + (left - 60) * 1000;

      // 3 minutes before the end: the warning, with its actions; the sidebar's too.
      const toast3 = page.locator('.jp-toast-message', { hasText: /reaches its walltime in [23]m/ });
      await expect(toast3).toBeVisible({ timeout: Math.max(0, due3 - Date.now()) + 30_000 });
      expect(Math.abs(Date.now() - due3), 'the 3-minute warning, vs Slurm').toBeLessThanOrEqual(10_000);
      await expect(session).toHaveClass(/jp-mod-endsSoon/);
      await expect(session.getByRole('button', { name: 'Continue in a new job' })).toBeVisible();
      await shot(page, 'allocation-01-warning');

      // Extend: Slurm's own answer (users may not raise a running job's limit).
      await page.getByRole('alert').filter({ has: toast3 }).getByRole('button', { name: 'Extend' }).click();
      await page.locator('.jp-Dialog .jp-mod-accept').click();
      await expect(page.locator('.jp-toast-message', { hasText: 'refused to extend' })).toContainText(/denied/i, {
        timeout: 60_000
      });
      await shot(page, 'allocation-02-extend-refused');

      // 1 minute before the end: the second warning; Continue in a new job from it.
      const toast1 = page.locator('.jp-toast-message', { hasText: /reaches its walltime in [01]m/ });
      await expect(toast1).toBeVisible({ timeout: Math.max(0, due1 - Date.now()) + 30_000 });
      expect(Math.abs(Date.now() - due1), 'the 1-minute warning, vs Slurm').toBeLessThanOrEqual(10_000);
      // Slurm's own end signal (--signal=B:USR1@60 for 4 minutes; Slurm sends it up to a
      // minute early) reached the helper, which reported it (the page says it only when
      // none of our warnings was said in the minute before)
      await expect
        .poll(
          async () =>
            (
              (await (await page.request.get(`/remote-cluster/api/v1/sessions/${sid}`)).json()) as {
                endWarnedAt?: number;
              }
            ).endWarnedAt,
          { timeout: 30_000 }
        )
        .toBeGreaterThan(0);
      await page.getByRole('alert').filter({ has: toast1 }).getByRole('button', { name: 'Continue' }).click();
      await expect(session.locator('.jp-RemoteCluster-continuation')).toContainText('Continued by job', {
        timeout: 30_000
      });
      const successor = page.locator('.jp-RemoteCluster-session', {
        has: page.locator('.jp-RemoteCluster-continuation', { hasText: `Continues job ${jobId}` })
      });
      await expect(successor).toHaveCount(1, { timeout: 30_000 });
      const movedToast = page.locator('.jp-toast-message', { hasText: /Moved to job \d+/ });
      await expect(movedToast).toBeVisible({ timeout: 120_000 });
      // 2 variables and 2 modules; the lock stays (Details says which and why)
      await expect(movedToast).toContainText('Carried 4 variables; some did not move (see Details).');
      nextJob = /job (\d+)/.exec((await successor.locator('.jp-RemoteCluster-sessionTitle').textContent()) ?? '')![1];
      await shot(page, 'allocation-03-continued');
      await page.getByRole('alert').filter({ has: movedToast }).getByRole('button', { name: 'Details' }).click();
      const details = page.locator('.jp-Dialog .jp-RemoteCluster-carried');
      await expect(details).toContainText('Carried: answer, os, threading, twice.');
      await expect(details).toContainText('Not carried: lock (does not pickle (TypeError)).');
      await shot(page, 'allocation-07-carried');
      await page.locator('.jp-Dialog').getByRole('button', { name: 'Close' }).click();
      await expect(page.locator('#jp-main-statusbar')).toContainText(STABLE_IDLE, { timeout: 120_000 });
      await expect(page.locator('.jp-RemoteCluster-statusItem')).toContainText(`job ${nextJob}`);
      const moved = await runCell(page, 'import os; os.environ["SLURM_JOB_ID"]');
      expect(moved).toContain(nextJob);
      expect(nextJob).not.toBe(jobId);
      // the variables came with it, the function too (cloudpickle on the cluster)
      expect(await runCell(page, 'twice(answer)')).toContain('84');

      // The efficiency card: a cell that keeps one CPU busy for 20 s of CPU time shows in
      // the successor's row (its helper samples /proc every 10 s).
      const card = successor.locator('.jp-RemoteCluster-usage').first();
      await expect(card).toContainText('of CPU time', { timeout: 60_000 });
      const before = cpuSecondsShown((await card.textContent()) ?? '');
      await runCell(page, 'import time\nt0 = time.process_time()\nwhile time.process_time() - t0 < 20: pass');
      await expect
        .poll(async () => cpuSecondsShown((await card.textContent()) ?? '') - before, { timeout: 60_000 })
        .toBeGreaterThanOrEqual(16);
      // 20 s ± 20%, plus what the idle kernel and helper used meanwhile
      expect(cpuSecondsShown((await card.textContent()) ?? '') - before).toBeLessThanOrEqual(28);
      // the profile asks for 1 CPU; the burn kept one busy through at least one heartbeat
      await expect(card).toContainText(/at most [01]\.\d of 1 CPUs busy/);
      await shot(page, 'allocation-06-efficiency');
    } finally {
      await setWarnings(page, null);
      onLogin('scancel', '-u', 'alice');
    }
  });
});
