/**
 * A notebook opened from a cluster drive runs in its folder, as a local notebook does.
 *
 * jupyter_server cannot say where: it names a kernel's notebook by its path on this
 * machine's disk (JPY_SESSION_NAME), and a drive's path is not on it. So the page does it,
 * as Jupyter would have: each time such a notebook gets a remote kernel (started, changed,
 * restarted) it sends it one silent command that changes its working directory to the
 * notebook's folder in the cluster home (Python, bash and R kernels; others keep the
 * session's folder). A folder the node does not see leaves the kernel where it was.
 */
import type { ISessionContext } from '@jupyterlab/apputils';

import { CLUSTER_DRIVE_PREFIX, KERNEL_NAME_PREFIX } from '../common/routes';

/** `~/<folder>` of a notebook path of a cluster drive (`cluster-<profile>:<dir>/<name>`). */
export function driveNotebookFolder(path: string): string | undefined {
  const m = new RegExp(`^${CLUSTER_DRIVE_PREFIX}[A-Za-z0-9][A-Za-z0-9._-]{0,63}:(.*)$`).exec(path);
  if (!m) {
    return undefined;
  }
  const dir = m[1].split('/').filter(Boolean).slice(0, -1);
  return dir.some(d => d === '.' || d === '..') ? undefined : ['~', ...dir].join('/');
}

/** The silent command that takes a kernel of `language` to `folder` (`~/…`); none if unknown. */
export function chdirCode(language: string, folder: string): string | undefined {
  const rest = folder.replace(/^~\/?/, '');
  switch (language.toLowerCase()) {
    case 'python':
      return `import os as _rc_os; _rc_os.chdir(_rc_os.path.join(_rc_os.path.expanduser("~"), ${JSON.stringify(rest)})); del _rc_os`;
    case 'bash':
    case 'sh':
      return rest ? `cd ~/'${rest.replace(/'/g, "'\\''")}'` : 'cd ~';
    case 'r':
      return `setwd(file.path(path.expand("~"), ${JSON.stringify(rest)}))`;
    default:
      return undefined;
  }
}

/**
 * Follows one notebook's session: when a remote kernel of a drive notebook is (again)
 * ready, it is sent to the notebook's folder once. `path()` is the notebook's path now.
 */
export function followDriveNotebook(sessionContext: ISessionContext, path: () => string): void {
  let pending = true;
  sessionContext.kernelChanged.connect(() => (pending = true));
  sessionContext.statusChanged.connect((_, status) => {
    if (status === 'restarting' || status === 'autorestarting' || status === 'starting') {
      pending = true;
      return;
    }
    const kernel = sessionContext.session?.kernel;
    if (status !== 'idle' || !pending || !kernel) {
      return;
    }
    pending = false;
    const folder = driveNotebookFolder(path());
    if (!folder || !kernel.name.startsWith(KERNEL_NAME_PREFIX)) {
      return;
    }
    void kernel.spec.then(spec => {
      const code = spec && chdirCode(spec.language, folder);
      if (code && !kernel.isDisposed) {
        kernel.requestExecute({ code, silent: true, store_history: false, allow_stdin: false });
      }
    });
  });
}
