/**
 * Checks on the login node before a job is queued, in the submission's first round trip:
 * the remote Python and the working directory. What they miss is a warning, never a
 * refusal: compute nodes may see other paths (node-local software, a module the setup
 * lines load), so only the job can tell for sure (its script says so in one sentence,
 * validate.ts: pythonCheck). A warning now saves a wait in the queue for a likely failure.
 */
import type { IClusterProfile } from '../../common/api';
import { shQuote } from '../schedulers/shell';

const MISSING = 'jrc-check-missing:';

/** A path for the remote shell: `~/x` as "$HOME"/x (quoted, the tilde would stay literal). */
function shPath(path: string): string {
  return path === '~' ? '"$HOME"' : path.startsWith('~/') ? `"$HOME"/${shQuote(path.slice(2))}` : shQuote(path);
}

/** The Python to look for on the login node, or undefined when the login node cannot tell. */
function pythonToCheck(profile: IClusterProfile): string | undefined {
  if (profile.container) {
    return undefined; // the container's Python, not the login node's
  }
  const byName = !profile.python.includes('/');
  // a bare name the setup lines may put on PATH (module load, conda activate)
  return byName && (profile.setup ?? []).some(l => l.trim() && !l.trim().startsWith('#')) ? undefined : profile.python;
}

/** Shell lines printing one `jrc-check-missing: <what>` line per thing not found; never fails. */
export function loginChecksCommand(profile: IClusterProfile): string {
  const checks: string[] = [];
  const python = pythonToCheck(profile);
  if (python) {
    checks.push(`{ command -v ${shPath(python)} >/dev/null 2>&1 || echo '${MISSING} python'; }`);
  }
  if (profile.workdir) {
    checks.push(`{ test -d ${shPath(profile.workdir)} || echo '${MISSING} workdir'; }`);
  }
  return checks.join('; ');
}

/** The warnings the checks' output means, in the user's words. */
export function loginCheckWarnings(stdout: string, profile: IClusterProfile): string[] {
  const missing = new Set(
    stdout
      .split('\n')
      .filter(l => l.startsWith(MISSING))
      .map(l => l.slice(MISSING.length).trim())
  );
  const out: string[] = [];
  if (missing.has('python')) {
    out.push(
      `The remote Python ${profile.python} was not found on the login node; the job looks for it on its node ` +
        '(which may see other paths) and ends at once, saying so, if it is not there either.'
    );
  }
  if (missing.has('workdir')) {
    out.push(
      `The working directory ${profile.workdir} does not exist on the login node; the session fails to start ` +
        'if its node does not have it either.'
    );
  }
  return out;
}
