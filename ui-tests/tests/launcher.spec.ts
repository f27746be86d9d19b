import { expect, test } from '@jupyterlab/galata';

import { remoteClusterSection } from './page';

// Real settings: the profile comes from the settings file the agent reads too.
test.use({ mockSettings: false });

test.describe('Launcher', () => {
  test('shows one Remote cluster tile per profile', async ({ page }) => {
    const section = remoteClusterSection(page);
    await expect(section).toBeVisible();
    // The Galata server's settings hold four profiles (scripts/galata-server.sh).
    const tiles = section.locator('.jp-LauncherCard');
    await expect(tiles).toHaveCount(4);
    await expect(tiles.nth(0)).toContainText('Testbed (Slurm)');
    await expect(tiles.nth(1)).toContainText('Testbed (new host keys)');
    await expect(tiles.nth(2)).toContainText('Testbed (fast keepalive)');
    await expect(tiles.nth(3)).toContainText('Testbed (idle after 1 min)');
    await section.screenshot({ path: test.info().outputPath('launcher-section.png') });
  });

  test('the palette reaches the agent through the server extension', async ({ page }) => {
    await page.keyboard.press('Control+Shift+C');
    await page.locator('.lm-CommandPalette-input').fill('agent status');
    await page.locator('.lm-CommandPalette-item', { hasText: 'Remote cluster: agent status' }).click();
    const dialog = page.locator('.jp-Dialog');
    await expect(dialog).toContainText(/Agent \S+ is running \(pid \d+/);
    await expect(dialog).toContainText('ssh2 1.');
    // The shipped agent bundle carries scripts/patch-ssh2.mjs.
    await expect(dialog).toContainText(/crypto, OpenSSH certificates\)/);
    await dialog.screenshot({ path: test.info().outputPath('agent-status.png') });
    await dialog.getByRole('button', { name: 'Close' }).click();
    await expect(dialog).toHaveCount(0);
  });
});
