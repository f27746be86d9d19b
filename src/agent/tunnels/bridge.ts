/**
 * Splice a local socket and an SSH channel together, keeping half-close semantics:
 * when one side finishes writing, the other still delivers its reply (a naive
 * `a.pipe(b).pipe(a)` loses it, see notes/testbed.md). Errors on either side destroy both.
 */
import type { Duplex } from 'node:stream';

/**
 * Calls `fn` once `stream` has closed, also when it closed before anyone listened: a
 * relayed stream may be closed by the far end between the relay's "200" and its user
 * attaching (a server that refuses at once), and a 'close' already emitted never comes
 * again, which left a proxied request waiting for ever.
 */
export function whenClosed(stream: Duplex, fn: () => void): void {
  if (stream.closed) {
    process.nextTick(fn);
  } else {
    stream.once('close', fn);
  }
}

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
  whenClosed(local, () => {
    remote.destroy();
    done();
  });
  whenClosed(remote, () => {
    local.destroy();
    done();
  });
  // pipe() ends the destination when the source ends: that is the half-close we want,
  // provided neither side auto-ends its writable half (allowHalfOpen on the server).
  local.pipe(remote);
  remote.pipe(local);
}
