/**
 * Bench driver: the agent's own LocalForward over one ClusterConnection (the same modules
 * the agent runs), bundled on the fly by bench/throughput.py with esbuild.
 *
 *   node forward_driver.js '{"configFile": ..., "host": "login", "to": "198.18.2.11", "port": 5000}'
 *
 * Prints {"port": LOCAL} once listening; runs until stdin closes.
 */
import { ClusterConnection } from '../src/agent/ssh/connection';
import { LocalForward } from '../src/agent/tunnels/local-forward';

async function main(): Promise<void> {
  const args = JSON.parse(process.argv[2]) as { configFile: string; host: string; to: string; port: number };
  const conn = new ClusterConnection({
    target: { host: args.host, configFile: args.configFile },
    prompt: async p => {
      throw new Error(`unexpected prompt: ${p.kind}`);
    },
    agentSocket: null
  });
  await conn.connect();
  const fwd = new LocalForward(() => conn.forwardOut(args.to, args.port), msg => process.stderr.write(`${msg}\n`));
  const port = await fwd.listen();
  process.stdout.write(JSON.stringify({ port, hops: conn.hopInfo.map(h => h.label) }) + '\n');
  process.stdin.resume();
  process.stdin.on('end', () => {
    fwd.close();
    void conn.close().then(() => process.exit(0));
  });
}

main().catch(err => {
  process.stderr.write(`${(err as Error).message}\n`);
  process.exit(1);
});
