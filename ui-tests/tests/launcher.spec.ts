import { expect, test } from '@jupyterlab/galata';

test.describe('Launcher', () => {
  test('shows the Remote cluster tile, which reaches the agent', async ({ page }) => {
    const section = page.locator('.jp-Launcher-section', {
      has: page.locator('.jp-Launcher-sectionTitle', { hasText: 'Remote cluster' })
    });
    await expect(section).toBeVisible();
    const tile = section.locator('.jp-LauncherCard', { hasText: 'Remote cluster' });
    await expect(tile).toBeVisible();
    await section.screenshot({ path: test.info().outputPath('launcher-section.png') });

    // The tile goes through the server extension to the Node agent and back.
    await tile.click();
    const dialog = page.locator('.jp-Dialog');
    await expect(dialog).toContainText(/Agent \S+ is running \(pid \d+/);
    await expect(dialog).toContainText('ssh2 1.');
    await dialog.screenshot({ path: test.info().outputPath('agent-status.png') });
    await dialog.getByRole('button', { name: 'Close' }).click();
    await expect(dialog).toHaveCount(0);
  });
});
