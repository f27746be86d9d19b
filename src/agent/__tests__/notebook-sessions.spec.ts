import type { ISessionRecord } from '../sessions/records';
import { NotebookSessions } from '../sessions/notebook-sessions';

const rec = (id: string, profile: string, state: string, createdAt: string, owner = 'user') =>
  ({ id, profile, state, createdAt, owner }) as unknown as ISessionRecord;

describe('the session a stable kernel starts in', () => {
  const older = rec('a1', 'hpc', 'running', '2026-12-01T10:00:00Z');
  const newer = rec('b2', 'hpc', 'running', '2026-12-02T10:00:00Z');
  const kernels = rec('c3', 'hpc', 'running', '2026-12-03T10:00:00Z', 'kernel');
  const queued = rec('d4', 'hpc', 'queued', '2026-12-04T10:00:00Z');
  const elsewhere = rec('e5', 'other', 'running', '2026-12-05T10:00:00Z');

  it("is the newest running session the user started of the profile (not another kernel's job)", () => {
    const n = new NotebookSessions();
    expect(n.choose('hpc', 'x.ipynb', [older, newer, kernels, queued, elsewhere])).toBe('b2');
    expect(n.choose('hpc', undefined, [older, kernels])).toBe('a1');
    expect(n.choose('hpc', 'x.ipynb', [kernels, queued, elsewhere])).toBeUndefined(); // a new job
  });

  it("is the notebook's own while it lives (also while it still queues), else as above", () => {
    const n = new NotebookSessions();
    n.bind('x.ipynb', 'a1');
    expect(n.choose('hpc', 'x.ipynb', [older, newer])).toBe('a1');
    expect(n.choose('hpc', 'y.ipynb', [older, newer])).toBe('b2');
    n.bind('x.ipynb', 'd4');
    expect(n.choose('hpc', 'x.ipynb', [older, newer, queued])).toBe('d4');
    expect(n.choose('hpc', 'x.ipynb', [older, newer, { ...queued, state: 'ended' } as ISessionRecord])).toBe('b2');
    // bound to another profile's session: not for this profile's kernel
    n.bind('x.ipynb', 'e5');
    expect(n.choose('hpc', 'x.ipynb', [older, elsewhere])).toBe('a1');
  });

  it("finds the page's binding from the path on disk jupyter_server gives the kernel", () => {
    const n = new NotebookSessions();
    n.bind('runs/x.ipynb', 'a1'); // what the page binds (JupyterLab's path)
    n.bind('x.ipynb', 'b2');
    expect(n.choose('hpc', '/home/me/lab/runs/x.ipynb', [older, newer])).toBe('a1'); // JPY_SESSION_NAME
    expect(n.choose('hpc', '/home/me/lab/x.ipynb', [older, newer])).toBe('b2');
    expect(n.choose('hpc', '/home/me/lab/other-runs/x.ipynb', [older, newer])).toBe('b2'); // (as x.ipynb)
    expect(n.choose('hpc', '/home/me/lab/runsx.ipynb', [older])).toBe('a1'); // (no binding: the newest)
  });

  it('a new binding of the same notebook replaces the one before, by whichever name', () => {
    const n = new NotebookSessions();
    n.bind('/home/me/lab/runs/x.ipynb', 'a1'); // its kernel started in a1 (JPY_SESSION_NAME)
    n.bind('runs/x.ipynb', 'b2'); // the page moves it to b2 ("Continue in a new job")
    expect(n.choose('hpc', '/home/me/lab/runs/x.ipynb', [older, newer])).toBe('b2');
    n.bind('/home/me/lab/runs/x.ipynb', 'a1'); // and back, by its kernel's start
    expect(n.choose('hpc', 'runs/x.ipynb', [older, newer])).toBe('a1');
  });
});
