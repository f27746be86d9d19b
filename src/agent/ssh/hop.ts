/**
 * One hop of a ClusterConnection (an ssh2 Client on the way to the cluster): its state,
 * the connect timer that stops while the user answers a prompt, how messages name it,
 * and the little of the connection that auth.ts and host-key-check.ts use (IHopContext).
 * Here so that the class and those helpers share it without importing each other.
 */
import type { Client, ClientChannel } from 'ssh2';

import type { IPrompt, IPromptAnswer } from '../../common/api';
import type { IResolvedHost } from './ssh-config';
import type { IConnectionLogger } from './types';

export interface IHop {
  cfg: IResolvedHost;
  label: string;
  client: Client;
  keeper?: ClientChannel;
  /** Why the last failure happened, in words (set before ssh2 reports a generic error). */
  failure?: string;
  failureCode?: string;
  /** Last error ssh2 reported after connecting (e.g. keepalive timeout). */
  lastError?: string;
  /** Host keys accepted in this connection (rekeys present them again). */
  accepted: Buffer[];
  /** known_hosts append waiting for the handshake to complete. */
  pendingAppend?: { file: string; name: string; port: number; keyType: string; key: Buffer; hash: boolean };
  appendDone?: Promise<void>;
  timer?: PausableTimer;
  /** Aborted when connecting this hop ends: pending prompts are moot then. */
  abort: AbortController;
  /** A question could not be asked: nobody is there (the failure is `sign-in-needed`). */
  personNeeded?: boolean;
}

/** What auth.ts and host-key-check.ts need of their ClusterConnection. */
export interface IHopContext {
  readonly log: Required<IConnectionLogger>;
  /** Whether a person can answer prompts now (IClusterConnectionOptions.canAsk). */
  canAsk(): boolean;
  /**
   * Asks the user a question about `hop`. `{ cancel: true }` when the question became moot
   * or nobody can answer (then `hop.personNeeded` is set).
   */
  ask(hop: IHop, p: Omit<IPrompt, 'id' | 'cluster'>): Promise<IPromptAnswer>;
}

/** How messages name a hop, e.g. `login (198.18.1.2)`. */
export function hopLabel(cfg: IResolvedHost): string {
  const addr = cfg.port === 22 ? cfg.hostName : `${cfg.hostName}:${cfg.port}`;
  return cfg.alias === cfg.hostName ? addr : `${cfg.alias} (${addr})`;
}

/** A timer that does not run while the user is answering a prompt. */
export class PausableTimer {
  private timer?: NodeJS.Timeout;
  private remaining: number;
  private startedAt = 0;
  private paused = 0;
  constructor(
    ms: number,
    private readonly onExpire: () => void
  ) {
    this.remaining = ms;
    if (ms > 0) {
      this.run();
    }
  }
  private run(): void {
    this.startedAt = Date.now();
    this.timer = setTimeout(this.onExpire, this.remaining);
  }
  pause(): void {
    if (this.paused++ === 0 && this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
      this.remaining = Math.max(0, this.remaining - (Date.now() - this.startedAt));
    }
  }
  resume(): void {
    if (this.paused > 0 && --this.paused === 0 && this.remaining > 0) {
      // Give the server a fresh share of time after a human answered.
      this.remaining = Math.max(this.remaining, 5000);
      this.run();
    }
  }
  clear(): void {
    if (this.timer) {
      clearTimeout(this.timer);
    }
    this.timer = undefined;
    this.remaining = 0;
  }
}

export function formatSeconds(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${Math.round(ms / 100) / 10} s`;
}

/** A failed connect of a hop, in one sentence for the user. */
export function describeError(
  err: Error & { level?: string; code?: string },
  label: string,
  cfg: IResolvedHost
): string {
  const addr = `${cfg.hostName}:${cfg.port}`;
  switch (err.code) {
    case 'ECONNREFUSED':
      return `Could not connect to ${label}: connection refused at ${addr}.`;
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return `Could not connect to ${label}: ${addr} is unreachable from here.`;
    case 'ETIMEDOUT':
      return `Could not connect to ${label}: ${addr} did not answer.`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `Could not connect to ${label}: the host name ${cfg.hostName} cannot be resolved.`;
    case 'ECONNRESET':
      return `The connection to ${label} was reset.`;
    default:
      break;
  }
  if (err.level === 'client-authentication') {
    return `Authentication failed for ${cfg.user}@${label}.`;
  }
  if (err.level === 'handshake' || err.level === 'protocol') {
    return `SSH handshake with ${label} failed: ${err.message}.`;
  }
  return `SSH connection to ${label} failed: ${err.message}.`;
}

/**
 * Drops a client's transport at once. Client.destroy() does nothing once the socket
 * was half-closed (e.g. by ssh2's own end() after failed authentication), and a
 * server that never reads keeps such a socket open forever; destroy it directly.
 */
export function destroyClient(client: Client): void {
  try {
    client.destroy();
  } catch {
    // already gone
  }
  const sock = (client as unknown as { _sock?: { destroy?: () => void } })._sock;
  try {
    sock?.destroy?.();
  } catch {
    // already gone
  }
}
