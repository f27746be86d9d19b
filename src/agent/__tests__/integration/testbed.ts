/**
 * What the integration specs need from the running testbed (testbed/testbed): its
 * script, its environment, waiting while it restarts, and host-key fingerprints as
 * `ssh-keygen` prints them (the reference our own fingerprints are checked against).
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export const ROOT = path.resolve(__dirname, '../../../..');
export const TESTBED = path.join(ROOT, 'testbed', 'testbed');

/** Runs a command (with `env` added to ours); resolves to its stdout, rejects with its stderr. */
export function run(cmd: string, args: string[], env?: Record<string, string>): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(cmd, args, { env: env && { ...process.env, ...env } }, (err, stdout, stderr) =>
      err ? reject(new Error(`${cmd} ${args.join(' ')}: ${stderr || err.message}`)) : resolve(stdout)
    )
  );
}

/** `testbed env` as a map (RC_TESTBED_SSH_CONFIG, RC_TESTBED_KNOWN_HOSTS, ...). */
export function testbedEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of execFileSync(TESTBED, ['env'], { encoding: 'utf8' }).split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line);
    if (m) {
      env[m[1]] = m[2].replace(/^'(.*)'$/, '$1').replace(/\\(.)/g, '$1');
    }
  }
  return env;
}

/** Waits (up to ~2 minutes) while the lifecycle test or an engineer restarts the testbed. */
export async function waitForTestbed(): Promise<void> {
  const deadline = Date.now() + 120000;
  let last = '';
  for (;;) {
    last = await run(TESTBED, ['status']).catch((err: Error) => err.message);
    if (/^healthy$/m.test(last)) {
      return;
    }
    if (Date.now() > deadline) {
      throw new Error(`testbed is not healthy: ${last}`);
    }
    await new Promise(r => setTimeout(r, 5000));
  }
}

/** `ssh-keygen -lf FILE`'s fingerprint (the second field). */
export async function keygenFp(pubFile: string): Promise<string> {
  return (await run('ssh-keygen', ['-lf', pubFile])).split(' ')[1];
}

/** The fingerprint `ssh-keygen -lf` prints for the key of `host` in a known_hosts file. */
export async function keygenFingerprint(knownHosts: string, host: string, dir: string): Promise<string> {
  const line = (await fs.readFile(knownHosts, 'utf8')).split('\n').find(l => l.split(' ')[0].split(',').includes(host));
  if (!line) {
    throw new Error(`${host} not in ${knownHosts}`);
  }
  const pub = path.join(dir, `${host}.pub`);
  await fs.writeFile(pub, line.split(' ').slice(1, 3).join(' ') + '\n');
  return keygenFp(pub);
}

/**
 * The hooks every spec on the testbed needs: wait until it is healthy, a scratch home
 * (no stray ~/.ssh keys or known_hosts), and connections closed after each test. Read
 * `tmp` and `env` in tests or in a later beforeAll; push connections to `open`.
 */
export function testbedScratch(prefix: string): {
  tmp: string;
  env: Record<string, string>;
  open: { close(): Promise<void> }[];
} {
  let tmp = '';
  const s = {
    env: {} as Record<string, string>,
    open: [] as { close(): Promise<void> }[],
    // (throws rather than be '': a test whose testbed never came up would otherwise make
    // its scratch directories, keys included, relative to the working directory)
    get tmp(): string {
      if (!tmp) {
        throw new Error('no scratch directory: the testbed did not come up');
      }
      return tmp;
    }
  };
  beforeAll(async () => {
    await waitForTestbed();
    s.env = testbedEnv();
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), prefix));
  }, 150000);
  afterEach(async () => {
    await Promise.all(s.open.splice(0).map(c => c.close()));
  });
  afterAll(async () => {
    if (tmp) {
      await fs.rm(tmp, { recursive: true, force: true });
    }
  });
  return s;
}

/**
 * An ssh_config in `dir` that asks about unknown host keys and is otherwise the testbed's
 * (whose `StrictHostKeyChecking yes` refuses them): for tests of the host-key dialog.
 */
export async function askingSshConfig(testbedSshConfig: string, dir: string): Promise<string> {
  const file = path.join(dir, 'ssh_config_ask');
  await fs.writeFile(file, `Host *\n    StrictHostKeyChecking ask\n\nInclude ${testbedSshConfig}\n`);
  return file;
}

/** Resolves once `file` exists (a socket a spawned process binds); throws after `timeoutMs`. */
export async function waitForPath(file: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (
    !(await fs.stat(file).then(
      () => true,
      () => false
    ))
  ) {
    if (Date.now() > deadline) {
      throw new Error(`${file} did not appear within ${timeoutMs} ms`);
    }
    await new Promise(r => setTimeout(r, 50));
  }
}

/** A private ssh-agent listening in `dir`: its socket, `add(key)` (ssh-add) and `stop()`. */
export async function startSshAgent(
  dir: string
): Promise<{ sock: string; add: (key: string) => Promise<void>; stop: () => void }> {
  const sock = path.join(dir, 'agent.sock');
  const agent = spawn('ssh-agent', ['-D', '-a', sock], { stdio: 'ignore' });
  await waitForPath(sock);
  return {
    sock,
    add: key => run('ssh-add', ['-q', key], { SSH_AUTH_SOCK: sock }).then(() => undefined),
    stop: () => agent.kill()
  };
}
