import type { ISession } from '../../common/api';
import { formatDuration, timeLeftNow } from '../format';
import { RemoteClusterModel } from '../model';
import { testSession } from './fixtures';

function session(id: string, patch: Partial<ISession> = {}): ISession {
  return testSession(
    id,
    { profile: 'testbed', cluster: 'Testbed', state: 'queued', jobId: undefined, ...patch },
    Date.parse('2026-11-25T08:00:00.000Z')
  );
}

describe('RemoteClusterModel', () => {
  it('keeps sessions current from agent events, newest first', () => {
    const model = new RemoteClusterModel();
    const seen: (ISession | undefined)[] = [];
    model.sessionsChanged.connect((_, s) => seen.push(s));
    model.handle({ type: 'session', session: session('a') });
    model.handle({ type: 'session', session: session('b', { createdAt: '2026-11-25T09:00:00.000Z' }) });
    model.handle({ type: 'session', session: session('a', { state: 'running', node: 'node1' }) });
    expect(model.sessions.map(s => s.id)).toEqual(['b', 'a']);
    expect(model.session('a')?.node).toBe('node1');
    model.handle({ type: 'session-removed', id: 'b' });
    expect(model.sessions.map(s => s.id)).toEqual(['a']);
    expect(seen).toHaveLength(4);
    model.dispose();
  });

  it('forwards prompts to whoever shows dialogs', () => {
    const model = new RemoteClusterModel();
    const prompts: string[] = [];
    model.prompt.connect((_, p) => prompts.push(p.title));
    model.handle({
      type: 'prompt',
      prompt: {
        id: '0123456789abcdef',
        kind: 'host-key',
        cluster: 'c',
        host: 'login',
        title: 'Unknown host key',
        questions: []
      }
    });
    expect(prompts).toEqual(['Unknown host key']);
    model.dispose();
  });

  it('shows each notice once, although the agent replays it on every reconnect', () => {
    const model = new RemoteClusterModel();
    const shown: string[] = [];
    model.notice.connect((_, n) => shown.push(`${n.level}: ${n.message}`));
    const corrupt = { type: 'notice', id: 'sessions-file', level: 'error', message: 'kept as x.corrupt-1' } as const;
    model.handle(corrupt);
    model.handle(corrupt);
    model.handle({ ...corrupt, message: 'kept as x.corrupt-2' });
    expect(shown).toEqual(['error: kept as x.corrupt-1', 'error: kept as x.corrupt-2']);
    model.dispose();
  });
});

describe('time left', () => {
  it('counts down from the value reported at updatedAt', () => {
    const s = session('a', { timeLeftSeconds: 3600, updatedAt: '2026-11-25T08:00:00.000Z' });
    const left = timeLeftNow(s, Date.parse('2026-11-25T08:10:00.000Z'));
    expect(left).toBe(3000);
    expect(formatDuration(left!)).toBe('50m 00s');
    expect(formatDuration(2 * 86400 + 3 * 3600)).toBe('2d 3h');
    expect(formatDuration(3 * 3600 + 5 * 60)).toBe('3h 05m');
    expect(timeLeftNow(session('b'))).toBeUndefined();
  });
});
