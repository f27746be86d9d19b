/**
 * A dashboard panel reopened after a page reload: it waits for the agent's event stream to
 * list its session (which comes a moment after the layout), and gives up on one that never
 * shows (removed meanwhile). Its panel carries what the restorer needs to reopen it.
 */
import { nullTranslator } from '@jupyterlab/translation';

import { createDashboard, sessionSoon } from '../dashboard';
import { RemoteClusterModel } from '../model';
import { testSession } from './fixtures';

const withDashboard = (id: string) =>
  testSession(id, { httpPorts: [{ name: 'dask-dashboard', port: 0, path: '/remote-cluster/proxied/k/0/status' }] });

describe('a restored dashboard', () => {
  afterEach(() => jest.useRealTimers());

  it('finds a session the model knows at once, and one that the event stream lists later', async () => {
    const model = new RemoteClusterModel();
    model.handle({ type: 'session', session: withDashboard('a') });
    await expect(sessionSoon(model, 'a', 1000)).resolves.toMatchObject({ id: 'a' });
    const later = sessionSoon(model, 'b', 10_000);
    model.handle({ type: 'session', session: withDashboard('c') }); // another one first
    model.handle({ type: 'session', session: withDashboard('b') });
    await expect(later).resolves.toMatchObject({ id: 'b' });
  });

  it('gives up on a session that never shows', async () => {
    jest.useFakeTimers();
    const model = new RemoteClusterModel();
    const never = sessionSoon(model, 'gone', 15_000);
    jest.advanceTimersByTime(15_000);
    await expect(never).resolves.toBeUndefined();
  });

  it('names its session and port on the panel, for the restorer', () => {
    const w = createDashboard(withDashboard('a'), nullTranslator.load('jupyterlab'), 0)!;
    expect(w.node.dataset.session).toBe('a');
    expect(w.node.dataset.port).toBe('0');
    expect(w.id).toBe('jp-remote-cluster-dashboard-a');
  });
});
