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
import { openPortByNumber, WebPortNotices, type IOpenPortDeps } from '../web-ports';
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

describe('Open a Port of the Session…', () => {
  const trans = nullTranslator.load('jupyterlab_remote_cluster');
  function deps(sessions: ISession[], over: Partial<IOpenPortDeps> = {}) {
    const did: string[] = [];
    const d: IOpenPortDeps = {
      sessions: () => sessions,
      pickSession: async running => {
        did.push(`pick ${running.map(s => s.id).join(',')}`);
        return running[1];
      },
      askPort: async s => {
        did.push(`ask ${s.id}`);
        return 8501;
      },
      post: async (s, port) => {
        did.push(`post ${s.id} ${port}`);
        return web(port, 'streamlit run app.py');
      },
      open: (s, port) => did.push(`open ${s.id} ${port} ${s.httpPorts?.find(p => p.port === port)?.command}`),
      notifyError: message => did.push(`error ${message}`),
      trans,
      ...over
    };
    return { d, did };
  }

  it('asks the helper for the port and opens its panel with the served entry, asking only what it lacks', async () => {
    const a = withPorts('a', []);
    let t = deps([a, withPorts('z', [], { state: 'ended' })]);
    await openPortByNumber({}, t.d); // one running session: no question which
    expect(t.did).toEqual(['ask a', 'post a 8501', 'open a 8501 streamlit run app.py']);

    t = deps([a, withPorts('b', [])]);
    await openPortByNumber({}, t.d);
    expect(t.did).toEqual(['pick a,b', 'ask b', 'post b 8501', 'open b 8501 streamlit run app.py']);

    t = deps([a, withPorts('b', [])]);
    await openPortByNumber({ session: 'a', port: 6006 }, t.d); // the sidebar's row, a number given
    expect(t.did).toEqual(['post a 6006', 'open a 6006 streamlit run app.py']);
  });

  it("says the helper's refusal and why nothing opens; a cancelled dialog does nothing", async () => {
    const refused = deps([withPorts('a', [])], {
      post: async () => {
        throw new Error('Port 8124 on node1 is not held by a process of this session: it is not reached.');
      }
    });
    await openPortByNumber({ port: 8124 }, refused.d);
    expect(refused.did).toEqual([
      'error Could not open port 8124: Port 8124 on node1 is not held by a process of this session: it is not reached.'
    ]);

    const none = deps([withPorts('a', [], { state: 'queued' })]);
    await openPortByNumber({}, none.d);
    expect(none.did).toEqual(['error No session is running: start one from the Launcher first.']);
    const ended = deps([withPorts('a', [], { state: 'ended' })]);
    await openPortByNumber({ session: 'a' }, ended.d);
    expect(ended.did).toEqual(['error Session a is not running: it serves no ports.']);

    const cancelled = deps([withPorts('a', []), withPorts('b', [])], {
      pickSession: async () => undefined
    });
    await openPortByNumber({}, cancelled.d);
    expect(cancelled.did).toEqual([]);
    const noPort = deps([withPorts('a', [])], { askPort: async () => undefined });
    await openPortByNumber({}, noPort.d);
    expect(noPort.did).toEqual([]);
  });

  it('a port the user opened is not announced again when the session lists it', () => {
    const said: string[] = [];
    const notices = new WebPortNotices((s, p) => said.push(`${s.id}:${p.port}`));
    notices.check([withPorts('a', [])]);
    notices.seen('a', 8501);
    notices.check([withPorts('a', [web(8501), web(6006)])]);
    expect(said).toEqual(['a:6006']);
  });
});
