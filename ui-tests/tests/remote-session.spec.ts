/**
 * The product's core promise, end to end on the testbed: Launcher tile -> Slurm job ->
 * kernel on a compute node -> interrupt, restart in the same job -> Dask dashboard panel
 * (back after a page reload) -> a kernel left by a lost server, attached from the sidebar
 * -> a web server a cell starts, opened in a panel -> a notebook on the job's bash
 * kernel -> a terminal in the job, the same shell after a reload -> cancel, and the job
 * is gone from squeue -> its log. Screenshots are kept as artifacts.
 */
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';

import { expect, test, type IJupyterLabPageFixture } from '@jupyterlab/galata';

import { STABLE_BUSY, STABLE_IDLE, dismissNews, remoteClusterSection } from './page';

const TESTBED = path.resolve(__dirname, '..', '..', 'testbed', 'testbed');

/** A file in alice's home (shared by the login node and the compute nodes), or '' if none. */
function aliceFile(name: string): string {
  return execFileSync(
    TESTBED,
    ['exec', 'login', '--user', 'alice', '--', 'sh', '-c', `cat "$HOME/${name}" 2>/dev/null || true`],
    {
      encoding: 'utf8'
    }
  ).trim();
}

function squeueAlice(jobId: string): string {
  return execFileSync(TESTBED, ['exec', 'login', '--user', 'alice', '--', 'squeue', '-h', '-j', jobId, '-o', '%i %T'], {
    encoding: 'utf8'
  }).trim();
}

async function shot(page: IJupyterLabPageFixture, name: string): Promise<void> {
  await page.screenshot({ path: test.info().outputPath(`${name}.png`) });
}

/** How long a cell may run here: Galata's own wait has no end, a test must. */
const CELL_TIMEOUT_MS = 120_000;

async function runCell(page: IJupyterLabPageFixture, index: number, source: string): Promise<string> {
  await page.notebook.setCell(index, 'code', source);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`the cell did not finish in ${CELL_TIMEOUT_MS / 1000} s`)),
      CELL_TIMEOUT_MS
    );
  });
  try {
    await Promise.race([page.notebook.runCell(index, true), timeout]);
  } catch (e) {
    const output = (await page.notebook.getCellTextOutput(index))?.join('\n') ?? '';
    throw new Error(`${(e as Error).message}: ${source.split('\n').pop()}\noutput so far: ${output.slice(-500)}`);
  } finally {
    clearTimeout(timer);
  }
  return (await page.notebook.getCellTextOutput(index))?.join('\n') ?? '';
}

// Real settings: the profile comes from the settings file the agent reads too. No
// tracking of Jupyter's kernels/sessions API by Galata: its route handler expects JSON
// from every POST and breaks on the kernel interrupt (204, empty body).
test.use({ mockSettings: false, kernels: null, sessions: null });
// Every wait has an end: a step that hangs fails where it hangs, saying what it waited for.
test.use({ actionTimeout: 120_000, navigationTimeout: 60_000 });

