/**
 * Web servers a session's processes run: announced once as they appear (not those a
 * session had when the page first saw it), listed in the sidebar with Open, opened in
 * the same sandboxed panel as the dashboards.
 */
import { nullTranslator } from '@jupyterlab/translation';
import { CommandRegistry } from '@lumino/commands';

import type { ISession, IServedPort } from '../../common/api';
import { createDashboard } from '../dashboard';
import { RemoteClusterModel } from '../model';
import { SessionsPanel } from '../sidebar';
import { WebPortNotices } from '../web-ports';
import { testSession } from './fixtures';

const web = (port: number, command = 'python3 -m http.server 8123'): IServedPort => ({
  port,
  name: 'web',
  path: `/remote-cluster/proxied/k/${port}/`,
  stripPrefix: true,
  command
});
const withPorts = (id: string, ports: IServedPort[], over: Partial<ISession> = {}) =>
  testSession(id, { state: 'running', jobId: '42', httpPorts: ports, ...over });

describe('WebPortNotices', () => {
  it('says a web port once, as it appears; not those a session had when first seen', () => {
    const said: string[] = [];
    const notices = new WebPortNotices((s, p) => said.push(`${s.id}:${p.port}`));
    notices.check([withPorts('a', [web(6006)])]); // after a reload: already there
    expect(said).toEqual([]);
    notices.check([withPorts('a', [web(6006), web(8123)]), withPorts('b', [web(9000)])]);
    expect(said).toEqual(['a:8123']); // b is new to this page: its port was there before
    notices.check([withPorts('a', [web(8123)]), withPorts('b', [web(9000), web(9001)])]);
    expect(said).toEqual(['a:8123', 'b:9001']);
    // Dask dashboards are not web ports; an ended session says nothing
    notices.check([
      withPorts('a', [web(8123), { port: 1, name: 'dask-notebook', path: '/x/1/status' }]),
      withPorts('b', [web(9002)], { state: 'ended' })
    ]);
    expect(said).toEqual(['a:8123', 'b:9001']);
  });
});

describe('a web port in the sidebar and its panel', () => {
  it('is a row with the command as its tooltip and Open (the dashboard command with its port)', async () => {
    const model = new RemoteClusterModel();
    const commands = new CommandRegistry();
    const opened: unknown[] = [];
    commands.addCommand('remote-cluster:open-dashboard', { execute: args => void opened.push(args) });
    const panel = new SessionsPanel(model, commands, nullTranslator.load('jupyterlab'));
    model.handle({ type: 'session', session: withPorts('a', [web(8123)]) });
    const row = panel.node.querySelector<HTMLElement>('[data-session-id="a"] .jp-RemoteCluster-webPort')!;
    expect(row.dataset.port).toBe('8123');
    expect(row.querySelector('span')!.textContent).toBe('Web server on port 8123');
    expect(row.querySelector('span')!.title).toBe('python3 -m http.server 8123');
    row.querySelector('button')!.click();
    await new Promise(r => setTimeout(r, 0));
    expect(opened).toEqual([{ session: 'a', port: '8123' }]);
    panel.dispose();
    model.dispose();
  });

  it('opens in the sandboxed panel, titled by its port', () => {
    const w = createDashboard(withPorts('a', [web(8123)]), nullTranslator.load('jupyterlab'), 8123)!;
    expect(w.title.label).toBe('Port 8123 · job 42');
    const iframe = w.node.querySelector('iframe')!;
    expect(iframe.getAttribute('sandbox')).not.toContain('allow-same-origin');
    expect(iframe.src).toMatch(/\/remote-cluster\/proxied\/k\/8123\/$/);
    // a port the session does not serve opens nothing
    expect(createDashboard(withPorts('a', [web(8123)]), nullTranslator.load('jupyterlab'), 8124)).toBeUndefined();
  });
});
