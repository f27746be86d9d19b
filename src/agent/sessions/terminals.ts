/**
 * Terminals in a running job: the shell and its pty are the helper's (terminals.py), so a
 * shell outlives a drop of the link and the agent only carries its lines. A WebSocket
 * client (JupyterLab's terminal widget, through the server extension) speaks terminado's
 * messages; each is one line on a control-channel stream the helper gives to the
 * terminal. When the stream breaks (the link dropped), the WebSocket closes and the
 * client attaches again: the helper sends the recent screen first.
 */
import type { Duplex } from 'node:stream';

import type { WebSocket } from 'ws';

import type { ITerminalInfo } from '../../common/api';
import { ConflictError, InvalidRequestError, NotFoundError } from '../schedulers/types';
import { whenClosed } from '../tunnels/bridge';
import type { HelperClient } from './helper-client';
import { helperError, type ISessionRecord } from './records';

export const TERMINAL_ID = /^t[0-9]{1,6}$/;
const HEAD_MAX = 16 * 1024;
const LINE_MAX = 1 << 20;
const ATTACH_TIMEOUT_MS = 30_000;
/** A client left: its stream is ended, and destroyed if still open after this. */
const END_GRACE_MS = 5_000;
/** Messages a client may send; anything else is dropped here. */
const CLIENT_MESSAGES = new Set(['stdin', 'set_size']);
/** WebSocket close codes the client acts on (4000-4999 are the application's). */
export const CLOSE_ENDED = 4000; // the shell ended or is gone: do not attach again
export const CLOSE_LOST = 4001; // the link to the node broke: attach again

/** The terminals of one running session. */
export class SessionTerminals {
  constructor(
    private readonly helper: HelperClient,
    private readonly s: ISessionRecord,
    /** The session's terminals changed (their ids, oldest first). */
    private readonly changed: (terminals: string[]) => void
  ) {}

  async open(size: { rows?: number; cols?: number }): Promise<ITerminalInfo> {
    const r = await this.helper.request(this.s, 'POST', '/terminals', size, 30_000);
    if (r.status !== 201) {
      throw refusal(r.status, `No terminal was opened in job ${this.s.jobId ?? this.s.id}: ${helperError(r.json)}`);
    }
    const opened = r.json as ITerminalInfo;
    this.changed([...(this.s.terminals ?? []).filter(t => t !== opened.terminalId), opened.terminalId]);
    return opened;
  }

  async list(): Promise<ITerminalInfo[]> {
    const r = await this.helper.request(this.s, 'GET', '/terminals', undefined, 30_000);
    if (r.status !== 200) {
      throw new Error(`The session's helper did not list its terminals: ${helperError(r.json)}`);
    }
    return (r.json as { terminals: ITerminalInfo[] }).terminals;
  }

  async close(terminalId: string): Promise<void> {
    const r = await this.helper.request(this.s, 'DELETE', `/terminals/${terminalId}`, undefined, 30_000);
    if (r.status !== 200) {
      throw refusal(r.status, `Terminal ${terminalId} was not closed: ${helperError(r.json)}`);
    }
    this.changed((this.s.terminals ?? []).filter(t => t !== terminalId));
  }

  /**
   * The terminal's stream from the helper, once it accepted the client (else why not);
   * `since`: the shell's byte count the client has seen up to (it attaches again).
   */
  async attach(terminalId: string, since?: number): Promise<{ stream: Duplex; rest: Buffer }> {
    const { route, channel } = await this.helper.openControlStream(this.s);
    const query = since === undefined ? '' : `?from=${since}`;
    channel.write(
      `POST /terminals/${terminalId}/attach${query} HTTP/1.1\r\nHost: ${route.state.host}\r\n` +
        `Authorization: Bearer ${route.token}\r\nContent-Length: 0\r\n\r\n`
    );
    const { status, rest } = await readHead(channel);
    if (status === 200) {
      return { stream: channel, rest };
    }
    const body = await readToEnd(channel, rest);
    let message = body;
    try {
      message = helperError(JSON.parse(body));
    } catch {
      // not JSON: the text as it came
    }
    throw refusal(status, message);
  }
}

/**
 * Carry a WebSocket client's messages to the terminal's stream and the shell's back, until
 * either ends. Output is paced by the client: the stream pauses while the WebSocket has
 * much unsent.
 */
