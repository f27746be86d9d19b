/**
 * The laptop's link to the bastion is cut under a running kernel: the sidebar says
 * "Reconnecting…" with the reason, then "Connected" once the link is back; the kernel
 * was never reported dead and keeps its variables, and a cell printing through the cut
 * shows every line; after a page reload, the lines of the cell the earlier page ran
 * are in the Earlier output panel. The profile's ssh_config notices a
 * dead link in ~4-6 s (ServerAlive 2 s x 2, scripts/galata-server.sh).
 */
import { execFileSync } from 'node:child_process';

import { expect, test, type IJupyterLabPageFixture } from '@jupyterlab/galata';

import { STABLE_IDLE } from './page';

const LAPTOP_LINK = 'rctb-lap'; // the laptop end of the laptop<->bastion veth (testbed/testbed)
const PRINTED_LINES = 40; // one every 0.5 s: 20 s, through the cut
const LATE_LINES = 30; // one every 0.5 s, started before a page reload
const PRINTING_LATE = `import time\nfor i in range(${LATE_LINES}):\n    print("late", i, flush=True)\n    time.sleep(0.5)`;
const PRINTING = `import time\nfor i in range(${PRINTED_LINES}):\n    print(i, flush=True)\n    time.sleep(0.5)`;

function link(up: boolean): void {
  execFileSync('ip', ['link', 'set', LAPTOP_LINK, up ? 'up' : 'down']);
}

async function runCell(page: IJupyterLabPageFixture, index: number, source: string): Promise<string> {
  await page.notebook.setCell(index, 'code', source);
  await page.notebook.runCell(index, true);
  return (await page.notebook.getCellTextOutput(index))?.join('\n') ?? '';
}

test.use({ mockSettings: false, kernels: null, sessions: null });

test('a cut link shows Reconnecting…, then Connected; the kernel keeps its state and every printed line', async ({
  page
}) => {
  test.setTimeout(5 * 60 * 1000);
  const created = await page.request.post('/remote-cluster/api/v1/sessions', { data: { profile: 'fast-keepalive' } });
  expect(created.status()).toBe(201);
  const sid = ((await created.json()) as { id: string }).id;
  try {
    const session = page.locator(`.jp-RemoteCluster-session[data-session-id="${sid}"]`);
    await page.sidebar.openTab('jp-remote-cluster-sessions');
    await expect(session.locator('.jp-RemoteCluster-sessionState')).toContainText(/Running on node[12]/, {
      timeout: 180_000
    });
    const line = session.locator('.jp-RemoteCluster-connection');
    await expect(line).toHaveText('Connected');

    await session.getByRole('button', { name: 'Notebook' }).click();
    await expect(page.locator('#jp-main-statusbar')).toContainText(STABLE_IDLE, { timeout: 120_000 });
    expect(await runCell(page, 0, 'x = 42; x')).toContain('42');

    // A cell prints through the cut: every line reaches the notebook, in order, once
    // (kept on the node while the link is down: jrc_iopub_keeper.py).
    await page.notebook.addCell('code', PRINTING);
    const printing = page.notebook.runCell(1, true);
    await page.waitForTimeout(2_000);
    link(false);
    try {
      await expect(line).toContainText('Reconnecting…', { timeout: 30_000 });
      await expect(line).toHaveAttribute('data-connection-state', 'reconnecting');
      await page.screenshot({ path: test.info().outputPath('reconnecting.png') });
      await page.waitForTimeout(5_000);
    } finally {
      link(true);
    }
    await expect(line).toHaveText('Connected', { timeout: 60_000 });
    await printing;
    const printed = ((await page.notebook.getCellTextOutput(1)) ?? []).join('\n').split(/\s+/).filter(Boolean);
    expect(printed).toEqual([...Array(PRINTED_LINES).keys()].map(String));
    // Never "dead", never restarted: the same kernel, with its variable.
    await expect(page.locator('#jp-main-statusbar')).toContainText(STABLE_IDLE, { timeout: 60_000 });
    expect(await runCell(page, 0, 'x + 1')).toContain('43');
    await page.screenshot({ path: test.info().outputPath('reconnected.png') });

    // The page is reloaded while a cell prints: JupyterLab gives the reopened cell none of
    // the later lines (they answer the earlier page's request); they go to a log panel.
    await page.notebook.setCell(1, 'code', PRINTING_LATE);
    await page.notebook.selectCells(1);
    await page.keyboard.press('Control+Enter'); // (not runCell: it would wait on the page that goes away)
    await expect(page.locator('.jp-Notebook .jp-Cell').nth(1).locator('.jp-OutputArea')).toContainText('late 1', {
      timeout: 30_000
    });
    await page.reload({ waitForIsReady: false }); // (the notebook comes back, not the Launcher)
    await page.locator('#jupyterlab-splash').waitFor({ state: 'detached' });
    const toast = page.locator('.jp-toast-message', { hasText: 'run before this page was loaded' });
    await expect(toast).toBeVisible({ timeout: 60_000 });
    await page.locator('.jp-toast-button', { hasText: 'Show output' }).click();
    const earlier = page.locator('.jp-RemoteCluster-earlierOutput');
    await expect(earlier).toContainText(`late ${LATE_LINES - 1}`, { timeout: 30_000 });
    await page.screenshot({ path: test.info().outputPath('earlier-output.png') });
  } finally {
    link(true);
    // Cancel, then remove the ended session, so later tests see an empty sidebar.
    await page.request.delete(`/remote-cluster/api/v1/sessions/${sid}`);
    await page.request.delete(`/remote-cluster/api/v1/sessions/${sid}`);
  }
});
