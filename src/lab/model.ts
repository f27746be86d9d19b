/**
 * The frontend's picture of the agent: sessions and open prompts, kept current by the
 * agent's event WebSocket (`remote-cluster/api/v1/events`); no polling. Reconnects with
 * backoff when the Jupyter server restarts.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { Signal, type ISignal } from '@lumino/signaling';

import { URL_NAMESPACE, type AgentEvent, type IPrompt, type ISession } from '../common/api';
import type { ConnectionState, IClusterConnectionState, IRemoteClusterModel } from './tokens';

export type { ConnectionState, IClusterConnectionState } from './tokens';

export class RemoteClusterModel implements IRemoteClusterModel {
  private readonly _sessions = new Map<string, ISession>();
  private readonly _sessionsChanged = new Signal<this, ISession | undefined>(this);
  private readonly _prompt = new Signal<this, IPrompt>(this);
  private readonly _promptClosed = new Signal<this, string>(this);
  private readonly _clusterMessage = new Signal<this, { cluster: string; state: string; message?: string }>(this);
  private readonly _connections = new Map<string, IClusterConnectionState>();
  private readonly _notice = new Signal<this, { level: 'error' | 'warning'; message: string }>(this);
  /** Notices shown already (the agent replays them on every reconnect). */
  private readonly _noticesSeen = new Set<string>();
  private _socket: WebSocket | null = null;
  private _retry = 0;
  private _disposed = false;
  private _state: ConnectionState = 'closed';

  constructor(private readonly settings: ServerConnection.ISettings = ServerConnection.makeSettings()) {}

  get sessions(): ISession[] {
    return [...this._sessions.values()].sort((a, b) => b.createdAt.localeCompare(a.createdAt));
  }

  session(id: string): ISession | undefined {
    return this._sessions.get(id);
  }

  get state(): ConnectionState {
    return this._state;
  }

  /** A session was added, changed or removed (undefined: many or unknown). */
  get sessionsChanged(): ISignal<this, ISession | undefined> {
    return this._sessionsChanged;
  }

  get prompt(): ISignal<this, IPrompt> {
    return this._prompt;
  }

  get promptClosed(): ISignal<this, string> {
    return this._promptClosed;
  }

  /** The agent's SSH connection to the cluster of `profile` (undefined: not used yet). */
  connection(profile: string): IClusterConnectionState | undefined {
    return this._connections.get(profile);
  }

  /** Something the user must know that belongs to no session; each at most once per page. */
  get notice(): ISignal<this, { level: 'error' | 'warning'; message: string }> {
    return this._notice;
  }

  /** Profiles whose cluster waits for the user to sign in (a code, a password, a host key). */
  get signInNeeded(): { cluster: string; message?: string }[] {
    return [...this._connections]
      .filter(([, c]) => c.state === 'sign-in-needed')
      .map(([cluster, c]) => ({ cluster, message: c.message }));
  }

  get clusterMessage(): ISignal<this, { cluster: string; state: string; message?: string }> {
    return this._clusterMessage;
  }

  /** Apply one event from the agent; public so tests can drive the model. */
  handle(event: AgentEvent): void {
    switch (event.type) {
      case 'session':
        this._sessions.set(event.session.id, event.session);
        this._sessionsChanged.emit(event.session);
        break;
      case 'session-removed':
        this._sessions.delete(event.id);
        this._sessionsChanged.emit(undefined);
        break;
      case 'prompt':
        this._prompt.emit(event.prompt);
        break;
      case 'prompt-closed':
        this._promptClosed.emit(event.id);
        break;
      case 'notice':
        if (!this._noticesSeen.has(`${event.id}\n${event.message}`)) {
          this._noticesSeen.add(`${event.id}\n${event.message}`);
          this._notice.emit({ level: event.level, message: event.message });
        }
        break;
      case 'connection':
        this._connections.set(event.cluster, { state: event.state, message: event.message });
        this._clusterMessage.emit({ cluster: event.cluster, state: event.state, message: event.message });
        // Session rows show their cluster's connection state.
        this._sessionsChanged.emit(undefined);
        break;
    }
  }

  connect(): void {
    if (this._disposed || this._socket) {
      return;
    }
    let url = URLExt.join(this.settings.wsUrl, URL_NAMESPACE, 'api', 'v1', 'events');
    const token = this.settings.token;
    if (token && this.settings.appendToken) {
      url += `?token=${encodeURIComponent(token)}`;
    }
    this._state = 'connecting';
    const ws = new this.settings.WebSocket(url);
    this._socket = ws;
    ws.onopen = () => {
      this._retry = 0;
      this._state = 'open';
      // The agent replays the current sessions first; start from a clean slate.
      this._sessions.clear();
      this._connections.clear();
      this._sessionsChanged.emit(undefined);
    };
    ws.onmessage = msg => {
      try {
        this.handle(JSON.parse(String(msg.data)) as AgentEvent);
      } catch (e) {
        console.warn('remote-cluster: bad event', e);
      }
    };
    ws.onclose = () => {
      this._socket = null;
      this._state = 'closed';
      if (!this._disposed) {
        const delay = Math.min(30_000, 1000 * 2 ** this._retry++);
        setTimeout(() => this.connect(), delay);
      }
    };
  }

  dispose(): void {
    this._disposed = true;
    this._socket?.close();
    Signal.clearData(this);
  }
}