test.describe.serial('Remote session on the testbed', () => {
  test.setTimeout(10 * 60 * 1000);

  test('tile -> job -> kernel on a node -> interrupt -> restart -> dashboard -> attach -> cancel', async ({ page }) => {
    await dismissNews(page);

    // 1. The tile opens the submit dialog with the profile's resources prefilled.
    const section = remoteClusterSection(page);
    const tile = section.locator('.jp-LauncherCard', { hasText: 'Testbed (Slurm)' });
    await tile.click();
    const dialog = page.locator('.jp-Dialog');
    await expect(dialog.locator('input[name="partition"]')).toHaveValue('debug');
    await expect(dialog.locator('input[name="walltime"]')).toHaveValue('01:00:00');
    await dialog.screenshot({ path: test.info().outputPath('01-submit-dialog.png') });

    // A bad partition is refused with the scheduler's reason, and nothing is submitted.
    await dialog.locator('input[name="partition"]').fill('no-such-partition');
    await dialog.getByRole('button', { name: 'Submit' }).click();
    await expect(page.locator('.jp-Dialog .jp-RemoteCluster-error')).toContainText(/partition/i, { timeout: 60_000 });
    await page.locator('.jp-Dialog').screenshot({ path: test.info().outputPath('02-refused.png') });
    await page.locator('.jp-Dialog input[name="partition"]').fill('debug');
    await page.locator('.jp-Dialog').getByRole('button', { name: 'Submit' }).click();

    // 2. The sidebar follows the session until it runs on a compute node.
    const session = page.locator('.jp-RemoteCluster-session').first();
    await expect(session).toBeVisible();
    await expect(session.locator('.jp-RemoteCluster-sessionState')).toContainText(/Running on node[12]/, {
      timeout: 180_000
    });
    await expect(session.locator('.jp-RemoteCluster-timeLeft')).toContainText('left');
    const title = (await session.locator('.jp-RemoteCluster-sessionTitle').textContent()) ?? '';
    const jobId = /job (\d+)/.exec(title)?.[1];
    expect(jobId).toBeTruthy();
    await shot(page, '03-running');

    // 3. A notebook opened on the session's kernel; the kernel runs on the node.
    await expect(page.locator('.jp-NotebookPanel')).toBeVisible({ timeout: 60_000 });
    await expect(page.locator('#jp-main-statusbar')).toContainText(STABLE_IDLE, { timeout: 120_000 });
    const host = await runCell(page, 0, 'import socket; socket.gethostname()');
    expect(host).toMatch(/node[12]/);
    const job = await runCell(page, 0, 'import os; os.environ["SLURM_JOB_ID"]');
    expect(job).toContain(jobId!);
    await shot(page, '04-kernel-on-node');

    // 4. Interrupt a long cell.
    await page.notebook.setCell(0, 'code', 'import time; time.sleep(60)');
    const started = Date.now();
    void page.notebook.runCell(0);
    await expect(page.locator('#jp-main-statusbar')).toContainText(STABLE_BUSY, { timeout: 30_000 });
    await page.waitForTimeout(1000);
    await page.menu.clickMenuItem('Kernel>Interrupt Kernel');
    await expect(page.locator('.jp-OutputArea-output')).toContainText('KeyboardInterrupt', { timeout: 30_000 });
    expect(Date.now() - started).toBeLessThan(45_000);
    await shot(page, '05-interrupted');

    // 5. Restart: a new kernel in the same allocation (same job id).
    await runCell(page, 0, 'marker = 42');
    await page.menu.clickMenuItem('Kernel>Restart Kernel…');
    await page.locator('.jp-Dialog .jp-mod-accept').click();
    await expect(page.locator('#jp-main-statusbar')).toContainText(STABLE_IDLE, { timeout: 120_000 });
    const afterRestart = await runCell(page, 0, 'import os; (os.environ["SLURM_JOB_ID"], "marker" in globals())');
    expect(afterRestart).toContain(`'${jobId}'`);
    expect(afterRestart).toContain('False');

    // An input() prompt, answered in the page (stdin goes through the provisioner's bridge).
    await page.notebook.setCell(0, 'code', 'print("hello", input("name? "))');
    void page.notebook.runCell(0);
    const stdin = page.locator('.jp-Stdin-input');
    await expect(stdin).toBeVisible({ timeout: 30_000 });
    await stdin.fill('alice');
    await stdin.press('Enter');
    await expect(page.locator('.jp-OutputArea-output').last()).toContainText('hello alice', { timeout: 30_000 });
    await expect(page.locator('#jp-main-statusbar')).toContainText(STABLE_IDLE, { timeout: 30_000 });

    // 6. Dask on the session's scheduler, and its dashboard as a panel.
    const dask = await runCell(
      page,
      0,
      [
        'from distributed import Client',
        'import dask.array as da',
        'client = Client()',
        'client.wait_for_workers(1, timeout=60)',
        'x = da.random.random((4000, 4000), chunks=(500, 500))',
        'print(round(float((x + x.T).mean().compute()), 1), client.dashboard_link)'
      ].join('\n')
    );
    expect(dask).toContain('1.0');
    expect(dask).toMatch(/\/remote-cluster\/proxied\/[A-Za-z0-9_-]{43}\/0\/status/);
    await session.getByRole('button', { name: 'Dashboard' }).click();
    const frame = page.frameLocator('.jp-RemoteCluster-dashboard iframe');
    await expect(frame.locator('body')).toContainText(/Task Stream|Progress|Bytes stored/i, { timeout: 60_000 });
    await page.waitForTimeout(3000); // let Bokeh draw the plots for the screenshot
    await shot(page, '06-dashboard');
    // 6a. A page reload brings the dashboard panel back (the layout restorer), drawing again.
    await page.reload({ waitForIsReady: false, timeout: 60_000 });
    await page.locator('#jupyterlab-splash').waitFor({ state: 'detached', timeout: 60_000 });
    await expect(frame.locator('body')).toContainText(/Task Stream|Progress|Bytes stored/i, { timeout: 60_000 });
    await expect(page.locator('.jp-RemoteCluster-dashboard')).toHaveCount(1);
    await page.sidebar.openTab('jp-remote-cluster-sessions');

    // 6b. Add workers from the sidebar: a worker job joins; the row and the dashboard say so.
    await session.getByRole('button', { name: 'Add workers' }).click();
    await page.locator('.jp-Dialog input').fill('1');
    await page.locator('.jp-Dialog .jp-mod-accept').click();
    await expect(page.locator('.jp-toast-message', { hasText: 'Submitted 1 worker job' })).toBeVisible({
      timeout: 60_000
    });
    await expect(session.locator('.jp-RemoteCluster-daskWorkers')).toContainText('(+1 from worker jobs)', {
      timeout: 120_000
    });
    // the panel on the dashboard's worker list (its own "Info" page; the narrow panel hides the nav)
    const dashFrame = page.frames().find(f => f.url().includes('/remote-cluster/proxied/'))!;
    await dashFrame.goto(dashFrame.url().replace(/\/status.*$/, '/info/main/workers.html'));
    const sid0 = (await session.getAttribute('data-session-id'))!;
    await expect(frame.locator('body')).toContainText(`jrc-w-${sid0}-`, { timeout: 60_000 });
    await expect(frame.locator('body')).toContainText('rc-worker-0');
    await shot(page, '06b-two-workers');

    // 7. A kernel whose Jupyter server was lost (here: detached through the agent's API,
    // as a stopping server does) is listed under its session; Attach makes it a kernel of
    // this server, and a new notebook on it runs in the same job.
    const sid = (await session.getAttribute('data-session-id'))!;
    const started2 = await page.request.post(`/remote-cluster/api/v1/sessions/${sid}/kernels`, { data: {} });
    expect(started2.status()).toBe(201);
    const kid = ((await started2.json()) as { kernelId: string }).kernelId;
    const detached = await page.request.post(`/remote-cluster/api/v1/kernels/${kid}/detach`, { data: {} });
    expect(detached.status()).toBe(200);
    const row = session.locator(`.jp-RemoteCluster-detachedKernel[data-kernel-id="${kid}"]`);
    await expect(row).toContainText(`Kernel ${kid.slice(0, 8)} is running, not connected`, { timeout: 30_000 });
    await shot(page, '07-detached-kernel');
    await row.getByRole('button', { name: 'Attach' }).click();
    // the toast closes itself after 10 s: its button first, then the row
    await page.locator('.jp-toast-button', { hasText: 'New notebook' }).click({ timeout: 30_000 });
    await expect(row).toHaveCount(0, { timeout: 30_000 });
    await expect(page.locator('.jp-NotebookPanel')).toHaveCount(2, { timeout: 30_000 });
    await expect(page.locator('#jp-main-statusbar')).toContainText(/job \d+ \| Idle/, { timeout: 120_000 });
    const attachedJob = await runCell(page, 0, 'import os; os.environ["SLURM_JOB_ID"]');
    expect(attachedJob).toContain(jobId!);
    const kernels = (await (await page.request.get('/api/kernels')).json()) as { name: string }[];
    // the attached one on the session's kernelspec; the first notebook's on the profile's stable one
    expect(kernels.filter(k => k.name === `remote-cluster-session-${sid}`)).toHaveLength(1);
    expect(kernels.filter(k => k.name === 'remote-cluster-testbed--python3')).toHaveLength(1);
    await shot(page, '08-attached');

    // 7a. A web server a cell starts: said, in the session's row within seconds, and in a panel.
    await runCell(
      page,
      0,
      [
        'import pathlib, subprocess, sys, tempfile',
        'site = tempfile.mkdtemp(); pathlib.Path(site, "from-the-node.txt").write_text("hi")',
        'web = subprocess.Popen([sys.executable, "-m", "http.server", "8765", "--bind", "127.0.0.1"], cwd=site)'
      ].join('\n')
    );
    const webRow = session.locator('.jp-RemoteCluster-webPort[data-port="8765"]');
    await expect(webRow).toBeVisible({ timeout: 10_000 });
    await expect(page.locator('.jp-toast-message', { hasText: 'Port 8765 of job' })).toBeVisible();
    await webRow.getByRole('button', { name: 'Open' }).click();
    const webFrame = page.frameLocator('.jp-RemoteCluster-dashboard[data-port="8765"] iframe');
    await expect(webFrame.locator('body')).toContainText('from-the-node.txt', { timeout: 30_000 });
    await shot(page, '08a-web-server');

    // 7b. A port by its number ("Open port…"): what cannot be opened is said, with the reason.
    await session.getByRole('button', { name: 'Open port…' }).click();
    const portDialog = page.locator('.jp-Dialog');
    await portDialog.locator('input').fill('8766');
    await portDialog.locator('.jp-mod-accept').click();
    await expect(
      page.locator('.jp-toast-message', { hasText: 'Could not open port 8766: Nothing listens on port 8766 on node' })
    ).toBeVisible({ timeout: 30_000 });

    // 7c. Another kernel of the job's environment (bash_kernel, installed on the cluster):
    // "Kernel…" offers it, and a notebook on it runs bash in the same job.
    await session.getByRole('button', { name: 'Kernel…' }).click({ timeout: 30_000 });
    const kernelDialog = page.locator('.jp-Dialog');
    await kernelDialog.locator('select').selectOption({ label: 'Bash (bash)' });
    await kernelDialog.locator('.jp-mod-accept').click();
    await expect(page.locator('.jp-NotebookPanel')).toHaveCount(3, { timeout: 60_000 });
    await expect(page.locator('#jp-main-statusbar')).toContainText(/Bash · Testbed \(Slurm\) \| Idle/, {
      timeout: 120_000
    });
    const bashJob = await runCell(page, 0, 'echo "job $SLURM_JOB_ID in bash ${BASH_VERSION%%.*}"');
    expect(bashJob).toMatch(new RegExp(`job ${jobId} in bash \\d`));
    await shot(page, '08b-bash-kernel');

    // 7d. A terminal in the job: the shell runs on the node, inside the job, and after a page
    // reload the panel comes back on the same shell (what it writes goes to alice's home,
    // which the login node shares: the canvas renderer keeps the text out of the DOM).
    const proof = `galata-terminal-${jobId}.txt`;
    await session.getByRole('button', { name: 'Terminal', exact: true }).click();
    const terminal = page.locator('.jp-RemoteCluster-terminal');
    await expect(terminal.locator('.xterm')).toBeVisible({ timeout: 60_000 });
    await terminal.locator('.xterm').click();
    await page.keyboard.type(`echo "$(hostname) $SLURM_JOB_ID P1=$$" > ~/${proof}\n`);
    await expect.poll(() => aliceFile(proof), { timeout: 60_000 }).toMatch(new RegExp(`^node[12] ${jobId} P1=\\d+$`));
    await shot(page, '08c-terminal');
    await page.reload({ waitForIsReady: false, timeout: 60_000 });
    await page.locator('#jupyterlab-splash').waitFor({ state: 'detached', timeout: 60_000 });
    await expect(terminal.locator('.xterm')).toBeVisible({ timeout: 60_000 });
    await terminal.locator('.xterm').click();
    await page.keyboard.type(`echo "P2=$$" >> ~/${proof}\n`);
    await expect.poll(() => aliceFile(proof), { timeout: 60_000 }).toMatch(/P1=(\d+)\nP2=\1$/);
    execFileSync(TESTBED, ['exec', 'login', '--user', 'alice', '--', 'sh', '-c', `rm -f "$HOME/${proof}"`]);
    await page.sidebar.openTab('jp-remote-cluster-sessions');

    // 8. Cancel: the session ends and the job is gone from squeue.
    await session.getByRole('button', { name: 'Cancel' }).click();
    await page.locator('.jp-Dialog').getByRole('button', { name: 'Cancel job' }).click();
    await expect(session.locator('.jp-RemoteCluster-sessionState')).toContainText('Ended: cancelled', {
      timeout: 60_000
    });
    await expect.poll(() => squeueAlice(jobId!), { timeout: 60_000 }).not.toContain('RUNNING');
    await shot(page, '09-cancelled');

    // 9. Its log, read from the cluster: the job's stderr (the helper's lines) and each kernel's log.
    await session.getByRole('button', { name: 'Log', exact: true }).click();
    const log = page.locator('.jp-RemoteCluster-log');
    await expect(log.locator('.jp-RemoteCluster-logFile[data-file="job.err"]')).toBeVisible({ timeout: 30_000 });
    // the notebook's kernel and the attached one (a restart may have added one)
    const kernelLogs = log.locator('.jp-RemoteCluster-logFile[data-file^="kernels/"]');
    await expect(kernelLogs.first()).toBeVisible();
    expect(await kernelLogs.count()).toBeGreaterThanOrEqual(2);
    await shot(page, '10-log');
  });
});
