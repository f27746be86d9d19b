/**
 * Bench driver: like forward_driver.ts, but each local connection goes through the
 * helper's TLS relay (src/agent/tunnels/relay.ts: direct-tcpip to the relay's port on the
 * node, mutual TLS, CONNECT <target>), as the agent reaches a session under via-login.
 *
 *   node relay_driver.js '{"configFile": ..., "host": "login", "to": "198.18.2.11",
 *                          "relayPort": 5000, "targets": ["http/9"], "ca": PEM, "cert": PEM,
 *                          "key": PEM, "name": "jrc-bench", "token": "..."}'
 *
 * Prints {"ports": [LOCAL...]} (one per target) once listening; runs until stdin closes.
 */
import { LocalForward } from '../src/agent/tunnels/local-forward';
import { benchConnection, runDriver, serveUntilStdinCloses } from './driver_common';
import { openRelay, type IRelayCredentials, type RelayTarget } from '../src/agent/tunnels/relay';

async function main(): Promise<void> {
  const args = JSON.parse(process.argv[2]) as {
    configFile: string;
    host: string;
    to: string;
    relayPort: number;
    targets: RelayTarget[];
  } & IRelayCredentials;
  const conn = benchConnection(args);
  await conn.connect();
  const creds: IRelayCredentials = { ca: args.ca, cert: args.cert, key: args.key, name: args.name, token: args.token };
  const forwards = args.targets.map(
    target =>
      new LocalForward(
        async () =>
          openRelay(await conn.forwardOut(args.to, args.relayPort), creds, target, `${args.to}:${args.relayPort}`),
        msg => process.stderr.write(`${msg}\n`)
      )
  );
  await serveUntilStdinCloses(conn, forwards, ports => ({ ports }));
}

runDriver(main);
