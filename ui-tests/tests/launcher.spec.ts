import { expect, test } from '@jupyterlab/galata';

import { remoteClusterSection } from './page';

// Real settings: the profile comes from the settings file the agent reads too.
test.use({ mockSettings: false });

test.describe('Launcher', () => {
  test('shows one Remote cluster tile per profile', async ({ page }) => {
    const section = remoteClusterSection(page);
    await expect(section).toBeVisible();
    // The Galata server's settings hold five profiles (scripts/galata-server.sh).
    const tiles = section.locator('.jp-LauncherCard');
    await expect(tiles).toHaveCount(5);
    await expect(tiles.nth(0)).toContainText('Testbed (Slurm)');
    await expect(tiles.nth(1)).toContainText('Testbed (new host keys)');
    await expect(tiles.nth(2)).toContainText('Testbed (fast keepalive)');
    await expect(tiles.nth(3)).toContainText('Testbed (idle after 1 min)');
    await expect(tiles.nth(4)).toContainText('Testbed (fastest start)');
    await section.screenshot({ path: test.info().outputPath('launcher-section.png') });
  });

  test('remote kernelspecs are not Notebook or Console cards; the kernel picker still offers them', async ({
    page
  }) => {
    const section = (title: string) =>
      page.locator('.jp-Launcher-section', {
        has: page.locator('.jp-Launcher-sectionTitle', { hasText: title })
      });
    // the local Python is a card; no profile's "(new job)" kernelspec is (five exist)
    for (const title of ['Notebook', 'Console']) {
      await expect(section(title).locator('.jp-LauncherCard').first()).toBeVisible();
      await expect(section(title).locator('.jp-LauncherCard', { hasText: '(new job)' })).toHaveCount(0);
    }
    const specs = (await (await page.request.get('/api/kernelspecs')).json()) as {
      kernelspecs: Record<string, { spec: { display_name: string }; resources: Record<string, string> }>;
    };
    const remote = Object.values(specs.kernelspecs).filter(k => k.spec.display_name.endsWith('(new job)'));
    expect(remote).toHaveLength(5);
    // each with the product's icon
    for (const k of remote) {
      expect(k.resources['logo-svg']).toMatch(/logo-svg\.svg$/);
      expect((await page.request.get(k.resources['logo-svg'])).status()).toBe(200);
    }
    await section('Remote cluster').screenshot({ path: test.info().outputPath('launcher-without-kernel-cards.png') });
    // Change Kernel… lists them
    await page.notebook.createNew();
    await page.menu.clickMenuItem('Kernel>Change Kernel…');
    const select = page.locator('.jp-Dialog select');
    await expect(select.locator('option', { hasText: 'Python 3 · Testbed (Slurm) (new job)' })).toHaveCount(1);
    await page.locator('.jp-Dialog').getByRole('button', { name: 'Cancel' }).click();
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
