/** An in-process ssh2 server on 127.0.0.1 for ClusterConnection specs. */
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';

import { Server, type AuthContext, type Connection } from 'ssh2';

import type { IPrompt, IPromptAnswer } from '../../../common/api';
import { ClusterConnection, type IClusterConnectionOptions } from '../../ssh/connection';
import { ed25519KeyPair } from './keys';

export type Prompt = Omit<IPrompt, 'id'>;

/** A connection as user `me` to 127.0.0.1:port, with its home, config and known_hosts in `tmp`. */
export function testConnection(
  tmp: string,
  port: number,
  prompt: (p: Prompt, signal: AbortSignal) => Promise<IPromptAnswer>,
  log: (m: string) => void,
  extra: Partial<IClusterConnectionOptions> = {}
): ClusterConnection {
  return new ClusterConnection({
    target: {
      host: '127.0.0.1',
      port,
      user: 'me',
      configFile: path.join(tmp, 'no-config'),
      knownHostsFiles: [path.join(tmp, 'known_hosts')]
    },
    prompt,
    homeDir: tmp,
    agentSocket: null,
    logger: { debug: log, info: log, warn: log, error: log },
    connectTimeoutMs: 5000,
    ...extra
  });
}

export interface ITestServer {
  port: number;
  hostKeyBlob: Buffer;
  seen: string[];
  close(): Promise<void>;
}

/** An SSH server that runs `echo`-like commands and authenticates as told. */
export async function startServer(auth: (ctx: AuthContext) => void, hostKey = ed25519KeyPair()): Promise<ITestServer> {
  const seen: string[] = [];
  const server = new Server({ hostKeys: [hostKey.private] }, (client: Connection) => {
    client.on('error', () => undefined);
    client.on('authentication', ctx => {
      seen.push(ctx.method);
      auth(ctx);
    });
    client.on('ready', () => {
      client.on('session', accept => {
        const session = accept();
        session.on('pty', a => a?.());
        session.on('exec', (a, _r, info) => {
          const ch = a();
          if (info.command === 'cat') {
            return; // the pty keeper: stays open
          }
          ch.write(`ran: ${info.command}\n`);
          ch.exit(0);
          ch.end();
        });
      });
    });
  });
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const hostKeyBlob = Buffer.from(hostKey.public.split(' ')[1], 'base64');
  return {
    port,
    hostKeyBlob,
    seen,
    close: () => new Promise<void>(resolve => server.close(() => resolve()))
  };
}
