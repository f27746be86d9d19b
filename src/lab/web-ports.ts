/**
 * A web server a session's process starts (TensorBoard, Streamlit, http.server; the
 * helper finds it, webports.py) is said once, as it appears, with Open: "Port 6006 of job
 * 42 serves a web page (tensorboard --logdir runs)". Those a session already had when
 * this page first saw it (a reload) are in the sidebar, not announced again.
 */
import type { TranslationBundle } from '@jupyterlab/translation';

import type { ISession, IServedPort } from '../common/api';

export class WebPortNotices {
  private readonly sessions = new Set<string>();
  /** `${session}:${port}` of every web port seen, said or not. */
  private readonly ports = new Set<string>();

  constructor(private readonly say: (s: ISession, port: IServedPort) => void) {}

  /** Port `port` of session `id` needs no announcement (the user just opened it). */
  seen(id: string, port: number): void {
    this.ports.add(`${id}:${port}`);
  }

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

export interface IOpenPortDeps {
  sessions: () => readonly ISession[];
  /** Which of several running sessions (undefined: the user cancelled). */
  pickSession: (running: ISession[]) => Promise<ISession | undefined>;
  /** The port number the user types (undefined: cancelled). */
  askPort: (s: ISession) => Promise<number | undefined>;
  /** POST api/v1/sessions/<id>/web-ports: the served port, or the helper's refusal thrown. */
  post: (s: ISession, port: number) => Promise<IServedPort>;
  /** Opens the panel of `port` of `s` (s's ports include it). */
  open: (s: ISession, port: number) => void;
  notifyError: (message: string) => void;
  trans: TranslationBundle;
}

/**
 * "Open a Port of the Session…": a web server of the session asked for by number (one the
 * scan has not offered yet, or not as fast as wanted), opened as a panel. The helper
 * decides whether it may be reached (webports.py); its refusal is said as it words it.
 */
export async function openPortByNumber(args: { session?: string; port?: number }, d: IOpenPortDeps): Promise<void> {
  const running = d.sessions().filter(s => s.state === 'running' && (!args.session || s.id === args.session));
  if (running.length === 0) {
    d.notifyError(
      args.session
        ? d.trans.__('Session %1 is not running: it serves no ports.', args.session)
        : d.trans.__('No session is running: start one from the Launcher first.')
    );
    return;
  }
  const s = running.length === 1 ? running[0] : await d.pickSession(running);
  if (!s) {
    return;
  }
  const port = args.port ?? (await d.askPort(s));
  if (port === undefined) {
    return;
  }
  let entry: IServedPort;
  try {
    entry = await d.post(s, port);
  } catch (e) {
    d.notifyError(d.trans.__('Could not open port %1: %2', port, (e as Error).message));
    return;
  }
  d.open({ ...s, httpPorts: [...(s.httpPorts ?? []).filter(p => p.port !== port), entry] }, port);
}
