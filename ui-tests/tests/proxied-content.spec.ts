/**
 * Proxied content never runs with JupyterLab's privileges (issue 10): a page served on a
 * session's port (here an attacker's route in the session's own Dask dashboard server,
 * ui-tests/fixtures/rc_evilpage.py) tries, from the dashboard panel, to read JupyterLab's
 * cookies and token, reach into its window, and call its API; all of it fails, while the
 * Dask dashboard in the same panel still renders its plots.
 *
 * Against a JupyterLab with real authentication (ui-tests/secure-server.sh: a token,
 * XSRF, origin checks), not Galata's own server, which has them all switched off.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as path from 'node:path';

import { expect, test } from '@jupyterlab/galata';

const BASE = 'http://127.0.0.1:8897';
const TOKEN = randomBytes(24).toString('hex');
const AUTH = { Authorization: `token ${TOKEN}` };

test.use({ mockSettings: false, kernels: null, sessions: null });

test.describe.serial('proxied content', () => {
  test.setTimeout(6 * 60 * 1000);
  let server: ChildProcess | undefined;

  test.beforeAll(async ({ request }) => {
    server = spawn('bash', [path.resolve(__dirname, '..', 'secure-server.sh')], {
      env: { ...process.env, JUPYTER_TOKEN: TOKEN },
      stdio: 'ignore',
      detached: true
    });
    for (let i = 0; i < 240; i++) {
      const r = await request.get(`${BASE}/api/status`, { headers: AUTH }).catch(() => undefined);
      if (r?.ok()) {
        return;
      }
      await new Promise(res => setTimeout(res, 500));
    }
    throw new Error('the secure JupyterLab did not start');
  });

  test.afterAll(() => {
    if (server?.pid) {
      process.kill(-server.pid, 'SIGTERM'); // the script's whole group: Lab and its agent
    }
  });

  test('a page served on a session port gets nothing of JupyterLab; the dashboard works', async ({
    browser,
    request
  }) => {
    const context = await browser.newContext();
    const page = await context.newPage();
    // Logged in as a user is: the token once, then the cookie.
    await page.goto(`${BASE}/lab?token=${TOKEN}`);
    await expect(page.locator('#jp-main-dock-panel')).toBeVisible({ timeout: 120_000 });

    const created = await request.post(`${BASE}/remote-cluster/api/v1/sessions`, {
      headers: AUTH,
      data: { profile: 'testbed' }
    });
    expect(created.status()).toBe(201);
    const sid = (await created.json()).id as string;
    try {
      let session: any;
      for (let i = 0; i < 120; i++) {
        session = await (await request.get(`${BASE}/remote-cluster/api/v1/sessions/${sid}`, { headers: AUTH })).json();
        if (session.state === 'ended' || (session.httpPorts ?? []).length) {
          break;
        }
        await new Promise(res => setTimeout(res, 1000));
      }
      const dash = (session.httpPorts ?? []).find((p: any) => p.name === 'dask-dashboard');
      expect(dash, JSON.stringify(session)).toBeTruthy();
      const terminalsBefore = await (await request.get(`${BASE}/api/terminals`, { headers: AUTH })).json();

      // The dashboard panel, from the sidebar: Bokeh's plots render (websockets work).
      const row = page.locator(`.jp-RemoteCluster-session[data-session-id="${sid}"]`);
      if (!(await row.isVisible())) {
        await page.locator('.jp-SideBar [title="Remote sessions"]').click();
      }
      await row.getByRole('button', { name: 'Dashboard' }).click();
      const frame = page.frameLocator('.jp-RemoteCluster-dashboard iframe');
      await expect(frame.locator('body')).toContainText(/Task Stream|Bytes stored/i, { timeout: 60_000 });
      await expect(frame.locator('canvas').first()).toBeVisible({ timeout: 30_000 });
      await page.screenshot({ path: test.info().outputPath('dashboard-sandboxed.png') });

      // The same panel, at the attacker's page on that port: it reports what it got.
      const report = page.evaluate(
        () =>
          new Promise<Record<string, string>>(resolve =>
            window.addEventListener('message', e => e.data?.rcAttack && resolve(e.data.rcAttack))
          )
      );
      await page.evaluate(
        src => {
          (document.querySelector('.jp-RemoteCluster-dashboard iframe') as HTMLIFrameElement).src = src;
        },
        `${BASE}${dash.path.replace(/\/status$/, '/evil.html')}`
      );
      const got = await report;
      test.info().annotations.push({ type: 'attack', description: JSON.stringify(got) });
      for (const name of ['cookie', 'localStorage', 'parentDocument', 'pageConfigToken', 'parentApp']) {
        expect(got[name], name).toMatch(/^blocked: SecurityError/);
      }
      // Lab's own page and API: nothing readable, nothing done.
      for (const name of ['labPage', 'terminal', 'sessions']) {
        expect(got[name], name).toMatch(/^blocked: TypeError/);
      }
      expect(got.terminalNoCors).toBe('got: 0 '); // an opaque answer: the request went out...
      const terminalsAfter = await (await request.get(`${BASE}/api/terminals`, { headers: AUTH })).json();
      expect(terminalsAfter).toEqual(terminalsBefore); // ...and Jupyter refused it: no terminal
    } finally {
      await request.delete(`${BASE}/remote-cluster/api/v1/sessions/${sid}`, { headers: AUTH });
      await context.close();
    }
  });
});
