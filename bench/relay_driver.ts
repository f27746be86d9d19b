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
import {
  benchConnection,
  relayForwards,
  runDriver,
  serveUntilStdinCloses,
  type RelayDriverArgs
} from './driver_common';

async function main(): Promise<void> {
  const args = JSON.parse(process.argv[2]) as RelayDriverArgs;
  const conn = benchConnection(args);
  await conn.connect();
  await serveUntilStdinCloses(conn, relayForwards(conn, args), ports => ({ ports }));
}

runDriver(main);
