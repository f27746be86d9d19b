/**
 * Unknown host keys are shown to the user, with their SHA256 fingerprint, before
 * anything proceeds: rejecting submits nothing; accepting remembers the keys and the
 * job is submitted. The profile's known_hosts file starts empty (galata-server.sh).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { expect, test } from '@jupyterlab/galata';

import { remoteClusterSection } from './page';

test.use({ mockSettings: false, kernels: null, sessions: null });

const REPO = path.resolve(__dirname, '..', '..');
const KNOWN_HOSTS = path.join(REPO, 'ui-tests', '.jupyter-root', 'known_hosts_empty');

/** SHA256 fingerprint of a host's key as `ssh-keygen -lf` prints it, from the testbed's known_hosts. */
function fingerprint(host: string): string {
  const env = execFileSync(path.join(REPO, 'testbed', 'testbed'), ['env'], { encoding: 'utf8' });
  const file = /^RC_TESTBED_KNOWN_HOSTS=(.*)$/m.exec(env)![1];
  const out = execFileSync('ssh-keygen', ['-l', '-F', host, '-f', file], { encoding: 'utf8' });
  return /(SHA256:\S+)/.exec(out)![1];
}

test('unknown host keys are confirmed with their fingerprints', async ({ page }) => {
  test.setTimeout(5 * 60 * 1000);
  fs.writeFileSync(KNOWN_HOSTS, '');
  const section = remoteClusterSection(page);

  // Reject: nothing is submitted, the file stays empty, the dialog says why.
  await section.locator('.jp-LauncherCard', { hasText: 'new host keys' }).click();
  await page.locator('.jp-Dialog').getByRole('button', { name: 'Submit' }).click();
  const keyDialog = page.locator('.jp-Dialog', { has: page.locator('.jp-RemoteCluster-hostKey') });
  await expect(keyDialog).toContainText(fingerprint('198.18.0.2'), { timeout: 60_000 });
  await keyDialog.screenshot({ path: test.info().outputPath('unknown-host-key.png') });
  await keyDialog.getByRole('button', { name: 'Reject' }).click();
  const error = page.locator('.jp-Dialog .jp-RemoteCluster-error');
  await expect(error).toContainText(/host key/i, { timeout: 60_000 });
  await page.locator('.jp-Dialog').screenshot({ path: test.info().outputPath('rejected.png') });
  expect(fs.readFileSync(KNOWN_HOSTS, 'utf8')).toBe('');
  await page.locator('.jp-Dialog').getByRole('button', { name: 'Cancel' }).click();

  // Accept both hops (bastion, then login): the job is submitted and the keys remembered.
  await section.locator('.jp-LauncherCard', { hasText: 'new host keys' }).click();
  await page.locator('.jp-Dialog').getByRole('button', { name: 'Submit' }).click();
  for (const host of ['198.18.0.2', '198.18.1.2']) {
    const dialog = page.locator('.jp-Dialog', { has: page.locator('.jp-RemoteCluster-hostKey') });
    await expect(dialog).toContainText(fingerprint(host), { timeout: 60_000 });
    await dialog.getByRole('button', { name: 'Accept and remember' }).click();
  }
  const session = page.locator('.jp-RemoteCluster-session', { hasText: 'new host keys' }).first();
  await expect(session.locator('.jp-RemoteCluster-sessionState')).toContainText(/Queued|Starting|Running/, {
    timeout: 60_000
  });
  const remembered = fs.readFileSync(KNOWN_HOSTS, 'utf8');
  expect(remembered.split('\n').filter(Boolean)).toHaveLength(2);
  await session.getByRole('button', { name: 'Cancel' }).click();
  await page.locator('.jp-Dialog').getByRole('button', { name: 'Cancel job' }).click();
  await expect(session.locator('.jp-RemoteCluster-sessionState')).toContainText('Ended', { timeout: 60_000 });
});
