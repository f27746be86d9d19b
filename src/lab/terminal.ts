/**
 * A terminal in a running job, shown by JupyterLab's own terminal widget: this is its
 * connection (`Terminal.ITerminalConnection`) to a shell the session's helper holds on
 * the node (docs/remote-helper.md, "Terminals"), or one the agent holds on a cluster's
 * login node (which ends with the link). The job's shell outlives a drop of the link: the connection
 * attaches again by itself and asks only for what it missed (the shell's byte count of
 * the last output it got), so nothing printed meanwhile is lost and nothing is shown twice.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection, type Terminal as TerminalNS } from '@jupyterlab/services';
import { Signal, type ISignal } from '@lumino/signaling';

import { URL_NAMESPACE } from '../common/routes';

/** The agent's close codes (src/agent/sessions/terminals.ts). */
const CLOSE_ENDED = 4000;
/** Reconnect delays: quick first (a short drop), then at most every 10 s. */
const RETRY_MS = [500, 1000, 2000, 5000, 10_000];
/** Give up attaching again after this long: the job has likely ended. */
const GIVE_UP_MS = 15 * 60_000;
/** Typing kept while the link is down (sent once attached again), at most. */
const MAX_QUEUED_CHARS = 64 * 1024;

export interface IRemoteTerminalOptions {
  /** Its WebSocket under the namespace: `terminals/<session>/<id>` or `login-terminals/<profile>/<id>`. */
  route: string;
  /** Its name in the tab ("job 42 · t1"). */
  name: string;
  serverSettings?: ServerConnection.ISettings;
  /** Ends the shell (DELETE through the agent). */
  shutdown: () => Promise<void>;
}

export class RemoteTerminalConnection implements TerminalNS.ITerminalConnection {
  readonly serverSettings: ServerConnection.ISettings;
  private _status: TerminalNS.ConnectionStatus = 'connecting';
  private readonly _messageReceived = new Signal<this, TerminalNS.IMessage>(this);
  private readonly _statusChanged = new Signal<this, TerminalNS.ConnectionStatus>(this);
  private readonly _disposed = new Signal<this, void>(this);
  private _socket: WebSocket | null = null;
  /** The shell's byte count at the end of the last output received (undefined: none yet). */
  private _offset: number | undefined;
  private _queued: string[] = [];
  private _retry = 0;
  private _lostAt = 0;
  private _timer: ReturnType<typeof setTimeout> | undefined;
  private _isDisposed = false;

  constructor(private readonly options: IRemoteTerminalOptions) {
    this.serverSettings = options.serverSettings ?? ServerConnection.makeSettings();
    this.connect();
  }

  get name(): string {
    return this.options.name;
  }

  get model(): TerminalNS.IModel {
    return { name: this.options.name };
  }

  get messageReceived(): ISignal<this, TerminalNS.IMessage> {
    return this._messageReceived;
  }

  get connectionStatus(): TerminalNS.ConnectionStatus {
    return this._status;
  }

  get connectionStatusChanged(): ISignal<this, TerminalNS.ConnectionStatus> {
    return this._statusChanged;
  }

  get disposed(): ISignal<this, void> {
    return this._disposed;
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  send(message: TerminalNS.IMessage): void {
    const data = JSON.stringify([message.type, ...(message.content ?? [])]);
    if (this._socket?.readyState === WebSocket.OPEN) {
      this._socket.send(data);
    } else if (message.type === 'stdin' && this._queued.join('').length < MAX_QUEUED_CHARS) {
      this._queued.push(data); // typed while the link is down: sent once attached again
    }
  }

  async reconnect(): Promise<void> {
    this._retry = 0;
    this.close();
    this.connect();
  }

  async shutdown(): Promise<void> {
    await this.options.shutdown();
    this.dispose();
  }

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._isDisposed = true;
    clearTimeout(this._timer);
    this.close();
    this._disposed.emit();
    Signal.clearData(this);
  }

  private setStatus(status: TerminalNS.ConnectionStatus): void {
    if (status !== this._status) {
      this._status = status;
      this._statusChanged.emit(status);
    }
  }

  private url(): string {
    const url = URLExt.join(this.serverSettings.wsUrl, URL_NAMESPACE, this.options.route);
    const query: string[] = [];
    if (this._offset !== undefined) {
      query.push(`from=${this._offset}`);
    }
    const token = this.serverSettings.token;
    if (token && this.serverSettings.appendToken) {
      query.push(`token=${encodeURIComponent(token)}`);
    }
    return query.length ? `${url}?${query.join('&')}` : url;
  }

  private connect(): void {
    if (this._isDisposed) {
      return;
    }
    this.setStatus('connecting');
    const ws = new this.serverSettings.WebSocket(this.url());
    this._socket = ws;
    ws.onmessage = event => {
      let msg: unknown;
      try {
        msg = JSON.parse(String(event.data));
      } catch {
        return;
      }
      if (!Array.isArray(msg) || typeof msg[0] !== 'string') {
        return;
      }
      if (msg[0] === 'setup') {
        this.attached(); // the agent reached the shell (terminado's first message)
        return;
      }
      const [type, text, offset] = msg as [TerminalNS.MessageType, unknown, unknown];
      if (type === 'stdout' && typeof offset === 'number') {
        this._offset = offset;
      }
      this._messageReceived.emit({ type, content: type === 'stdout' ? [String(text)] : msg.slice(1) });
    };
    ws.onclose = event => {
      if (ws !== this._socket || this._isDisposed) {
        return;
      }
      this._socket = null;
      clearTimeout(this._timer);
      if (event.code === CLOSE_ENDED) {
        this.ended(event.reason);
        return;
      }
      this._lostAt ||= Date.now();
      if (Date.now() - this._lostAt > GIVE_UP_MS) {
        this.ended(event.reason || 'the link to the job did not come back');
        return;
      }
      this.setStatus('connecting');
      const delay = RETRY_MS[Math.min(this._retry++, RETRY_MS.length - 1)];
      this._timer = setTimeout(() => this.connect(), delay);
    };
  }

  private attached(): void {
    clearTimeout(this._timer);
    this._retry = 0;
    this._lostAt = 0;
    this.setStatus('connected');
    const queued = this._queued;
    this._queued = [];
    queued.forEach(data => this._socket?.send(data));
  }

  private ended(reason: string): void {
    if (reason) {
      this._messageReceived.emit({ type: 'stdout', content: [`\r\n[${reason}]\r\n`] });
    }
    this.setStatus('disconnected');
  }

  private close(): void {
    const ws = this._socket;
    this._socket = null;
    if (ws) {
      ws.onclose = ws.onmessage = ws.onopen = null;
      ws.close();
    }
  }
}
