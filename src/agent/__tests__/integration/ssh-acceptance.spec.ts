/**
 * Acceptance tests of the SSH layer on the REAL testbed (issue 4), filling what
 * ssh-connection.spec.ts does not already prove: a three-hop chain from ssh_config,
 * a freshly generated passphrase key authorized for the test only, a man in the middle
 * on the login hop (an impostor sshd with another host key, presented as login),
 * ConnectTimeout against an address nobody answers, ServerAliveInterval/CountMax from
 * ssh_config against a server that stops answering, and half-close through LocalForward.
 *
 * The testbed is shared: the real sshd and its key files are never touched; everything
 * added (an authorized_keys line, a second sshd) is removed in finally.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';

import type { IPrompt, IPromptAnswer } from '../../../common/api';
import { ClusterConnection, type ConnectionState, type IClusterConnectionOptions } from '../../ssh/connection';
import { PROMPT_TIMEOUT_MS, PromptBroker } from '../../sessions/prompts';
import { LocalForward } from '../../tunnels/local-forward';
import { keygenFp, run, TESTBED, testbedScratch, waitForPath } from './testbed';

jest.setTimeout(60000);

const STATE = '/run/rc-testbed';

type Prompt = Omit<IPrompt, 'id'>;

const onLogin = (...cmd: string[]): Promise<string> => run(TESTBED, ['exec', 'login', '--', ...cmd]);

const escapeRe = (s: string): string => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

describe('SSH acceptance (testbed)', () => {
  let env: Record<string, string>;
  let cfg: string;
  let tmp: string;
  const scratch = testbedScratch('rc-ssh-acc-');
  const open = scratch.open;

  const noPrompt = async (p: Prompt): Promise<IPromptAnswer> => {
    throw new Error(`unexpected prompt: ${p.kind} ${p.title}`);
  };

  function connection(
    target: IClusterConnectionOptions['target'],
    prompt: (p: Prompt, signal: AbortSignal) => Promise<IPromptAnswer> = noPrompt,
    extra: Partial<IClusterConnectionOptions> = {}
  ): ClusterConnection {
    const c = new ClusterConnection({ target, prompt, homeDir: tmp, agentSocket: null, ...extra });
    open.push(c);
    return c;
  }

  beforeAll(() => {
    ({ env, tmp } = scratch);
    cfg = env.RC_TESTBED_SSH_CONFIG;
  });

  it('runs a command on node1 through bastion and login, with ProxyJump from ssh_config', async () => {
    const conn = connection({ host: 'node1', configFile: cfg });
    await conn.connect();
    expect(conn.hopInfo.map(h => h.label)).toEqual([
      'bastion (198.18.0.2)',
      'login (198.18.1.2)',
      'node1 (198.18.2.11)'
    ]);
    // SSH_CONNECTION's client address proves the last hop came from login's cluster side.
    const r = await conn.exec('hostname; echo $SSH_CONNECTION | cut -d" " -f1,3');
    expect(r).toEqual({ code: 0, stdout: 'node1\n198.18.2.1 198.18.2.11\n', stderr: '' });
  });

  it('runs a command on node1 with the chain given as profile jump hosts (addresses, no aliases)', async () => {
    // A config that knows nothing about the testbed: every hop comes from the profile.
    const bare = path.join(tmp, 'bare-config');
    await fs.writeFile(
      bare,
      `Host *\n  IdentityFile ${env.RC_TESTBED_KEY_ALICE}\n  IdentitiesOnly yes\n  UserKnownHostsFile ${env.RC_TESTBED_KNOWN_HOSTS}\n`
    );
    const conn = connection({
      host: '198.18.2.11',
      user: 'alice',
      configFile: bare,
      jumpHosts: ['alice@198.18.0.2', 'alice@198.18.1.2:22']
    });
    await conn.connect();
    expect(conn.hopInfo.map(h => h.label)).toEqual(['198.18.0.2', '198.18.1.2', '198.18.2.11']);
    expect((await conn.exec('hostname; id -un')).stdout).toBe('node1\nalice\n');
  });

  describe('a freshly generated key with a passphrase', () => {
    const authorized = '/home/alice/.ssh/authorized_keys';
    let key: string;
    let marker: string;
    let empty: string;

    beforeAll(async () => {
      const dir = await fs.mkdtemp(path.join(tmp, 'key-'));
      key = path.join(dir, 'id_pass');
      marker = `rc-acceptance-${process.pid}-${Date.now()}`;
      await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', 'tr0ub4dor &3', '-C', marker, '-f', key]);
      // Appended in place: the file keeps alice's ownership and mode.
      await fs.appendFile(authorized, await fs.readFile(`${key}.pub`, 'utf8'));
      empty = path.join(dir, 'config');
      await fs.writeFile(empty, `Host *\n  UserKnownHostsFile ${env.RC_TESTBED_KNOWN_HOSTS}\n`);
    });

    afterAll(async () => {
      // Remove exactly our line; other engineers' additions stay.
      const lines = (await fs.readFile(authorized, 'utf8')).split('\n');
      await fs.writeFile(authorized, lines.filter(l => !l.includes(marker)).join('\n'));
      expect(await fs.readFile(authorized, 'utf8')).not.toContain(marker);
    });

    it('asks for the passphrase once for the whole chain (again after a wrong one), then logs in on node1 with that key only', async () => {
      const prompts: Prompt[] = [];
      const conn = connection(
        // Only this key is offered anywhere (no agent, no ~/.ssh keys in homeDir).
        {
          host: '198.18.2.11',
          user: 'alice',
          configFile: empty,
          identityFiles: [key],
          jumpHosts: ['alice@198.18.0.2', 'alice@198.18.1.2']
        },
        async p => {
          prompts.push(p);
          return { answers: [prompts.length === 1 ? 'tr0ub4dor' : 'tr0ub4dor &3'] };
        }
      );
      await conn.connect();
      expect((await conn.exec('hostname')).stdout).toBe('node1\n');
      // Unlocked once on the first hop, then used on all three (one question per connect).
      const q = `Enter passphrase for key ${key}:`;
      expect(prompts.map(p => [p.kind, p.host, p.questions?.[0]?.text])).toEqual([
        ['passphrase', '198.18.0.2', q],
        ['passphrase', '198.18.0.2', q]
      ]);
      expect(prompts[1].instructions).toMatch(/Wrong passphrase/);
      // login's sshd logged that it accepted exactly this key for alice.
      const fp = await keygenFp(`${key}.pub`);
      const log = (await fs.readFile(`${STATE}/ssh/node1/sshd.log`, 'utf8')).split('\n');
      expect(log.filter(l => l.includes('Accepted publickey for alice from 198.18.2.1') && l.includes(fp))).not.toEqual(
        []
      );
    });

    it('without the passphrase (cancelled), the key is skipped and login fails clearly', async () => {
      const prompts: Prompt[] = [];
      const conn = connection(
        { host: '198.18.0.2', user: 'alice', configFile: empty, identityFiles: [key] },
        async p => {
          prompts.push(p);
          return { cancel: true };
        }
      );
      await expect(conn.connect()).rejects.toThrow(/^Authentication failed for alice@198\.18\.0\.2/);
      expect(prompts.map(p => p.kind)).toEqual(['passphrase']);
    });
  });

  describe('a man in the middle on the login hop', () => {
    // An impostor sshd of our own in login's namespace with a fresh host key, on its own
    // port, that presents itself as login: `HostKeyAlias login` makes its key be checked
    // against login's known_hosts entry, exactly as a redirected connection would be. The
    // real login is never touched (other tests use it meanwhile). The bastion hop is an
    // OpenSSH master opened beforehand (ProxyCommand `ssh -S ctl -W`), so this also runs
    // the ProxyCommand path.
    const FAKE_PORT = 2200 + (process.pid % 100);
    let dir: string;
    let fakePidFile: string;
    let fakeLog: string;
    let master: ChildProcess | undefined;
    let mitmConfig: string;
    let realConfig: string;
    const label = `login (198.18.1.2:${FAKE_PORT})`;

    beforeAll(async () => {
      dir = await fs.mkdtemp(path.join(tmp, 'mitm-'));
      await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'mitm', '-f', path.join(dir, 'host_key')]);
      fakePidFile = path.join(dir, 'sshd.pid');
      fakeLog = path.join(dir, 'sshd.log');
      await fs.writeFile(
        path.join(dir, 'sshd_config'),
        [
          `Port ${FAKE_PORT}`,
          'ListenAddress 198.18.1.2',
          `HostKey ${dir}/host_key`,
          `PidFile ${fakePidFile}`,
          'LogLevel VERBOSE',
          'UsePAM no',
          'PasswordAuthentication no',
          'KbdInteractiveAuthentication no',
          'AuthorizedKeysFile /dev/null',
          ''
        ].join('\n')
      );
      await onLogin('/usr/sbin/sshd', '-f', `${dir}/sshd_config`, '-E', fakeLog);
      const ctl = path.join(dir, 'ctl');
      master = spawn('ssh', ['-F', cfg, '-M', '-S', ctl, '-N', 'bastion'], { stdio: 'ignore' });
      await waitForPath(ctl);
      const hostLines = (port: number) => [
        'Host login',
        '  HostName 198.18.1.2',
        `  Port ${port}`,
        '  HostKeyAlias login',
        '  User alice',
        `  IdentityFile ${env.RC_TESTBED_KEY_ALICE}`,
        '  IdentitiesOnly yes',
        `  ProxyCommand ssh -F ${cfg} -S ${ctl} -W %h:%p bastion`,
        ''
      ];
      mitmConfig = path.join(dir, 'config');
      await fs.writeFile(mitmConfig, hostLines(FAKE_PORT).join('\n'));
      realConfig = path.join(dir, 'config-real');
      await fs.writeFile(realConfig, hostLines(22).join('\n'));
    });

    afterAll(async () => {
      master?.kill();
      const pid = await fs.readFile(fakePidFile, 'utf8').catch(() => '');
      if (/^\d+\s*$/.test(pid)) {
        process.kill(Number(pid), 'SIGTERM');
      }
    });

    const impostorConnections = async (): Promise<number> =>
      ((await fs.readFile(fakeLog, 'utf8').catch(() => '')).match(/Connection from 198\.18\.1\.1 /g) ?? []).length;

    /** Connects to the impostor; the attempt must fail after reaching it. */
    async function intercepted(conn: ClusterConnection): Promise<{ conn: ClusterConnection; err?: Error }> {
      const before = await impostorConnections();
      const err = await conn.connect().then(
        () => undefined,
        (e: Error) => e
      );
      expect(await impostorConnections()).toBe(before + 1);
      return { conn, err };
    }

    it('refuses the changed key naming login and both fingerprints; asks about an unknown one with its fingerprint', async () => {
      const realFp = await keygenFp(`${STATE}/ssh/login/ssh_host_ed25519_key.pub`);
      const fakeFp = await keygenFp(path.join(dir, 'host_key.pub'));
      expect(fakeFp).not.toBe(realFp);
      // Copies: the testbed's known_hosts is never modified.
      const known = path.join(dir, 'known_hosts');
      const original = await fs.readFile(env.RC_TESTBED_KNOWN_HOSTS, 'utf8');
      await fs.writeFile(known, original);
      const noLogin = path.join(dir, 'known_hosts_no_login');
      const withoutLogin = original
        .split('\n')
        .filter(l => !l.startsWith('login,'))
        .join('\n');
      await fs.writeFile(noLogin, withoutLogin);

      const changedPrompt = jest.fn(async () => ({ accept: true }));
      const { conn: changed, err: changedErr } = await intercepted(
        connection({ host: 'login', configFile: mitmConfig, knownHostsFiles: [known] }, changedPrompt)
      );
      const unknownPrompts: Prompt[] = [];
      const { conn: unknown, err: unknownErr } = await intercepted(
        connection({ host: 'login', configFile: mitmConfig, knownHostsFiles: [noLogin] }, async p => {
          unknownPrompts.push(p);
          return { accept: false };
        })
      );

      expect(changedErr?.message).toMatch(
        new RegExp(
          `^Host key for ${escapeRe(label)} has CHANGED: known ${escapeRe(realFp)}, offered ${escapeRe(fakeFp)}; refusing to connect`
        )
      );
      expect(changedPrompt).not.toHaveBeenCalled();
      expect(changed.state).toBe('closed');
      expect(await fs.readFile(known, 'utf8')).toBe(original);

      expect(unknownErr?.message).toBe(`The host key of ${label} (${fakeFp}) was not accepted; not connecting.`);
      expect(unknownPrompts.map(p => [p.kind, p.host, p.hostKey?.type, p.hostKey?.fingerprint])).toEqual([
        ['host-key', label, 'ssh-ed25519', fakeFp]
      ]);
      expect(unknown.state).toBe('closed');
      await expect(unknown.exec('true')).rejects.toThrow('Not connected to login.');
      expect(await fs.readFile(noLogin, 'utf8')).toBe(withoutLogin);
      // Neither attempt got as far as authenticating to the impostor.
      expect(await fs.readFile(fakeLog, 'utf8')).not.toMatch(/Accepted|Failed publickey|Postponed/);

      // The real login, reached the same way with the same known_hosts, is accepted.
      const again = connection({ host: 'login', configFile: realConfig, knownHostsFiles: [known] });
      await again.connect();
      expect((await again.exec('hostname')).stdout).toBe('login\n');
    });
  });

  it('an OTP question nobody answers is withdrawn after the prompt timeout and the login fails cleanly', async () => {
    // The agent's real broker between the connection and the (absent) user. Only timers
    // are faked, so the 180 s wait is instant; sockets and sshd are real.
    const events: string[] = [];
    const broker = new PromptBroker(
      e => events.push(e.type === 'prompt' ? `prompt ${e.prompt.kind} ${e.prompt.host}` : 'closed'),
      () => true
    );
    const conn = connection({ host: 'login-bob', configFile: cfg }, (q: Prompt, signal: AbortSignal) =>
      broker.ask(q, signal)
    );
    jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask', 'Date', 'hrtime', 'performance'] });
    try {
      const attempt = conn.connect().then(
        () => undefined,
        (e: Error) => e
      );
      // Real I/O goes on (key auth, then the OTP question); Date is real, timers are not.
      const deadline = Date.now() + 15000;
      while (broker.open().length === 0 && Date.now() < deadline) {
        await new Promise(r => setImmediate(r));
        await jest.advanceTimersByTimeAsync(0);
      }
      expect(broker.open().map(p => [p.kind, p.host])).toEqual([['keyboard-interactive', 'bastion-bob (198.18.0.2)']]);
      await jest.advanceTimersByTimeAsync(PROMPT_TIMEOUT_MS - 1000);
      expect(broker.open()).toHaveLength(1); // still waiting for the user
      await jest.advanceTimersByTimeAsync(1000);
      jest.useRealTimers();
      const err = await attempt;
      expect(err?.message).toBe('Login to bob@bastion-bob (198.18.0.2) was cancelled.');
      expect(broker.open()).toEqual([]);
      expect(events).toEqual(['prompt keyboard-interactive bastion-bob (198.18.0.2)', 'closed']);
      expect(conn.state).toBe('closed');
    } finally {
      jest.useRealTimers();
    }
  });

  it('honours ConnectTimeout from ssh_config for an address that never answers', async () => {
    // 198.18.0.99 is on the laptop's link but unused: the SYN goes nowhere (the kernel
    // gives up with "no route" only after ~3 s of ARP).
    const c = path.join(tmp, 'timeout-config');
    await fs.writeFile(c, 'Host ghost\n  HostName 198.18.0.99\n  User alice\n  ConnectTimeout 1\n');
    const conn = connection({ host: 'ghost', configFile: c });
    const t0 = Date.now();
    await expect(conn.connect()).rejects.toThrow(
      'Timed out connecting to ghost (198.18.0.99): no answer from the server within 1 s.'
    );
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(900);
    expect(took).toBeLessThan(2500);
    expect(conn.state).toBe('closed');
  });

  it('detects a server that stops answering after ServerAliveInterval x ServerAliveCountMax from ssh_config', async () => {
    const c = path.join(tmp, 'alive-config');
    await fs.writeFile(
      c,
      `Include ${cfg}\nHost bastion-alive\n  HostName 198.18.0.2\n  ServerAliveInterval 1\n  ServerAliveCountMax 2\nHost *\n  User alice\n  IdentityFile ${env.RC_TESTBED_KEY_ALICE}\n  UserKnownHostsFile ${env.RC_TESTBED_KNOWN_HOSTS}\n`
    );
    const states: [ConnectionState, string | undefined][] = [];
    const conn = connection({ host: 'bastion-alive', configFile: c }, noPrompt, {
      onStateChange: (s, m) => states.push([s, m])
    });
    await conn.connect();
    // Our own session's sshd process on the bastion (the parent of the exec'd shell).
    const pid = Number((await conn.exec('echo $PPID')).stdout.trim());
    expect(pid).toBeGreaterThan(1);
    expect(await fs.readFile(`/proc/${pid}/cmdline`, 'utf8')).toMatch(/^sshd: alice/);
    process.kill(pid, 'SIGSTOP');
    try {
      const t0 = Date.now();
      while (conn.state === 'connected' && Date.now() - t0 < 10000) {
        await new Promise(r => setTimeout(r, 100));
      }
      const took = Date.now() - t0;
      // ssh2 declares the link dead after CountMax unanswered keepalives: 2-3 intervals.
      expect(conn.state).not.toBe('connected');
      expect(took).toBeGreaterThan(1500);
      expect(took).toBeLessThan(5000);
      expect(states.at(-1)?.[1]).toMatch(/bastion-alive \(198\.18\.0\.2\).*lost.*[Kk]eepalive/);
    } finally {
      process.kill(pid, 'SIGCONT');
      process.kill(pid, 'SIGTERM');
    }
  });

  it('keeps half-close through LocalForward: a client that shuts its write side still gets the reply', async () => {
    // The kernel path: a local port -> login -> node1:port. The server runs on node1.
    const viaLogin = connection({ host: 'login', configFile: cfg });
    const onNode = connection({ host: 'node1', configFile: cfg });
    await Promise.all([viaLogin.connect(), onNode.connect()]);
    const port = 21000 + (process.pid % 20000);
    // Reads until EOF, then answers with the byte count and a checksum, then closes.
    const server = onNode
      .exec(
        `timeout 20 python3 -c '
import hashlib, socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("198.18.2.11", ${port})); s.listen(1)
c, _ = s.accept(); h = hashlib.sha256(); n = 0
while True:
    d = c.recv(65536)
    if not d: break
    h.update(d); n += len(d)
c.sendall(("%d %s" % (n, h.hexdigest())).encode()); c.close()
'`,
        { timeoutMs: 25000 }
      )
      .catch((err: Error) => err);
    const fwd = new LocalForward(() => viaLogin.forwardOut('198.18.2.11', port));
    const local = await fwd.listen();
    try {
      const payload = Buffer.alloc(3 * 1024 * 1024 + 17, 'half-close ');
      const expected = `${payload.length} ${(await import('node:crypto')).createHash('sha256').update(payload).digest('hex')}`;
      let reply = '';
      for (let attempt = 0; ; attempt++) {
        try {
          reply = await new Promise<string>((resolve, reject) => {
            const sock = net.connect({ host: '127.0.0.1', port: local, allowHalfOpen: true });
            let got = '';
            sock.on('data', (d: Buffer) => (got += d.toString()));
            sock.on('end', () => resolve(got));
            sock.on('error', reject);
            sock.on('close', () => resolve(got));
            sock.on('connect', () => sock.end(payload)); // write everything, then shut down our write side
          });
        } catch (err) {
          reply = '';
        }
        if (reply || attempt > 50) {
          break;
        }
        await new Promise(r => setTimeout(r, 100)); // the server was not listening yet
      }
      expect(reply).toBe(expected);
    } finally {
      fwd.close();
    }
    const done = await server;
    expect(done).toMatchObject({ code: 0 });
  });
});
