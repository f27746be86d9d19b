/**
 * Splice a local socket and an SSH channel together, keeping half-close semantics:
 * when one side finishes writing, the other still delivers its reply (a naive
 * `a.pipe(b).pipe(a)` loses it, see notes/testbed.md). Errors on either side destroy both.
 */
import type { Duplex } from 'node:stream';

export function bridge(local: Duplex, remote: Duplex, onClose?: () => void): void {
  let closed = 0;
  const done = (): void => {
    closed += 1;
    if (closed === 2) {
      onClose?.();
    }
  };
  const fail = (): void => {
    local.destroy();
    remote.destroy();
  };
  local.on('error', fail);
  remote.on('error', fail);
  local.once('close', () => {
    remote.destroy();
    done();
  });
  remote.once('close', () => {
    local.destroy();
    done();
  });
  // pipe() ends the destination when the source ends: that is the half-close we want,
  // provided neither side auto-ends its writable half (allowHalfOpen on the server).
  local.pipe(remote);
  remote.pipe(local);
}
