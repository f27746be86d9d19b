/**
 * "Open a Port of the Session…": the helper serves a port asked for by number now, under
 * the rules of its scan (webports.py): held by a process of the session, answering HTTP.
 * Its refusals are the user's answer, as the helper words them.
 */
import type { IServedPort } from '../../common/api';
import { InvalidRequestError, NotFoundError } from '../schedulers/types';
import type { HelperClient } from './helper-client';
import type { ISessionRecord } from './records';

export interface IOpenedWebPort {
  entry: IServedPort;
  /** The helper's served sockets now (node-ssh reaches the new one by it). */
  httpSockets: Record<string, string>;
}

export async function askToOpenWebPort(helper: HelperClient, s: ISessionRecord, port: number): Promise<IOpenedWebPort> {
  const r = await helper.request(s, 'POST', '/web-ports', { port }, 30_000);
  if (r.status === 200) {
    return r.json as IOpenedWebPort;
  }
  const message: string = r.json?.error?.message ?? `HTTP ${r.status}`;
  if (r.status === 404) {
    throw new NotFoundError(message, 'port');
  }
  if (r.status >= 400 && r.status < 500) {
    throw new InvalidRequestError(message, 'port'); // not the session's, not HTTP, not a port
  }
  throw new Error(`The session's helper failed to open port ${port}: ${message}`);
}
