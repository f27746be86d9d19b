/** What a WebSocket client may say to a shell in a job (sessions/terminals.ts) and ask of one (http/requests.ts). */
import { parseTerminalRequest } from '../http/requests';
import { parseClientMessage } from '../sessions/terminals';
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
