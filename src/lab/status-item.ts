/**
 * The status bar's word on the current notebook's or console's remote session: its job and
 * time left, and its cluster link when that is not up ("reconnecting", "sign-in needed").
 * Shown only while the current widget's kernel is a session's; a click opens the sidebar.
 */
import type { TranslationBundle } from '@jupyterlab/translation';
import { Widget } from '@lumino/widgets';

import type { ISession } from '../common/api';
import { widgetsOfSession } from './allocation';
import { formatDuration, timeLeftNow } from './format';
import type { IClusterConnectionState, IRemoteClusterModel } from './tokens';

/** The item's text for session `s` over link `conn`. */
export function describeStatus(
  s: ISession,
  conn: IClusterConnectionState | undefined,
  trans: TranslationBundle,
  now = Date.now()
): string {
  const job = s.jobId ? trans.__('job %1', s.jobId) : s.cluster;
  const parts = [job];
  if (s.state === 'running') {
    const left = timeLeftNow(s, now);
    if (left !== undefined) {
      parts.push(trans.__('%1 left', formatDuration(left)));
    }
  } else {
    const said: Record<Exclude<ISession['state'], 'running'>, string> = {
      submitting: trans.__('submitting'),
      queued: trans.__('queued'),
      starting: trans.__('starting'),
      ended: trans.__('ended')
    };
    parts.push(said[s.state]);
  }
  if (conn?.state === 'sign-in-needed') {
    parts.push(trans.__('sign-in needed'));
  } else if (conn?.state === 'reconnecting' || conn?.state === 'closed') {
    parts.push(conn.state === 'closed' ? trans.__('disconnected') : trans.__('reconnecting'));
  }
  return parts.join(' · ');
}

export class SessionStatusItem extends Widget {
  private _session: ISession | undefined;

  constructor(
    private readonly model: IRemoteClusterModel,
    private readonly trans: TranslationBundle,
    /** The main area's current widget. */
    private readonly current: () => unknown,
    onClick: () => void
  ) {
    super();
    this.addClass('jp-RemoteCluster-statusItem');
    this.node.setAttribute('role', 'button');
    this.node.tabIndex = 0;
    this.node.addEventListener('click', onClick);
    this.node.addEventListener('keydown', e => {
      if (e.key === 'Enter' || e.key === ' ') {
        onClick();
      }
    });
  }

  /** The current widget's session, if its kernel is one's. */
  get session(): ISession | undefined {
    return this._session;
  }

  /** Follows the current widget, its session and the clock; true when the session changed. */
  refresh(): boolean {
    const before = this._session?.id;
    const w = this.current();
    this._session = w ? this.model.sessions.find(s => widgetsOfSession([w], s).length > 0) : undefined;
    const s = this._session;
    this.node.textContent = s ? describeStatus(s, this.model.connection(s.profile), this.trans) : '';
    this.node.title = s ? this.trans.__('Remote session on %1: show it in the sidebar', s.cluster) : '';
    this.node.dataset.state = s?.state ?? '';
    return before !== s?.id;
  }
}
