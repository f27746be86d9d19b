/**
 * Entry point of the agent: the long-lived Node process that holds every SSH
 * connection, scheduler adapter and tunnel (docs/architecture.md). It is started and
 * supervised by the Python server extension (or by the kernel provisioner when no
 * Jupyter server runs), over a Unix socket that only the user can open.
 *
 *   node agent.js --socket PATH [--proxy-socket PATH] [--settings-dir DIR] [--kernels-dir DIR]
 *                 [--state-dir DIR] [--base-url /] [--helper PATH]
 *
 * Two sockets: the API (--socket) and the proxy to what sessions serve (--proxy-socket,
 * default proxy.sock next to the API's), so that nothing proxied can reach the API.
 *
 * It prints one JSON line `{"event":"ready",...}` on stdout once it listens, and exits
 * when its stdin closes, so it never outlives the process that started it.
 */
import * as os from 'node:os';
import * as path from 'node:path';

import type { AgentEvent } from '../common/api';
import { KernelspecWriter } from './kernelspecs';
import { schedulerAdapters } from './schedulers/registry';
import { startProxyServer } from './http/proxy-server';
import { startAgentServer, type IAgentServer } from './server';
import { SessionManager } from './sessions/manager';
import { PromptBroker } from './sessions/prompts';
import { sshLinkFactory } from './cluster/ssh-link';
import { DEFAULT_RETENTION, type IRetention } from './sessions/store';
import { DEFAULT_MAX_SIGN_IN_FAILURES, SignInGuard } from './ssh/sign-in-guard';
import { MAX_IDLE_MINUTES } from '../common/profile';
import { readProfiles } from './settings';

interface IArgs {
  socketPath: string;
  proxySocketPath: string;
  settingsDir: string;
  kernelsDir: string;
  stateDir: string;
  baseUrl: string;
  helperPath: string;
  retention: IRetention;
  maxSignInFailures: number;
  /** Minutes: the idle timeout of profiles that set none (0: off). */
  defaultIdleTimeout: number;
}

function parseArgs(argv: string[]): IArgs {
  const get = (name: string): string | undefined => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const socketPath = get('--socket');
  if (!socketPath) {
    throw new Error(
      'usage: agent.js --socket PATH [--proxy-socket PATH] [--settings-dir DIR] [--kernels-dir DIR] [--state-dir DIR] ' +
        '[--base-url URL] [--helper PATH] [--keep-ended-days N] [--keep-ended-sessions N] [--max-sign-in-failures N] [--default-idle-timeout MIN]'
    );
  }
  const count = (name: string, fallback: number): number => {
    const v = get(name);
    if (v === undefined) {
      return fallback;
    }
    if (!/^\d{1,6}$/.test(v)) {
      throw new Error(`${name} must be a whole number of 0 or more, not ${JSON.stringify(v)}`);
    }
    return Number(v);
  };
  const home = os.homedir();
  const dataHome = process.env.XDG_DATA_HOME || path.join(home, '.local', 'share');
  return {
    socketPath,
    proxySocketPath: get('--proxy-socket') ?? path.join(path.dirname(socketPath), 'proxy.sock'),
    settingsDir: get('--settings-dir') ?? path.join(home, '.jupyter', 'lab', 'user-settings'),
    kernelsDir: get('--kernels-dir') ?? path.join(dataHome, 'jupyter', 'kernels'),
    stateDir: get('--state-dir') ?? path.join(dataHome, 'jupyter', 'remote-cluster'),
    baseUrl: get('--base-url') ?? '/',
    // In the bundle this file is <package>/agent/agent.js and the helper's package <package>/remote/helper/.
    helperPath: get('--helper') ?? path.resolve(__dirname, '..', 'remote', 'helper'),
    retention: {
      days: count('--keep-ended-days', DEFAULT_RETENTION.days),
      sessions: count('--keep-ended-sessions', DEFAULT_RETENTION.sessions)
    },
    maxSignInFailures: Math.max(1, count('--max-sign-in-failures', DEFAULT_MAX_SIGN_IN_FAILURES)),
    defaultIdleTimeout: Math.min(MAX_IDLE_MINUTES, count('--default-idle-timeout', 0))
  };
}

function log(msg: string): void {
  process.stderr.write(`agent: ${msg}\n`);
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  let server: IAgentServer | undefined;
  const emit = (e: AgentEvent): void => server?.broadcast(e);
  // A person can answer only while a JupyterLab listens on the event stream.
  const someoneListens = (): boolean => (server?.listeners() ?? 0) > 0;
  const prompts = new PromptBroker(emit, someoneListens);
  const profiles = async () => {
    const r = await readProfiles(args.settingsDir);
    for (const e of r.errors) {
      log(`settings: ${e}`);
    }
    return r;
  };
  const sessions = new SessionManager({
    stateDir: args.stateDir,
    helperPath: args.helperPath,
    baseUrl: args.baseUrl,
    retention: args.retention,
    defaultIdleTimeout: args.defaultIdleTimeout,
    profiles: async () => (await profiles()).profiles,
    adapters: schedulerAdapters(),
    connect: sshLinkFactory({
      prompt: (q, signal) => prompts.ask(q, signal),
      log,
      // The session manager publishes connection states itself (one story per cluster,
      // reconnect attempts included); per-attempt states from the SSH layer would flap.
      emit: e => e.type !== 'connection' && emit(e),
      canAsk: someoneListens,
      signInGuard: new SignInGuard(args.maxSignInFailures)
    }),
    log
  });
  const kernelspecs = new KernelspecWriter(args.kernelsDir);
  let syncing = Promise.resolve();
  const syncKernelspecs = (): Promise<void> => {
    syncing = syncing
      .then(async () => kernelspecs.sync((await profiles()).profiles, sessions.list()))
      .catch(err => log(`kernelspecs: ${(err as Error).message}`));
    return syncing;
  };
  sessions.events.on('event', (e: AgentEvent) => {
    emit(e);
    if (e.type === 'session' || e.type === 'session-removed') {
      void syncKernelspecs();
    }
  });

  await sessions.load();
  server = await startAgentServer({
    socketPath: args.socketPath,
    services: { sessions, prompts, profiles, changed: syncKernelspecs, baseUrl: args.baseUrl }
  });
  const proxy = await startProxyServer(args.proxySocketPath, args.baseUrl, (key, port) =>
    sessions.openProxiedPort(key, port)
  );
  await syncKernelspecs();
  process.stdout.write(
    JSON.stringify({ event: 'ready', socket: args.socketPath, proxySocket: args.proxySocketPath, pid: process.pid }) +
      '\n'
  );

  let stopping = false;
  const stop = (why: string): void => {
    if (stopping) {
      return;
    }
    stopping = true;
    log(`stopping (${why})`);
    void Promise.all([sessions.shutdown(), server?.close(), proxy.close(), syncing]).finally(() => process.exit(0));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // The supervisor keeps our stdin open; EOF means it is gone.
  process.stdin.on('end', () => stop('supervisor gone'));
  process.stdin.resume();
}

main().catch(err => {
  log(err instanceof Error ? err.message : String(err));
  process.exit(1);
});
