/**
 * A web server a session's process starts (TensorBoard, Streamlit, http.server; the
 * helper finds it, webports.py) is said once, as it appears, with Open: "Port 6006 of job
 * 42 serves a web page (tensorboard --logdir runs)". Those a session already had when
 * this page first saw it (a reload) are in the sidebar, not announced again.
 */
import type { ISession, IServedPort } from '../common/api';

export class WebPortNotices {
  private readonly sessions = new Set<string>();
  /** `${session}:${port}` of every web port seen, said or not. */
  private readonly ports = new Set<string>();

  constructor(private readonly say: (s: ISession, port: IServedPort) => void) {}

  /** The sessions as they are now: say the web ports that appeared since the last call. */
  check(sessions: readonly ISession[]): void {
    for (const s of sessions) {
      const known = this.sessions.has(s.id);
      this.sessions.add(s.id);
      for (const p of (s.httpPorts ?? []).filter(x => x.name === 'web')) {
        const key = `${s.id}:${p.port}`;
        if (!this.ports.has(key)) {
          this.ports.add(key);
          if (known && s.state === 'running') {
            this.say(s, p);
          }
        }
      }
    }
  }
}
