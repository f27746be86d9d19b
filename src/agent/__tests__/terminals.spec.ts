/** What a WebSocket client may say to a shell in a job (sessions/terminals.ts) and ask of one (http/requests.ts). */
import { EventEmitter } from 'node:events';
import { Duplex } from 'node:stream';

import type { WebSocket } from 'ws';

import { parseTerminalRequest } from '../http/requests';
import { CLOSE_ENDED, CLOSE_LOST, carry, parseClientMessage } from '../sessions/terminals';
import { refusal } from './helpers/adapters';

describe('terminal messages from a client', () => {
  it('carries typing and sizes, re-encoded, and nothing else', () => {
    expect(parseClientMessage('["stdin", "ls\\r"]')).toBe('["stdin","ls\\r"]');
    expect(parseClientMessage('["set_size", 30, 100, 600, 800]')).toBe('["set_size",30,100]');
    for (const bad of [
      'not json',
      '{"stdin": "x"}',
      '["stdout", "fake output"]',
      '["disconnect", 1]',
      '["stdin", 7]',
      '["set_size", 0, 80]',
      '["set_size", 30, 1001]',
      '["set_size", "30", 80]',
      `["stdin", "${'x'.repeat(1 << 20)}"]`
    ]) {
      expect(parseClientMessage(bad)).toBeUndefined();
    }
  });

  it('a new terminal: its size within bounds, or the default', () => {
    expect(parseTerminalRequest({})).toEqual({});
    expect(parseTerminalRequest({ rows: 30, cols: 100 })).toEqual({ rows: 30, cols: 100 });
    expect(refusal(() => parseTerminalRequest({ rows: 0 })).field).toBe('rows');
    expect(refusal(() => parseTerminalRequest({ cols: 2.5 })).field).toBe('cols');
    expect(refusal(() => parseTerminalRequest([])).field).toBe('body');
  });
});

/** The helper's end of a terminal's stream: takes its time to accept each write. */
function slowStream(): { stream: Duplex; received: string[]; toClient: (line: string) => void } {
  const received: string[] = [];
  const stream = new Duplex({
    read() {},
    write(chunk, _enc, cb) {
      setTimeout(() => {
        received.push(chunk.toString());
        cb();
      }, 20);
    }
  });
  return { stream, received, toClient: line => void stream.push(line + '\n') };
}

class FakeWs extends EventEmitter {
  readonly OPEN = 1;
  readyState = 1;
  bufferedAmount = 0;
  sent: string[] = [];
  closed?: number;
  send(data: string): void {
    this.sent.push(data);
  }
  close(code: number): void {
    this.closed = code;
    this.readyState = 3;
  }
  terminate(): void {}
}

describe('carrying a terminal between a client and its shell', () => {
  it('what the client typed just before it left still reaches the shell', async () => {
    const { stream, received } = slowStream();
    const ws = new FakeWs();
    carry(ws as unknown as WebSocket, stream, Buffer.alloc(0));
    ws.emit('message', Buffer.from('["stdin", "make\\r"]'), false);
    ws.emit('message', Buffer.from('["stdin", "exit\\r"]'), false);
    ws.emit('close');
    await Promise.race([new Promise(resolve => stream.once('finish', resolve)), new Promise(r => setTimeout(r, 2000))]);
    expect(received).toEqual(['["stdin","make\\r"]\n', '["stdin","exit\\r"]\n']);
  });

  it("passes the shell's lines on, and says whether to attach again when the stream ends", async () => {
    for (const [lines, code] of [
      [['["stdout", "x", 1]'], CLOSE_LOST],
      [['["stdout", "x", 1]', '["disconnect", 0]'], CLOSE_ENDED]
    ] as const) {
      const { stream, toClient } = slowStream();
      const ws = new FakeWs();
      carry(ws as unknown as WebSocket, stream, Buffer.alloc(0));
      lines.forEach(toClient);
      await new Promise(resolve => setTimeout(resolve, 10));
      stream.destroy(); // (the link broke, or the helper ended it after the disconnect)
      await new Promise(resolve => setTimeout(resolve, 10));
      expect(ws.sent).toEqual(lines);
      expect(ws.closed).toBe(code);
    }
  });
});
