/**
 * Cluster files in the page, on the testbed's login node: the drive's file browser opens a
 * file from alice's home there, the editor saves it (checked with `cat` on the login
 * node), a change made on the cluster meanwhile brings JupyterLab's "File Changed" dialog,
 * a save into a read-only folder fails with the cluster's reason and leaves the old file,
 * a 50 MiB upload arrives with the same checksum, and a notebook of the drive runs in its
 * folder on the node. Screenshots for docs/cluster-files.md.
 */
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { expect, test, type IJupyterLabPageFixture } from '@jupyterlab/galata';

import { STABLE_IDLE, dismissNews } from './page';

const TESTBED = path.resolve(__dirname, '..', '..', 'testbed', 'testbed');
const DIR = 'galata-files';

/** A command as alice on the login node, in her home (output trimmed). */
function onLogin(script: string): string {
  return execFileSync(TESTBED, ['exec', 'login', '--user', 'alice', '--', 'sh', '-c', `cd "$HOME" && ${script}`], {
    encoding: 'utf8'
  }).trim();
}

async function shot(page: IJupyterLabPageFixture, name: string): Promise<void> {
  await page.screenshot({ path: test.info().outputPath(`${name}.png`) });
}

test.use({ mockSettings: false, kernels: null, sessions: null });
test.use({ actionTimeout: 60_000, navigationTimeout: 60_000 });

