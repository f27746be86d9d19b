/**
 * The connection of a terminal in a job (terminal.ts), against a scripted WebSocket: it
 * is connected once the agent reached the shell, attaches again after a drop asking only
 * for what it missed, keeps what was typed meanwhile, and stops for good when the agent
 * says the shell is gone.
 */
import { ServerConnection, type Terminal } from '@jupyterlab/services';

import { RemoteTerminalConnection } from '../terminal';

class FakeSocket {
  static all: FakeSocket[] = [];
  static OPEN = 1;
  readyState = 0;
  sent: string[] = [];
  onopen: (() => void) | null = null;
  onmessage: ((e: { data: string }) => void) | null = null;
  onclose: ((e: { code: number; reason: string }) => void) | null = null;
  constructor(readonly url: string) {
    FakeSocket.all.push(this);
  }
  send(data: string): void {
    this.sent.push(data);
  }
  close(): void {
    this.readyState = 3;
  }
  /** The agent's side. */
  open(): void {
    this.readyState = 1;
    this.onopen?.();
  }
  say(...msg: unknown[]): void {
    this.onmessage?.({ data: JSON.stringify(msg) });
  }
  drop(code: number, reason = ''): void {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
}

function connection(): { c: RemoteTerminalConnection; got: Terminal.IMessage[]; states: string[] } {
  FakeSocket.all = [];
  (globalThis as any).WebSocket = FakeSocket;
  const serverSettings = ServerConnection.makeSettings({
    wsUrl: 'ws://lab/',
    token: 'tok',
    appendToken: true,
    WebSocket: FakeSocket as any
  });
  const c = new RemoteTerminalConnection({
    route: 'terminals/ab12cd/t1',
    name: 'job 42 · t1',
    serverSettings,
    shutdown: async () => undefined
  });
  const got: Terminal.IMessage[] = [];
  const states: string[] = [];
  c.messageReceived.connect((_, m) => void got.push(m));
  c.connectionStatusChanged.connect((_, s) => void states.push(s));
  return { c, got, states };
}

describe('RemoteTerminalConnection', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  it('attaches, and after a drop attaches again from the last output it got, sending what was typed meanwhile', () => {
    const { c, got, states } = connection();
    const first = FakeSocket.all[0];
    expect(first.url).toBe('ws://lab/remote-cluster/terminals/ab12cd/t1?token=tok');
    first.open();
    expect(c.connectionStatus).toBe('connecting'); // not before the agent reached the shell
    first.say('setup', {});
    expect(c.connectionStatus).toBe('connected');
    first.say('stdout', 'hello\r\n', 120);
    expect(got).toEqual([{ type: 'stdout', content: ['hello\r\n'] }]);
    c.send({ type: 'stdin', content: ['ls\r'] });
    expect(first.sent).toEqual(['["stdin","ls\\r"]']);

    first.drop(4001, 'the link to the node broke');
    expect(c.connectionStatus).toBe('connecting');
    c.send({ type: 'stdin', content: ['pwd\r'] }); // typed while the link is down
    c.send({ type: 'set_size', content: [30, 100, 0, 0] }); // (a size is sent again anyway)
    jest.advanceTimersByTime(500);
    const second = FakeSocket.all[1];
    expect(second.url).toBe('ws://lab/remote-cluster/terminals/ab12cd/t1?from=120&token=tok');
    second.open();
    second.say('setup', {});
    expect(second.sent).toEqual(['["stdin","pwd\\r"]']);
    second.say('stdout', 'more\r\n', 126);
    expect(got.map(m => m.content![0])).toEqual(['hello\r\n', 'more\r\n']);
    expect(states).toEqual(['connected', 'connecting', 'connected']);
    c.dispose();
  });

  it('retries more slowly while the link stays down', () => {
    connection();
    for (const [i, wait] of [500, 1000, 2000, 5000, 10_000, 10_000].entries()) {
      FakeSocket.all[i].drop(1006);
      jest.advanceTimersByTime(wait - 1);
      expect(FakeSocket.all).toHaveLength(i + 1);
      jest.advanceTimersByTime(1);
      expect(FakeSocket.all).toHaveLength(i + 2);
    }
  });

  it('stops for good, saying why, when the shell or its session is gone', () => {
    const { c, got } = connection();
    FakeSocket.all[0].open();
    FakeSocket.all[0].drop(4000, 'No session ab12cd.');
    expect(c.connectionStatus).toBe('disconnected');
    expect(got).toEqual([{ type: 'stdout', content: ['\r\n[No session ab12cd.]\r\n'] }]);
    jest.advanceTimersByTime(60_000);
    expect(FakeSocket.all).toHaveLength(1);
  });
});
