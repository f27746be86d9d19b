import type { KernelMessage } from '@jupyterlab/services';

import { EARLIER_OUTPUT_MAX, EarlierOutputLog, isEarlierOutput } from '../earlier-output';

const PAGE_START = Date.parse('2026-12-06T10:00:00Z');

function iopub(
  type: string,
  content: Record<string, unknown>,
  parent: { session?: string; date?: string },
  msgId = `m-${Math.random()}`
): KernelMessage.IIOPubMessage {
  return {
    channel: 'iopub',
    header: { msg_id: msgId, msg_type: type, session: 'kernel', username: 'k', date: '', version: '5.3' },
    parent_header: parent,
    metadata: {},
    content
  } as unknown as KernelMessage.IIOPubMessage;
}

const before = { session: 'earlier-page', date: '2026-12-06T09:59:00Z' };
const stream = (text: string, parent: { session?: string; date?: string } = before, id?: string) =>
  iopub('stream', { name: 'stdout', text }, parent, id);

describe('isEarlierOutput', () => {
  it('is output for a request another client sent before the page started', () => {
    expect(isEarlierOutput(stream('1\n'), 'this-page', PAGE_START)).toBe(true);
    expect(isEarlierOutput(iopub('execute_result', { data: {} }, before), 'this-page', PAGE_START)).toBe(true);
    expect(isEarlierOutput(iopub('error', { ename: 'E' }, before), 'this-page', PAGE_START)).toBe(true);
  });

  it("is not this connection's own output, nor a newer request (a console of this page), nor a status", () => {
    expect(isEarlierOutput(stream('1\n', { ...before, session: 'this-page' }), 'this-page', PAGE_START)).toBe(false);
    const newer = { session: 'console-of-this-page', date: '2026-12-06T10:00:05Z' };
    expect(isEarlierOutput(stream('1\n', newer), 'this-page', PAGE_START)).toBe(false);
    expect(isEarlierOutput(iopub('status', { execution_state: 'idle' }, before), 'this-page', PAGE_START)).toBe(false);
    expect(isEarlierOutput(stream('1\n', {}), 'this-page', PAGE_START)).toBe(false);
    expect(isEarlierOutput(stream('1\n', { session: 'x', date: 'garbage' }), 'this-page', PAGE_START)).toBe(false);
  });
});

describe('EarlierOutputLog', () => {
  it('keeps the lines in order, each message once however many connections heard it', () => {
    const log = new EarlierOutputLog();
    expect(log.add(stream('1\n', before, 'a'))).toBe(true);
    expect(log.add(stream('1\n', before, 'a'))).toBe(false);
    log.add(stream('2\n', before, 'b'));
    log.add(iopub('execute_result', { data: { 'text/plain': '42' }, metadata: {}, execution_count: 3 }, before));
    expect(log.model.length).toBe(2); // the stream lines merged into one output, then the result
    expect(log.model.get(0).toJSON()).toMatchObject({ output_type: 'stream', text: '1\n2\n' });
    expect(log.model.get(1).toJSON()).toMatchObject({ output_type: 'execute_result' });
    expect(log.model.trusted).toBe(false);
  });

  it('is bounded: outputs past the limit are counted, not kept', () => {
    const log = new EarlierOutputLog();
    for (let i = 0; i < EARLIER_OUTPUT_MAX + 3; i++) {
      log.add(iopub('display_data', { data: { 'text/plain': String(i) }, metadata: {} }, before));
    }
    expect(log.model.length).toBe(EARLIER_OUTPUT_MAX);
    expect(log.dropped).toBe(3);
  });
});