test.describe('Cluster files', () => {
  test.beforeAll(() => {
    onLogin(
      `chmod -R u+w ${DIR} 2>/dev/null; rm -rf ${DIR}; mkdir -p ${DIR}/ro && printf 'line one\\n' > ${DIR}/notes.txt` +
        ` && printf 'keep me\\n' > ${DIR}/ro/kept.txt && chmod 555 ${DIR}/ro`
    );
  });
  test.afterAll(() => {
    onLogin(`chmod -R u+w ${DIR}; rm -rf ${DIR}`);
  });

  test('open, edit and save on the cluster; conflicts, refusals and a 50 MiB upload', async ({ page }) => {
    test.setTimeout(5 * 60_000);
    await dismissNews(page);
    await page.evaluate(() =>
      window.jupyterapp.commands.execute('remote-cluster:open-cluster-files', { profile: 'testbed' })
    );
    const browser = page.locator('#remote-cluster-files-testbed');
    const item = (name: string) =>
      browser.locator('.jp-DirListing-item', {
        has: page.locator('.jp-DirListing-itemText', { hasText: new RegExp(`^${name}$`) })
      });
    const editor = page.locator('.jp-FileEditor:visible .cm-content');
    const dialog = page.locator('.jp-Dialog');

    // 1. Open a file of the cluster, edit, save: the login node has the new text.
    await item(DIR).dblclick();
    await item('notes.txt').dblclick();
    await expect(editor).toContainText('line one', { timeout: 30_000 });
    await editor.click();
    await page.keyboard.press('Control+End');
    await page.keyboard.type('line two from the browser\n');
    await page.keyboard.press('Control+s');
    await expect.poll(() => onLogin(`cat ${DIR}/notes.txt`)).toBe('line one\nline two from the browser');
    await shot(page, '01-saved');

    // 2. The file changes on the cluster (a job writes it): saving asks first.
    await page.waitForTimeout(1200); // (the cluster's modification times are in whole seconds)
    onLogin(`printf 'written by a job\\n' >> ${DIR}/notes.txt`);
    await editor.click();
    await page.keyboard.press('Control+End');
    await page.keyboard.type('line three');
    await page.keyboard.press('Control+s');
    await expect(dialog).toContainText('File Changed');
    await shot(page, '02-conflict');
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    expect(onLogin(`cat ${DIR}/notes.txt`)).toBe('line one\nline two from the browser\nwritten by a job');
    await page.keyboard.press('Control+s');
    await dialog.getByRole('button', { name: 'Overwrite' }).click();
    await expect.poll(() => onLogin(`cat ${DIR}/notes.txt`)).toBe('line one\nline two from the browser\nline three');
    expect(onLogin(`stat -c %a ${DIR}/notes.txt`)).toBe('644');

    // 3. A save into a read-only folder: the cluster's reason, the old file intact, nothing left.
    await item('ro').dblclick();
    await item('kept.txt').dblclick();
    await expect(editor).toContainText('keep me', { timeout: 30_000 });
    await editor.click();
    await page.keyboard.type('lost? ');
    await page.keyboard.press('Control+s');
    await expect(dialog).toContainText(`Could not save ${DIR}/ro/kept.txt: permission denied on the cluster.`);
    await shot(page, '03-read-only');
    await dialog.getByRole('button').last().click();
    expect(onLogin(`cat ${DIR}/ro/kept.txt; ls -A ${DIR}/ro`)).toBe('keep me\nkept.txt');

    // 4. A 50 MiB upload (JupyterLab's 1 MiB pieces): the same bytes on the cluster.
    const local = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'rc-upload-')), 'big.bin');
    const data = randomBytes(50 * 1024 * 1024);
    fs.writeFileSync(local, data);
    const digest = createHash('sha256').update(data).digest('hex');
    await browser.locator('.jp-BreadCrumbs-item', { hasText: DIR }).click();
    await expect(item('notes.txt')).toBeVisible();
    const chooser = page.waitForEvent('filechooser');
    await browser.locator('.jp-id-upload').click();
    await (await chooser).setFiles(local);
    await dialog.getByRole('button', { name: 'Upload' }).click(); // (JupyterLab asks above 15 MB)
    await expect(item('big.bin')).toBeVisible({ timeout: 180_000 });
    await expect
      .poll(() => onLogin(`sha256sum ${DIR}/big.bin 2>/dev/null | cut -d' ' -f1`), { timeout: 180_000 })
      .toBe(digest);
    expect(onLogin(`ls -A ${DIR}`).split('\n')).toEqual(['.ipynb_checkpoints', 'big.bin', 'notes.txt', 'ro']); // (no temporary left)
    await shot(page, '04-uploaded');
    fs.rmSync(path.dirname(local), { recursive: true, force: true });

    // 5. A notebook of the drive, on the profile's kernel in a running session: it works in
    // its folder there (the page sends its kernel there, drive-kernels.ts).
    const notebook = { cells: [], metadata: {}, nbformat: 4, nbformat_minor: 5 };
    const api = '/remote-cluster/api/v1';
    const put = await page.request.put(`${api}/profiles/testbed/files/${DIR}/analysis.ipynb`, {
      data: { type: 'notebook', format: 'json', content: notebook }
    });
    expect(put.status()).toBe(200);
    const submitted = await page.request.post(`${api}/sessions`, { data: { profile: 'testbed' } });
    expect(submitted.status()).toBe(201);
    const sid = ((await submitted.json()) as { id: string }).id;
    try {
      await expect
        .poll(
          async () => ((await (await page.request.get(`${api}/sessions/${sid}`)).json()) as { state: string }).state,
          {
            timeout: 120_000
          }
        )
        .toBe('running');
      await page.evaluate(
        async ([p, k]) => {
          await window.jupyterapp.commands.execute('docmanager:open', {
            path: p,
            factory: 'Notebook',
            kernel: { name: k }
          });
        },
        [`cluster-testbed:${DIR}/analysis.ipynb`, 'remote-cluster-testbed--python3']
      );
      await expect(page.locator('#jp-main-statusbar')).toContainText(STABLE_IDLE, { timeout: 120_000 });
      await page.notebook.setCell(0, 'code', 'import os; print(os.getcwd(), os.environ["SLURM_JOB_ID"])');
      await page.notebook.runCell(0, true);
      const home = onLogin('echo $HOME');
      const session = (await (await page.request.get(`${api}/sessions/${sid}`)).json()) as { jobId: string };
      expect((await page.notebook.getCellTextOutput(0))?.join('')).toContain(`${home}/${DIR} ${session.jobId}`);
      await shot(page, '05-notebook-in-its-folder');
    } finally {
      // its kernel first (no kernel of this test is left to the next), then its job
      await page.evaluate(() => window.jupyterapp.serviceManager.sessions.shutdownAll());
      await page.request.delete(`${api}/sessions/${sid}`);
    }
  });
});
