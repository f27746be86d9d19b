/**
 * Entry point of the agent: the long-lived Node process that will hold every SSH
 * connection, scheduler adapter and tunnel (docs/architecture.md). It is started and
 * supervised by the Python server extension, which is its only client, over a Unix
 * socket that only the user can open.
 *
 *   node agent.js --socket /path/to/agent.sock
 *
 * It prints one JSON line `{"event":"ready",...}` on stdout once it listens, and exits
 * when its stdin closes, so it never outlives the process that started it.
 */
import { startAgentServer } from './server';

function parseArgs(argv: string[]): { socketPath: string } {
  const i = argv.indexOf('--socket');
  const socketPath = i >= 0 ? argv[i + 1] : undefined;
  if (!socketPath) {
    throw new Error('usage: agent.js --socket PATH');
  }
  return { socketPath };
}

async function main(): Promise<void> {
  const { socketPath } = parseArgs(process.argv.slice(2));
  const agent = await startAgentServer({ socketPath });
  process.stdout.write(
    JSON.stringify({ event: 'ready', socket: socketPath, pid: process.pid }) + '\n'
  );

  let stopping = false;
  const stop = (why: string): void => {
    if (stopping) {
      return;
    }
    stopping = true;
    process.stderr.write(`agent: stopping (${why})\n`);
    void agent.close().then(() => process.exit(0));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // The supervisor keeps our stdin open; EOF means it is gone.
  process.stdin.on('end', () => stop('supervisor gone'));
  process.stdin.resume();
}

main().catch(err => {
  process.stderr.write(`agent: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
