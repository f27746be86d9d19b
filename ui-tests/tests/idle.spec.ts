/**
 * Idle reclaim in the page, on the testbed's Slurm (docs/allocation.md, "Idle sessions"):
 * a session of a profile with idleTimeout 1 stays while its notebook is in use (edited
 * every few seconds, never run: only the page's lease keeps it), then, with the tab left
 * open and untouched, counts down in the sidebar and a notification, and is ended by its
 * helper, which says so with what it released and Relaunch. Screenshots for the docs.
 */
import { expect, test, type IJupyterLabPageFixture } from '@jupyterlab/galata';

import { STABLE_IDLE, dismissNews, remoteClusterSection } from './page';

test.use({ mockSettings: false, kernels: null, sessions: null });

async function shot(page: IJupyterLabPageFixture, name: string): Promise<void> {
  await page.screenshot({ path: test.info().outputPath(`${name}.png`) });
}

test.describe.serial('Idle reclaim on the testbed', () => {
  test.setTimeout(8 * 60 * 1000);

  test('a tab in use keeps the session; left untouched, it counts down and is ended', async ({ page }) => {
    await dismissNews(page);
    const section = remoteClusterSection(page);
    await section.locator('.jp-LauncherCard', { hasText: 'Testbed (idle after 1 min)' }).click();
    await page.locator('.jp-Dialog').getByRole('button', { name: 'Submit' }).click();
    const session = page.locator('.jp-RemoteCluster-session').first();
    await expect(session.locator('.jp-RemoteCluster-sessionState')).toContainText(/Running on node[12]/, {
      timeout: 180_000
    });
    await expect(page.locator('#jp-main-statusbar')).toContainText(STABLE_IDLE, { timeout: 120_000 });
    // Where Lab users look: the status bar says the notebook's job and time left, the
    // Running panel lists the session with its kernel (running.ts, status-item.ts).
    await expect(page.locator('.jp-RemoteCluster-statusItem')).toHaveText(/^job \d+ · 2\dm \d\ds left$/);
    await page.sidebar.openTab('jp-running-sessions');
    const item = page.locator('.jp-RemoteCluster-runningSession').first();
    await expect(item).toContainText(/job \d+/);
    await expect(item).toContainText(/node[12] · 2\dm \d\ds left/);
    await expect(page.locator('.jp-RemoteCluster-runningKernel')).toHaveCount(1);
    await shot(page, 'running-panel');
    await page.sidebar.openTab('jp-remote-cluster-sessions');
    const countdown = page.locator('.jp-toast-message', { hasText: /is idle/ });

    // In use: edited every 5 s for 80 s, never run (the kernel stays idle, its CPU too).
    // Only the page's lease (a quarter of the timeout apart) keeps the session.
    const inUseUntil = Date.now() + 80_000;
    for (let i = 0; Date.now() < inUseUntil; i++) {
      await page.notebook.setCell(0, 'code', `# still working on it (${i})`);
      await page.waitForTimeout(5_000);
    }
    await expect(session.locator('.jp-RemoteCluster-sessionState')).toContainText(/Running on node[12]/);
    await expect(countdown).toHaveCount(0);

    // Left open, untouched: the countdown (from 30 s before the end), then the end.
    await expect(countdown).toBeVisible({ timeout: 90_000 });
    await expect(session.locator('.jp-RemoteCluster-idleEnds')).toContainText(/Idle: ends in [01] min/);
    await expect(
      session.locator('.jp-RemoteCluster-idleEnds').getByRole('button', { name: 'Keep running' })
    ).toBeVisible();
    await shot(page, 'idle-01-countdown');
    await expect(session.locator('.jp-RemoteCluster-sessionState')).toContainText(/Ended/, { timeout: 90_000 });
    // 2 CPUs, about 29 of its 30 minutes left
    await expect(session).toContainText(/idle for 1 min, released 0\.[89] core-hours/);
    const ended = page.locator('.jp-toast-message', { hasText: /ended: idle for 1 min/ });
    await expect(ended).toBeVisible({ timeout: 30_000 });
    await expect(
      page.getByRole('alert').filter({ has: ended }).getByRole('button', { name: 'Relaunch' })
    ).toBeVisible();
    await expect(countdown).toHaveCount(0);
    await shot(page, 'idle-02-ended');
  });
});