export function carry(ws: WebSocket, stream: Duplex, rest: Buffer, early: string[] = []): void {
  let ended = false;
  let pending = Buffer.alloc(0);
  const fromShell = (chunk: Buffer): void => {
    pending = Buffer.concat([pending, chunk]);
    let nl: number;
    while ((nl = pending.indexOf(10)) >= 0) {
      const line = pending.subarray(0, nl).toString('utf8');
      pending = pending.subarray(nl + 1);
      ws.send(line);
      if (line.startsWith('["disconnect"')) {
        ended = true;
        stream.destroy(); // the shell ended: this client is done (closed below)
        return;
      }
    }
    if (pending.length > LINE_MAX) {
      stream.destroy(); // not a helper of ours
    }
    if (ws.bufferedAmount > LINE_MAX) {
      stream.pause();
      const wait = setInterval(() => {
        if (ws.bufferedAmount < LINE_MAX / 4 || ws.readyState !== ws.OPEN) {
          clearInterval(wait);
          stream.resume();
        }
      }, 20);
    }
  };
  stream.on('data', fromShell);
  stream.on('error', () => stream.destroy());
  if (rest.length > 0) {
    fromShell(rest);
  }
  stream.resume();
  const toShell = (text: string): void => {
    const msg = parseClientMessage(text);
    if (msg) {
      stream.write(msg + '\n');
    }
  };
  early.forEach(toShell);
  ws.on('message', (data, isBinary) => !isBinary && toShell(data.toString()));
  ws.on('close', () => {
    // end, not destroy: what the client typed just before it left still reaches the shell
    stream.end();
    setTimeout(() => stream.destroy(), END_GRACE_MS).unref();
  });
  ws.on('error', () => ws.terminate());
  whenClosed(stream, () => {
    if (ws.readyState === ws.OPEN) {
      ws.close(ended ? CLOSE_ENDED : CLOSE_LOST, ended ? 'the shell ended' : 'the link to the node broke');
    }
  });
}

/**
 * A WebSocket client of terminal `terminalId`: attached to the shell, or closed with the
 * reason (CLOSE_ENDED: the terminal or its session is gone; CLOSE_LOST: try again).
 */
export async function streamTerminal(
  ws: WebSocket,
  terminals: () => SessionTerminals,
  terminalId: string,
  since?: number
): Promise<void> {
  // what the client says while the helper is reached (its first set_size) is kept
  const early: string[] = [];
  const keep = (data: unknown, isBinary: boolean): void => void (isBinary || early.push(String(data)));
  ws.on('message', keep);
  try {
    const { stream, rest } = await terminals().attach(terminalId, since);
    ws.off('message', keep);
    if (ws.readyState !== ws.OPEN) {
      stream.destroy();
      return;
    }
    ws.send(JSON.stringify(['setup', {}])); // attached (terminado's first message)
    carry(ws, stream, rest, early);
  } catch (err) {
    ws.off('message', keep);
    const gone = err instanceof NotFoundError || err instanceof ConflictError || err instanceof InvalidRequestError;
    // (a close reason is at most 123 bytes)
    ws.close(
      gone ? CLOSE_ENDED : CLOSE_LOST,
      Buffer.from((err as Error).message)
        .subarray(0, 120)
        .toString()
    );
  }
}

/** A client's message as one line for the helper, or undefined if it is not one of ours. */
export function parseClientMessage(text: string): string | undefined {
  if (text.length > LINE_MAX) {
    return undefined;
  }
  let msg: unknown;
  try {
    msg = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!Array.isArray(msg) || !CLIENT_MESSAGES.has(msg[0])) {
    return undefined;
  }
  if (msg[0] === 'stdin') {
    return typeof msg[1] === 'string' ? JSON.stringify(['stdin', msg[1]]) : undefined;
  }
  const [rows, cols] = [msg[1], msg[2]];
  const ok = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 1000;
  return ok(rows) && ok(cols) ? JSON.stringify(['set_size', rows, cols]) : undefined;
}

function refusal(status: number, message: string): Error {
  if (status === 404) {
    return new NotFoundError(message, 'terminal');
  }
  return status >= 400 && status < 500 ? new InvalidRequestError(message, 'terminal') : new Error(message);
}

function readHead(stream: Duplex): Promise<{ status: number; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    let done = false;
    const timer = setTimeout(
      () => fail(new Error('the helper did not answer the terminal request in time')),
      ATTACH_TIMEOUT_MS
    );
    const fail = (err: Error): void => {
      if (done) {
        return;
      }
      done = true;
      clearTimeout(timer);
      stream.off('data', onData);
      stream.destroy();
      reject(err);
    };
    const onData = (chunk: Buffer): void => {
      buf = Buffer.concat([buf, chunk]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) {
        if (buf.length > HEAD_MAX) {
          fail(new Error('the helper answered the terminal request with an oversized head'));
        }
        return;
      }
      done = true;
      clearTimeout(timer);
      stream.off('data', onData);
      stream.pause();
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(buf.subarray(0, end).toString('latin1'))?.[1] ?? 0);
      resolve({ status, rest: buf.subarray(end + 4) });
    };
    stream.on('data', onData);
    whenClosed(stream, () => fail(new Error('the helper closed the connection before answering')));
    stream.resume();
  });
}

function readToEnd(stream: Duplex, start: Buffer): Promise<string> {
  return new Promise(resolve => {
    let buf = start;
    stream.on('data', (c: Buffer) => {
      if (buf.length < HEAD_MAX) {
        buf = Buffer.concat([buf, c]);
      }
    });
    whenClosed(stream, () => resolve(buf.toString('utf8')));
    stream.on('error', () => undefined);
    stream.resume();
  });
}
