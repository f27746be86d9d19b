/**
 * The "Show log" panel: each file's end as text (nothing a job printed becomes HTML), a
 * cut file said so, an empty or missing directory said in a sentence, a failure said in
 * the panel; and the sidebar offers it for every session that has a job.
 */
import { nullTranslator } from '@jupyterlab/translation';
import { CommandRegistry } from '@lumino/commands';

import { CommandIDs } from '../commands';
import { RemoteClusterModel } from '../model';
import { SessionLogPanel, renderSessionLogs } from '../session-log';
import { SessionsPanel } from '../sidebar';
import { testSession } from './fixtures';

const trans = nullTranslator.load('jupyterlab');

describe('the session log panel', () => {
  it("shows each file's end as text, and which files were cut", () => {
    const node = document.createElement('div');
    renderSessionLogs(
      node,
      {
        files: [
          { name: 'job.err', size: 45, text: '<img src=x onerror=alert(1)> not found', truncated: false },
          { name: 'job.out', size: 200_000, text: 'line 19999', truncated: true }
        ]
      },
      trans
    );
    const files = [...node.querySelectorAll<HTMLDetailsElement>('.jp-RemoteCluster-logFile')];
    expect(files.map(f => f.dataset.file)).toEqual(['job.err', 'job.out']);
    expect(node.querySelector('img')).toBeNull();
    expect(files[0].querySelector('pre')!.textContent).toBe('<img src=x onerror=alert(1)> not found');
    expect(files[1].querySelector('summary')!.textContent).toMatch(/^job\.out \(.+, the end\)$/);
  });

  it('says when there is nothing, and why', () => {
    const node = document.createElement('div');
    renderSessionLogs(node, { files: [], missing: 'The session directory /x is gone from the cluster.' }, trans);
    expect(node.textContent).toBe('The session directory /x is gone from the cluster.');
    renderSessionLogs(node, { files: [] }, trans);
    expect(node.textContent).toMatch(/No log files yet/);
  });

  it('says a failure to read in the panel, and reads again on refresh', async () => {
    let fail = true;
    const panel = new SessionLogPanel(async () => {
      if (fail) {
        throw new Error('no connection to login within 10 s');
      }
      return { files: [{ name: 'job.err', size: 3, text: 'ok', truncated: false }] };
    }, trans);
    await panel.refresh();
    expect(panel.node.textContent).toBe('Could not read the logs: no connection to login within 10 s');
    fail = false;
    await panel.refresh();
    expect(panel.node.querySelector('pre')!.textContent).toBe('ok');
  });

  it('is offered in the sidebar for a session with a job, running or ended, not while queued', () => {
    const model = new RemoteClusterModel();
    const sidebar = new SessionsPanel(model, new CommandRegistry(), trans);
    model.handle({ type: 'session', session: testSession('a', { state: 'running', node: 'node1' }) });
    model.handle({ type: 'session', session: testSession('b', { state: 'ended', reason: 'failed' }) });
    model.handle({ type: 'session', session: testSession('c', { state: 'queued' }) });
    const logButton = (id: string) =>
      sidebar.node.querySelector(`[data-session-id="${id}"] button[data-command="${CommandIDs.showLog}"]`);
    expect(logButton('a')).not.toBeNull();
    expect(logButton('b')).not.toBeNull();
    expect(logButton('c')).toBeNull();
  });
});
