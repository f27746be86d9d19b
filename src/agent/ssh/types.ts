/**
 * The public types of the ssh/ layer and its error, apart from the class so that the
 * helpers (auth.ts, exec.ts, sftp.ts, node-connection.ts, ...) use them without importing
 * connection.ts, which re-exports all of them.
 */
import type { IPrompt, IPromptAnswer, ISshTarget } from '../../common/api';
import type { SignInGuard } from './sign-in-guard';

export type ConnectionState = 'connecting' | 'connected' | 'closed';

/**
 * Asks the user. `signal` is aborted when the question became moot (the connection
 * attempt failed, timed out or was closed): the UI should withdraw the dialog.
 */
export type PromptFn = (prompt: Omit<IPrompt, 'id'>, signal: AbortSignal) => Promise<IPromptAnswer>;

export interface IConnectionLogger {
  debug?(message: string): void;
  info?(message: string): void;
  warn?(message: string): void;
  error?(message: string): void;
}

export interface IClusterConnectionOptions {
  target: ISshTarget;
  /** Asks the user (passphrase, password, keyboard-interactive, unknown host key). */
  prompt: PromptFn;
  logger?: IConnectionLogger;
  /** Cluster/profile name put in prompts and messages (default: target.host). */
  cluster?: string;
  /** Local user name (default: os.userInfo().username). */
  localUser?: string;
  /** Local home directory (default: os.homedir()). */
  homeDir?: string;
  /** ssh-agent socket; default $SSH_AUTH_SOCK; null: never use an agent. */
  agentSocket?: string | null;
  /** Time the servers get to answer while connecting, not counting time spent in prompts (default: ConnectTimeout or 20 s). */
  connectTimeoutMs?: number;
  /** Override ServerAliveInterval (ms) / ServerAliveCountMax (default 15 s x 4). */
  keepaliveIntervalMs?: number;
  keepaliveCountMax?: number;
  /** Keep a pty session open on every hop (TCP_NODELAY); default true. */
  keepPtySession?: boolean;
  /** Concurrent exec sessions (OpenSSH's MaxSessions is 10 per connection); default 6. */
  maxExecSessions?: number;
  onStateChange?: (state: ConnectionState, message?: string) => void;
  /**
   * Whether a person can answer prompts now (a JupyterLab is connected); default yes.
   * Without one, a login that needs a person stops before the server is sent anything
   * (code `sign-in-needed`): no empty answers, no failed attempt in the server's log.
   */
  canAsk?: () => boolean;
  /** Caps failed one-time codes and passwords per account (code `sign-in-paused`). */
  signInGuard?: SignInGuard;
}

export interface IExecOptions {
  /** Written to the command's stdin, then EOF (EOF right away without it). */
  stdin?: string | Buffer;
  /** Kill the command (signal KILL, channel closed) and reject after this long. */
  timeoutMs?: number;
  /** Keep at most this many bytes of each of stdout and stderr (default 8 MiB). */
  maxOutputBytes?: number;
}

export interface IExecResult {
  /** Exit status; null if the command was killed by a signal (then `signal`, e.g. `SIGKILL`). */
  code: number | null;
  signal?: string;
  stdout: string;
  stderr: string;
  /** True if stdout or stderr exceeded maxOutputBytes and was cut. */
  truncated?: boolean;
}

export interface IHopInfo {
  alias: string;
  hostName: string;
  port: number;
  user: string;
  /** How messages name the hop, e.g. `login (198.18.1.2)`. */
  label: string;
}

/** An error for the user: `message` is one sentence naming the hop. */
export class SshConnectionError extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly hop?: string
  ) {
    super(message);
    this.name = 'SshConnectionError';
  }
}
