/**
 * Cancel commands that succeed when the job is already gone. The session manager asks the
 * helper to shut down before it cancels, so the job often ends a moment before qdel / bkill /
 * condor_rm arrive, and those refuse a finished job with an error exit ("Job has finished",
 * "No matching job found"). That is not a failure to cancel: the job is not running.
 */
import { shQuote } from './shell';

/**
 * `command`, with its exit status turned into 0 when its output matches `gone` (an extended
 * regular expression for the scheduler's "no such job / already finished" messages). Any
 * other failure keeps its exit status and its output on stderr.
 */
export function cancelTolerating(command: string, gone: string): string {
  return (
    `out=$(${command} 2>&1); c=$?; printf '%s\\n' "$out"; ` +
    `[ "$c" -eq 0 ] || printf '%s\\n' "$out" | grep -Eq ${shQuote(gone)} || { printf '%s\\n' "$out" >&2; exit "$c"; }`
  );
}
