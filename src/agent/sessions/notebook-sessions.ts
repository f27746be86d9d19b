/**
 * Which session a notebook's stable kernel starts in. A stable kernelspec names a profile
 * and a kernel of its job environment (`remote-cluster-<profile>--<kernel>`), not a job,
 * so a notebook saved with it reopens next week on the same kind of kernel. At each start
 * the provisioner asks here: the session this notebook used last (or that the user opened
 * it from) while it lives, else the newest running session the user started of that
 * profile, else none (the provisioner submits a job, as a profile's "new job" kernel does).
 */
import type { ISessionRecord } from './records';

/** Bindings kept (the oldest forgotten first): notebooks opened in one agent's life. */
const MAX_BINDINGS = 2000;
const ALIVE = new Set(['submitting', 'queued', 'starting', 'running']);

/**
 * `a` and `b` may name the same notebook: equal, or one is the page's path (relative) and
 * the other the path on disk (absolute) that ends with it.
 */
function sameNotebook(a: string, b: string): boolean {
  if (a === b) {
    return true;
  }
  const [disk, page] = a.startsWith('/') ? [a, b] : [b, a];
  return disk.startsWith('/') && !page.startsWith('/') && disk.endsWith(`/${page}`);
}

export class NotebookSessions {
  private readonly bound = new Map<string, string>();

  /** The notebook at `path` (Jupyter's session path) uses session `sessionId`. */
  bind(path: string, sessionId: string): void {
    // (the same notebook by its other name, on disk or in the page, is bound here now too)
    for (const key of [...this.bound.keys()]) {
      if (sameNotebook(key, path)) {
        this.bound.delete(key);
      }
    }
    this.bound.set(path, sessionId);
    if (this.bound.size > MAX_BINDINGS) {
      this.bound.delete(this.bound.keys().next().value as string);
    }
  }

  /**
   * The session bound to `notebookPath`. The page binds JupyterLab's path (`runs/a.ipynb`);
   * jupyter_server gives a kernel the file's path on disk (JPY_SESSION_NAME:
   * `/home/me/runs/a.ipynb`): the longest bound path it ends with, the latest binding.
   */
  private boundTo(notebookPath: string): string | undefined {
    let best: { length: number; id: string } | undefined;
    for (const [path, id] of this.bound) {
      if (sameNotebook(notebookPath, path) && path.length >= (best?.length ?? 0)) {
        best = { length: path.length, id };
      }
    }
    return best?.id;
  }

  choose(profile: string, notebookPath: string | undefined, sessions: Iterable<ISessionRecord>): string | undefined {
    const all = [...sessions].filter(s => s.profile === profile);
    const own = notebookPath ? this.boundTo(notebookPath) : undefined;
    const mine = all.find(s => s.id === own && ALIVE.has(s.state));
    if (mine) {
      return mine.id;
    }
    // (a session a kernel started is that kernel's: it ends with it, so it is not shared)
    const running = all.filter(s => s.state === 'running' && s.owner !== 'kernel');
    running.sort((a, b) => b.createdAt.localeCompare(a.createdAt));
    return running[0]?.id;
  }
}
