/**
 * Bench driver: the agent's own LocalForward over one ClusterConnection (the same modules
 * the agent runs), bundled on the fly by bench/throughput.py with esbuild.
 *
 *   node forward_driver.js '{"configFile": ..., "host": "login", "to": "198.18.2.11", "port": 5000}'
 *
 * `"cipher": NAME` forces one cipher on every hop (for comparing them; the agent's own
 * choice is in connection.ts).
 *
 * `"ports": [...]` instead of `"port"` opens one forward per remote port (a kernel's five).
 * Prints {"port": LOCAL, "ports": [LOCAL...]} once listening; runs until stdin closes.
 */
import { Client, type ConnectConfig } from 'ssh2';

import { LocalForward } from '../src/agent/tunnels/local-forward';
import { benchConnection, runDriver, serveUntilStdinCloses } from './driver_common';

async function main(): Promise<void> {
  const args = JSON.parse(process.argv[2]) as {
    configFile: string;
    host: string;
    to: string;
    port?: number;
    ports?: number[];
    cipher?: string;
  };
  if (args.cipher) {
    // Experiments only: force one cipher on every hop, as if connection.ts offered only it.
    const connect = Client.prototype.connect;
    Client.prototype.connect = function (this: Client, cfg: ConnectConfig) {
      cfg.algorithms = {
        ...cfg.algorithms,
        cipher: [args.cipher!] as NonNullable<ConnectConfig['algorithms']>['cipher']
      };
      return connect.call(this, cfg);
    };
  }
  const conn = benchConnection(args);
  await conn.connect();
  const remote = args.ports ?? [args.port!];
  const forwards = remote.map(
    p =>
      new LocalForward(
        () => conn.forwardOut(args.to, p),
        msg => process.stderr.write(`${msg}\n`)
      )
  );
  await serveUntilStdinCloses(conn, forwards, ports => ({
    port: ports[0],
    ports,
    hops: conn.hopInfo.map(h => h.label)
  }));
}

runDriver(main);
