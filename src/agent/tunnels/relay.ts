/**
 * The agent's side of the helper's relay (connectivity via-login and auto, helper protocol
 * 2): over a stream to the relay's TCP port on the node (direct-tcpip from the login node),
 * TLS in which both sides prove they belong to the session, then
 * `CONNECT <target>` with the session's token; what follows are the bytes of the target,
 * a Unix socket in the session's private directory on the node:
 *   control | kernel/<id>/<shell|iopub|stdin|control|hb> | http/<port>
 *
 * The server is believed only with a certificate of the session's own CA (made by this
 * agent at submit, its private key dropped at once) naming `jrc-<session>`: a port the
 * helper released and another user took gets a TLS handshake that fails, never the token
 * or a kernel message. The token travels only inside that TLS.
 */
import type { Duplex } from 'node:stream';
import * as tls from 'node:tls';

import { oneWritePerTick } from '../ssh/socket-tuning';

export interface IRelayCredentials {
  /** PEM: the session CA (the only trust anchor), our client certificate and key. */
  ca: string;
  cert: string;
  key: string;
  /** The name the server's certificate must carry (`jrc-<session>`). */
  name: string;
  /** The session's bearer token, sent inside TLS. */
  token: string;
}

export type RelayTarget = 'control' | `kernel/${string}/${string}` | `http/${string}`;

/** Answers to a CONNECT are one HTTP head; a bigger one is not a helper's. */
const MAX_HEAD = 16 * 1024;

export class RelayError extends Error {
  constructor(
    message: string,
    /** HTTP status of the relay's refusal (0: no answer, a failed handshake). */
    readonly status = 0
  ) {
    super(message);
  }
}

/**
 * TLS on `raw`, then CONNECT `target`; resolves with the stream to the target, paused
 * (bytes that came with the answer are already in it): its user resumes it once it
 * listens (pipe() does), so nothing is emitted to nobody.
 */
export function openRelay(
  raw: Duplex,
  creds: IRelayCredentials,
  target: RelayTarget,
  where: string,
  timeoutMs = 15_000
): Promise<Duplex> {
  // TLS writes its 16 KiB records one at a time: one SSH write per tick instead of one each
  oneWritePerTick(raw);
  return new Promise<Duplex>((resolve, reject) => {
    const sock = tls.connect({
      socket: raw,
      ca: creds.ca,
      cert: creds.cert,
      key: creds.key,
      servername: creds.name,
      // AES-128-GCM: the cheapest on CPUs with AES instructions (about 15% more throughput
      // through the helper than AES-256 here); the TLS 1.2 suites for Pythons without TLS 1.3
      ciphers: 'TLS_AES_128_GCM_SHA256:ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384',
      minVersion: 'TLSv1.2'
    });
    // An error of the SSH channel below is an error of the TLS stream on it.
    raw.on('error', (err: Error) => sock.destroy(err));
    let head = Buffer.alloc(0);
    let done = false;
    const timer = setTimeout(
      () => fail(new RelayError(`the session's relay on ${where} did not answer within ${timeoutMs / 1000} s`)),
      timeoutMs
    );
    const fail = (err: Error): void => {
      if (done) {
        return;
      }
      done = true;
      clearTimeout(timer);
      sock.destroy();
      raw.destroy();
      reject(err);
    };
    sock.once('error', (err: Error & { code?: string }) => {
      const handshake = !sock.authorized && err.code !== 'ECONNRESET';
      // OpenSSL's messages are long and cryptic; its code says it (e.g. UNABLE_TO_VERIFY_LEAF_SIGNATURE)
      const why = err.code ?? err.message.split('\n')[0];
      fail(
        new RelayError(
          handshake
            ? `the TLS handshake with the session's relay on ${where} failed (${why}): whatever listens there is not this session's helper`
            : `the session's relay on ${where}: ${err.message}`
        )
      );
    });
    sock.once('close', () => fail(new RelayError(`the session's relay on ${where} closed the connection`)));
    sock.once('secureConnect', () => {
      sock.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${creds.name}\r\nAuthorization: Bearer ${creds.token}\r\n\r\n`);
    });
    const onData = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) {
        if (head.length > MAX_HEAD) {
          fail(new RelayError(`the session's relay on ${where} sent an oversized answer`));
        }
        return;
      }
      sock.off('data', onData);
      sock.pause();
      const lines = head.subarray(0, end).toString('latin1').split('\r\n');
      const status = Number(lines[0].split(' ')[1]);
      const rest = head.subarray(end + 4);
      if (status !== 200) {
        // The refusal's body is a short text (Content-Length).
        const text = rest.toString('utf8').trim();
        fail(
          new RelayError(
            `the session's helper on ${where} refused ${target.split('/')[0]}: ${text || lines[0]}`,
            status
          )
        );
        return;
      }
      done = true;
      clearTimeout(timer);
      sock.removeAllListeners('close');
      sock.removeAllListeners('error');
      // Until its user (a forward, an HTTP request) attaches its own handlers.
      sock.on('error', () => undefined);
      if (rest.length > 0) {
        sock.unshift(rest);
      }
      resolve(sock);
    };
    sock.on('data', onData);
  });
}
