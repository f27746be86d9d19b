/**
 * What the bench drivers share: one ClusterConnection that never prompts, and serving a
 * set of LocalForwards until stdin closes (the Python side ends a driver that way).
 */
import { ClusterConnection } from '../src/agent/ssh/connection';
import { LocalForward } from '../src/agent/tunnels/local-forward';
import { openRelay, type IRelayCredentials, type RelayTarget } from '../src/agent/tunnels/relay';

export function benchConnection(args: { host: string; configFile: string }): ClusterConnection {
  return new ClusterConnection({
    target: { host: args.host, configFile: args.configFile },
    prompt: async p => {
      throw new Error(`unexpected prompt: ${p.kind}`);
    },
    agentSocket: null
  });
}

/** Listens on every forward, prints `describe(ports)` as one JSON line, runs until stdin closes. */
export async function serveUntilStdinCloses(
  conn: ClusterConnection,
  forwards: LocalForward[],
  describe: (ports: number[]) => object
): Promise<void> {
  const ports: number[] = [];
  for (const f of forwards) {
    ports.push(await f.listen());
  }
  process.stdout.write(JSON.stringify(describe(ports)) + '\n');
  process.stdin.resume();
  process.stdin.on('end', () => {
    forwards.forEach(f => f.close());
    void conn.close().then(() => process.exit(0));
  });
}

export function runDriver(main: () => Promise<void>): void {
  main().catch(err => {
    process.stderr.write(`${(err as Error).message}\n`);
    process.exit(1);
  });
}

/** What relay_driver.ts and memory_driver.ts are given (bench/throughput.py relay_spec). */
export type RelayDriverArgs = {
  configFile: string;
  host: string;
  to: string;
  relayPort: number;
  targets: RelayTarget[];
} & IRelayCredentials;

/**
 * One LocalForward per target, each connection going through the helper's TLS relay
 * (direct-tcpip to the relay's port on the node, mutual TLS, CONNECT <target>), as the
 * agent reaches a session under via-login.
 */
export function relayForwards(conn: ClusterConnection, args: RelayDriverArgs): LocalForward[] {
  const creds: IRelayCredentials = { ca: args.ca, cert: args.cert, key: args.key, name: args.name, token: args.token };
  return args.targets.map(
    target =>
      new LocalForward(
        async () =>
          openRelay(await conn.forwardOut(args.to, args.relayPort), creds, target, `${args.to}:${args.relayPort}`),
        msg => process.stderr.write(`${msg}\n`)
      )
  );
}
