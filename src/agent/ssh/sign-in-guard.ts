/**
 * Limits failed interactive logins (one-time codes, passwords) per account and host.
 *
 * Sites lock accounts after a few failed one-time codes (pam_faillock, Duo, RSA). A tool
 * that retries on its own (a reconnect loop, a poll, a kernel's ZMQ reconnect) must never
 * be what locks a user out, so after `maxFailures` failed attempts within `windowMs` no
 * more are made for that account until the oldest of them is older than the window.
 * Attempts the user cancelled never reach the server and are not counted.
 */

export const DEFAULT_MAX_SIGN_IN_FAILURES = 3;
const HOUR_MS = 3_600_000;

export class SignInGuard {
  private readonly failures = new Map<string, number[]>();

  constructor(
    private readonly maxFailures = DEFAULT_MAX_SIGN_IN_FAILURES,
    private readonly windowMs = HOUR_MS,
    private readonly now: () => number = Date.now
  ) {}

  /** Why `account` may not be tried now (undefined: it may). */
  blocked(account: string): string | undefined {
    const recent = this.recent(account);
    if (recent.length < this.maxFailures) {
      return undefined;
    }
    const until = new Date(recent[recent.length - this.maxFailures] + this.windowMs);
    return (
      `${recent.length} sign-in attempts for ${account} failed within the last ${Math.round(this.windowMs / 60_000)} minutes; ` +
      `to keep the account from being locked, no more are made until ${until.toLocaleTimeString()}.`
    );
  }

  /** A one-time code or password sent for `account` was refused by the server. */
  failed(account: string): void {
    this.failures.set(account, [...this.recent(account), this.now()]);
  }

  private recent(account: string): number[] {
    const since = this.now() - this.windowMs;
    return (this.failures.get(account) ?? []).filter(t => t > since);
  }
}
