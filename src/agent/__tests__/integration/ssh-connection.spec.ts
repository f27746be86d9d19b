/**
 * ClusterConnection against the REAL testbed (testbed/testbed): OpenSSH sshd on a
 * bastion (TOTP second factor for bob), a login node and compute nodes, all in network
 * namespaces. The testbed's own files are never modified: known_hosts files are copied
 * to temporary directories before being altered.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';

import type { IPrompt, IPromptAnswer } from '../../../common/api';
import { ClusterConnection, type ConnectionState, type IClusterConnectionOptions } from '../../ssh/connection';
import { askingSshConfig, keygenFingerprint, run, startSshAgent, testbedScratch } from './testbed';

jest.setTimeout(60000);

type Prompt = Omit<IPrompt, 'id'>;

interface ITestbed {
  sshConfig: string;
  knownHosts: string;
  keyAlice: string;
  bobTotp: string;
}

function testbed(env: Record<string, string>): ITestbed {
  return {
    sshConfig: env.RC_TESTBED_SSH_CONFIG,
    knownHosts: env.RC_TESTBED_KNOWN_HOSTS,
    keyAlice: env.RC_TESTBED_KEY_ALICE,
    bobTotp: env.RC_TESTBED_BOB_TOTP
  };
}

describe('ssh ClusterConnection (testbed)', () => {
  let tb: ITestbed;
  let tmp: string;
  const scratch = testbedScratch('rc-ssh-it-');
  const open = scratch.open;

  function connection(
    target: IClusterConnectionOptions['target'],
    prompt: (p: Prompt) => Promise<IPromptAnswer> = async p => {
      throw new Error(`unexpected prompt: ${p.kind} ${p.title}`);
    },
    extra: Partial<IClusterConnectionOptions> = {}
  ): ClusterConnection {
    const c = new ClusterConnection({
      target,
      prompt,
      homeDir: tmp, // no stray ~/.ssh keys or known_hosts
      agentSocket: null,
      ...extra
    });
    open.push(c);
    return c;
  }

  beforeAll(() => {
    tb = testbed(scratch.env);
    tmp = scratch.tmp;
  });

  describe('alice through the bastion to login', () => {
    let conn: ClusterConnection;
    const states: [ConnectionState, string | undefined][] = [];

    beforeAll(async () => {
      conn = new ClusterConnection({
        target: { host: 'login', configFile: tb.sshConfig },
        prompt: async p => {
          throw new Error(`unexpected prompt ${p.kind}`);
        },
        homeDir: tmp,
        agentSocket: null,
        onStateChange: (s, m) => states.push([s, m])
      });
      await conn.connect();
    });

    afterAll(async () => {
      await conn.close();
    });

    it('runs hostname on login, through the bastion', async () => {
      const r = await conn.exec('hostname');
      expect(r).toEqual({ code: 0, stdout: 'login\n', stderr: '' });
      expect(conn.hopInfo.map(h => h.label)).toEqual(['bastion (198.18.0.2)', 'login (198.18.1.2)']);
      expect(conn.hopInfo.map(h => h.user)).toEqual(['alice', 'alice']);
      expect(states.map(s => s[0])).toEqual(['connecting', 'connected']);
    });

    it('reports exit codes, stdout, stderr, stdin and signals', async () => {
      await expect(conn.exec('echo out; echo err >&2; exit 3')).resolves.toEqual({
        code: 3,
        stdout: 'out\n',
        stderr: 'err\n'
      });
      await expect(conn.exec('tr a-z A-Z', { stdin: 'hello\n' })).resolves.toMatchObject({
        code: 0,
        stdout: 'HELLO\n'
      });
      await expect(conn.exec('cat')).resolves.toMatchObject({ code: 0, stdout: '' });
      const killed = await conn.exec('kill -TERM $$');
      expect(killed.code).toBeNull();
      expect(killed.signal).toBe('SIGTERM');
      await expect(conn.exec('no-such-command-xyz')).resolves.toMatchObject({ code: 127 });
    });

    it('bounds output and kills commands that time out', async () => {
      const big = await conn.exec('head -c 100000 /dev/zero', { maxOutputBytes: 1000 });
      expect(big.stdout.length).toBe(1000);
      expect(big.truncated).toBe(true);
      const t0 = Date.now();
      await expect(conn.exec('sleep 30', { timeoutMs: 500 })).rejects.toThrow(
        'The command on login (198.18.1.2) did not finish within 500 ms and was stopped.'
      );
      expect(Date.now() - t0).toBeLessThan(5000);
      // The connection is still usable, and several commands may run at once.
      const many = await Promise.all(Array.from({ length: 12 }, (_, i) => conn.exec(`echo ${i}`)));
      expect(many.map(r => r.stdout)).toEqual(Array.from({ length: 12 }, (_, i) => `${i}\n`));
    });

    it('waits for a session when sshd refuses one for MaxSessions (10), instead of failing', async () => {
      // Allow more sessions than sshd does: with the pty keeper, 16 at once must exceed
      // MaxSessions, and sshd answers the excess with "open failed". Each command then
      // waits for one that ends; none fails.
      const logs: string[] = [];
      const greedy = new ClusterConnection({
        target: { host: 'login', configFile: tb.sshConfig },
        prompt: async p => {
          throw new Error(`unexpected prompt ${p.kind}`);
        },
        homeDir: tmp,
        agentSocket: null,
        maxExecSessions: 16,
        logger: { debug: m => logs.push(m) }
      });
      try {
        await greedy.connect();
        const results = await Promise.all(Array.from({ length: 16 }, (_, i) => greedy.exec(`sleep 0.5; echo ${i}`)));
        expect(results.map(r => r.stdout)).toEqual(Array.from({ length: 16 }, (_, i) => `${i}\n`));
        expect(logs.filter(m => m.includes('refused a session')).length).toBeGreaterThan(0);
      } finally {
        await greedy.close();
      }
    });

    it('forwards from login to node1:22 (SSH banner)', async () => {
      for (const host of ['node1', '198.18.2.11']) {
        const ch = await conn.forwardOut(host, 22);
        const banner = await new Promise<string>((resolve, reject) => {
          let data = '';
          ch.on('data', (d: Buffer) => {
            data += d.toString();
            if (data.includes('\n')) {
              resolve(data);
            }
          });
          ch.on('error', reject);
          ch.on('close', () => reject(new Error(`closed after ${JSON.stringify(data)}`)));
        });
        ch.end();
        expect(banner).toMatch(/^SSH-2\.0-OpenSSH/);
      }
      await expect(conn.forwardOut('198.18.2.11', 1)).rejects.toThrow(
        /^login \(198\.18\.1\.2\) could not open a connection to 198\.18\.2\.11:1 \(.+\)\.$/
      );
      await expect(conn.forwardOut('node1; rm -rf /', 22)).rejects.toThrow(/Refusing to forward/);
    });

    it("writes and reads files over SFTP in alice's home", async () => {
      const dir = `.rc-ssh-it-${process.pid}-${Date.now()}`;
      await conn.mkdirp(`${dir}/a/b`);
      const file = `${dir}/a/b/state.json`;
      const data = Buffer.from(JSON.stringify({ hello: 'world', n: [1, 2, 3] }));
      await conn.writeFile(file, data);
      expect((await conn.readFile(file)).equals(data)).toBe(true);
      // Also one larger than an SFTP packet.
      const big = Buffer.alloc(300000, 'x');
      await conn.writeFile(`${dir}/big`, big, 0o640);
      expect((await conn.readFile(`${dir}/big`)).equals(big)).toBe(true);
      const ls = await conn.exec(`stat -c '%a %U %n' ${dir}/a ${dir}/a/b ${file} ${dir}/big && cat ${file}`);
      expect(ls.stdout).toBe(
        `700 alice ${dir}/a\n700 alice ${dir}/a/b\n600 alice ${file}\n640 alice ${dir}/big\n${data.toString()}`
      );
      // The same SFTP session is reused.
      expect(await conn.sftp()).toBe(await conn.sftp());
      await expect(conn.readFile(`${dir}/missing`)).rejects.toThrow(
        /^Could not read .*missing on login \(198\.18\.1\.2\): /
      );
      await conn.exec(`rm -rf ${dir}`);
    });

    it('keeps a pty session open on every hop (sshd then uses TCP_NODELAY)', async () => {
      // The keeper is `cat` on a pty: visible as a process with a tty on login.
      const r = await conn.exec('ps -o tty=,args= -u alice | awk \'$1 != "?" && $2 == "cat"\' | wc -l');
      expect(Number(r.stdout.trim())).toBeGreaterThanOrEqual(1);
    });

    it('round trips through a forward do not wait for delayed ACKs', async () => {
      // An echo server on login that answers each message in two writes (like ZMQ's
      // multipart frames). Without TCP_NODELAY on the SSH sockets, each round trip
      // takes ~40 ms (Nagle + delayed ACK); with it, well under a millisecond here.
      const port = 20000 + (process.pid % 20000);
      const server = conn
        .exec(
          `timeout 20 python3 -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", ${port})); s.listen(1)
c, _ = s.accept(); c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
while True:
    d = c.recv(100)
    if not d: break
    c.send(d[:1]); c.send(d[1:])
'`,
          { timeoutMs: 25000 }
        )
        .catch(() => undefined);
      let ch;
      for (let i = 0; ; i++) {
        try {
          ch = await conn.forwardOut('127.0.0.1', port);
          break;
        } catch (err) {
          if (i > 50) {
            throw err;
          }
          await new Promise(r => setTimeout(r, 100));
        }
      }
      const times: number[] = [];
      for (let i = 0; i < 40; i++) {
        const t = process.hrtime.bigint();
        await new Promise<void>(resolve => {
          let got = 0;
          const on = (d: Buffer): void => {
            got += d.length;
            if (got >= 10) {
              ch.off('data', on);
              resolve();
            }
          };
          ch.on('data', on);
          ch.write('a');
          ch.write('bcdefghij');
        });
        times.push(Number(process.hrtime.bigint() - t) / 1e6);
      }
      ch.end();
      await server;
      times.sort((a, b) => a - b);
      expect(times[20]).toBeLessThan(15);
    });
  });

  describe('bob with a TOTP second factor on the bastion', () => {
    let secret: string;
    let lastStep = 0;

    /** The current code; never the same 30 s step twice (the bastion refuses replays). */
    async function totp(): Promise<string> {
      let step = Math.floor(Date.now() / 30000);
      if (step <= lastStep) {
        await new Promise(r => setTimeout(r, (lastStep + 1) * 30000 - Date.now() + 200));
        step = Math.floor(Date.now() / 30000);
      }
      lastStep = step;
      return (await run('oathtool', ['--totp', secret])).trim();
    }

    beforeAll(async () => {
      secret = (await fs.readFile(tb.bobTotp, 'utf8')).trim();
    });

    it('logs in with the code given through the prompt callback', async () => {
      const prompts: Prompt[] = [];
      const conn = connection({ host: 'login-bob', configFile: tb.sshConfig }, async p => {
        prompts.push(p);
        return { answers: [await totp()] };
      });
      await conn.connect();
      expect((await conn.exec('id -un; hostname')).stdout).toBe('bob\nlogin\n');
      // One prompt per attempt; a retry happens only if another suite used this step's code.
      expect(prompts.length).toBeGreaterThanOrEqual(1);
      expect(prompts[0]).toMatchObject({
        kind: 'keyboard-interactive',
        cluster: 'login-bob',
        host: 'bastion-bob (198.18.0.2)',
        questions: [{ text: expect.stringMatching(/One-time password/), echo: false }]
      });
    });

    it('fails cleanly with a wrong code', async () => {
      const prompts: Prompt[] = [];
      const conn = connection({ host: 'login-bob', configFile: tb.sshConfig }, async p => {
        prompts.push(p);
        const right = (await run('oathtool', ['--totp', secret])).trim();
        return { answers: [String((Number(right) + 1) % 1000000).padStart(6, '0')] };
      });
      await expect(conn.connect()).rejects.toThrow(
        'Authentication failed for bob@bastion-bob (198.18.0.2): the server accepts keyboard-interactive; ' +
          'tried key /run/rc-testbed/laptop/id_bob, keyboard-interactive.'
      );
      expect(prompts.length).toBe(3);
      expect(prompts[2].instructions).toMatch(/attempt 3 of 3/);
      expect(conn.state).toBe('closed');
    });

    it('stops asking when the user cancels', async () => {
      const conn = connection({ host: 'login-bob', configFile: tb.sshConfig }, async () => ({ cancel: true }));
      await expect(conn.connect()).rejects.toThrow('Login to bob@bastion-bob (198.18.0.2) was cancelled.');
    });
  });

  describe('host keys', () => {
    it('asks about unknown keys on every hop; reject fails, accept appends and connects', async () => {
      const dir = await fs.mkdtemp(path.join(tmp, 'kh-'));
      const kh = path.join(dir, 'sub', 'known_hosts'); // the directory does not exist yet
      const bastionFp = await keygenFingerprint(tb.knownHosts, 'bastion', dir);
      const loginFp = await keygenFingerprint(tb.knownHosts, 'login', dir);
      expect(bastionFp).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);

      // (the testbed's own ssh_config says StrictHostKeyChecking yes: no dialog at all)
      const ask = await askingSshConfig(tb.sshConfig, dir);
      // Rejected: nothing written, a clear error naming the hop.
      const seen: Prompt[] = [];
      const rejecting = connection({ host: 'login', configFile: ask, knownHostsFiles: [kh] }, async p => {
        seen.push(p);
        return { accept: false };
      });
      await expect(rejecting.connect()).rejects.toThrow(
        `The host key of bastion (198.18.0.2) (${bastionFp}) was not accepted; not connecting.`
      );
      expect(seen).toHaveLength(1);
      expect(seen[0]).toMatchObject({
        kind: 'host-key',
        host: 'bastion (198.18.0.2)',
        hostKey: { type: 'ssh-ed25519', fingerprint: bastionFp }
      });
      await expect(fs.stat(kh)).rejects.toThrow(/ENOENT/);

      // Accepted: both hops asked, both keys appended, the connection works.
      const asked: Prompt[] = [];
      const accepting = connection({ host: 'login', configFile: ask, knownHostsFiles: [kh] }, async p => {
        asked.push(p);
        return { accept: true };
      });
      await accepting.connect();
      expect((await accepting.exec('hostname')).stdout).toBe('login\n');
      expect(asked.map(p => [p.kind, p.host, p.hostKey?.fingerprint])).toEqual([
        ['host-key', 'bastion (198.18.0.2)', bastionFp],
        ['host-key', 'login (198.18.1.2)', loginFp]
      ]);
      const written = (await fs.readFile(kh, 'utf8')).trim().split('\n');
      expect(written.map(l => l.split(' ')[0])).toEqual(['198.18.0.2', '198.18.1.2']);
      expect((await fs.stat(kh)).mode & 0o777).toBe(0o600);
      expect((await fs.stat(path.dirname(kh))).mode & 0o777).toBe(0o700);
      // ssh-keygen agrees with what we wrote.
      expect(await run('ssh-keygen', ['-F', '198.18.1.2', '-f', kh])).toContain('198.18.1.2 ssh-ed25519');

      // Next time: no questions.
      const again = connection({ host: 'login', configFile: tb.sshConfig, knownHostsFiles: [kh] });
      await again.connect();
      expect((await again.exec('hostname')).stdout).toBe('login\n');
    });

    it('refuses a changed key for login with both fingerprints, without asking', async () => {
      const dir = await fs.mkdtemp(path.join(tmp, 'kh-'));
      const kh = path.join(dir, 'known_hosts');
      const lines = (await fs.readFile(tb.knownHosts, 'utf8')).trim().split('\n');
      const node1Key = lines
        .find(l => l.startsWith('node1,'))!
        .split(' ')
        .slice(1)
        .join(' ');
      // login's entry now carries node1's key: a "changed" key for login.
      const altered = lines.map(l => (l.startsWith('login,') ? `${l.split(' ')[0]} ${node1Key}` : l));
      await fs.writeFile(kh, altered.join('\n') + '\n');
      const knownFp = await keygenFingerprint(tb.knownHosts, 'node1', dir);
      const offeredFp = await keygenFingerprint(tb.knownHosts, 'login', dir);
      const prompt = jest.fn(async () => ({ accept: true }));
      const conn = connection({ host: 'login', configFile: tb.sshConfig, knownHostsFiles: [kh] }, prompt);
      const err = await conn.connect().then(
        () => undefined,
        (e: Error) => e
      );
      expect(err?.message).toMatch(
        new RegExp(
          `^Host key for login \\(198\\.18\\.1\\.2\\) has CHANGED: known ${knownFp.replace(/[+/]/g, '\\$&')}, ` +
            `offered ${offeredFp.replace(/[+/]/g, '\\$&')}; refusing to connect`
        )
      );
      expect(prompt).not.toHaveBeenCalled();
      expect(await fs.readFile(kh, 'utf8')).toBe(altered.join('\n') + '\n');
    });

    it('refuses a @revoked key, and a host certificate of a CA not listed for the host', async () => {
      const dir = await fs.mkdtemp(path.join(tmp, 'kh-'));
      const lines = (await fs.readFile(tb.knownHosts, 'utf8')).trim().split('\n');
      const bastionKey = lines
        .find(l => l.startsWith('bastion,'))!
        .split(' ')
        .slice(1)
        .join(' ');
      const revoked = path.join(dir, 'revoked');
      await fs.writeFile(revoked, `@revoked * ${bastionKey}\n${lines.join('\n')}\n`);
      const prompt = jest.fn(async () => ({ accept: true }));
      await expect(
        connection({ host: 'login', configFile: tb.sshConfig, knownHostsFiles: [revoked] }, prompt).connect()
      ).rejects.toThrow(
        /^Host key SHA256:\S+ of bastion \(198\.18\.0\.2\) is marked @revoked \(.*revoked:1\); refusing to connect\.$/
      );
      // The bastion's own key posing as a CA: the bastion shows its certificate from the
      // testbed's CA, which this known_hosts does not list (host-certificates.spec.ts has more).
      const ca = path.join(dir, 'ca');
      await fs.writeFile(ca, `@cert-authority 198.18.0.2 ${bastionKey}\n`);
      await expect(
        connection({ host: 'login', configFile: tb.sshConfig, knownHostsFiles: [ca] }, prompt).connect()
      ).rejects.toThrow(
        /^The host certificate of bastion \(198\.18\.0\.2\) is not trusted: its CA \(SHA256:\S+\) is not listed with @cert-authority for 198\.18\.0\.2; refusing to connect\.$/
      );
      expect(prompt).not.toHaveBeenCalled();
    });
  });

  describe('keys and agents', () => {
    it('asks for the passphrase of an encrypted key', async () => {
      const dir = await fs.mkdtemp(path.join(tmp, 'key-'));
      const key = path.join(dir, 'id_enc');
      await fs.copyFile(tb.keyAlice, key);
      await fs.chmod(key, 0o600);
      await run('ssh-keygen', ['-q', '-p', '-P', '', '-N', 'correct horse', '-f', key]);
      const empty = path.join(dir, 'config');
      await fs.writeFile(empty, '');
      const prompts: Prompt[] = [];
      const conn = connection(
        {
          host: '198.18.0.2',
          user: 'alice',
          configFile: empty,
          identityFiles: [key],
          knownHostsFiles: [tb.knownHosts]
        },
        async p => {
          prompts.push(p);
          return { answers: [prompts.length === 1 ? 'wrong' : 'correct horse'] };
        }
      );
      await conn.connect();
      expect((await conn.exec('hostname')).stdout).toBe('bastion\n');
      expect(prompts.map(p => p.kind)).toEqual(['passphrase', 'passphrase']);
      expect(prompts[0].questions).toEqual([{ text: `Enter passphrase for key ${key}:`, echo: false }]);
      expect(prompts[1].instructions).toMatch(/Wrong passphrase/);
    });

    it('goes on with key files when SSH_AUTH_SOCK is stale', async () => {
      const conn = connection({ host: 'login', configFile: tb.sshConfig }, undefined, {
        agentSocket: path.join(tmp, 'no-such-agent.sock')
      });
      await conn.connect();
      expect((await conn.exec('hostname')).stdout).toBe('login\n');
    });

    describe('with an ssh-agent', () => {
      let agent: Awaited<ReturnType<typeof startSshAgent>>;
      let sock: string;

      beforeAll(async () => {
        agent = await startSshAgent(tmp);
        sock = agent.sock;
        await agent.add(tb.keyAlice);
      });

      afterAll(() => {
        agent?.stop();
      });

      it('logs in with a key held by the agent', async () => {
        const empty = path.join(tmp, 'empty-config');
        await fs.writeFile(empty, '');
        const conn = connection(
          { host: '198.18.0.2', user: 'alice', configFile: empty, knownHostsFiles: [tb.knownHosts] },
          undefined,
          { agentSocket: sock }
        );
        await conn.connect();
        expect((await conn.exec('hostname')).stdout).toBe('bastion\n');
      });

      it('with IdentitiesOnly, offers only the agent keys of the identity files', async () => {
        const cfg = path.join(tmp, 'only-config');
        await fs.writeFile(
          cfg,
          `Host b\n  HostName 198.18.0.2\n  User alice\n  IdentitiesOnly yes\n  IdentityFile ${tmp}/nope\n`
        );
        const conn = connection({ host: 'b', configFile: cfg, knownHostsFiles: [tb.knownHosts] }, undefined, {
          agentSocket: sock
        });
        await expect(conn.connect()).rejects.toThrow(
          /^Authentication failed for alice@b \(198\.18\.0\.2\): the server accepts publickey; tried ssh-agent keys\.$/
        );
      });
    });
  });

  describe('other ways to reach a host', () => {
    it('uses explicit jump hosts and a ProxyCommand', async () => {
      const cfg = path.join(tmp, 'pc-config');
      await fs.writeFile(
        cfg,
        [
          `Include ${tb.sshConfig}`,
          'Host pc-login',
          '  HostName 198.18.1.2',
          '  User alice',
          `  IdentityFile ${tb.keyAlice}`,
          `  UserKnownHostsFile ${tb.knownHosts}`,
          `  ProxyCommand ssh -F ${tb.sshConfig} -W %h:%p bastion`,
          ''
        ].join('\n')
      );
      const viaCommand = connection({ host: 'pc-login', configFile: cfg });
      await viaCommand.connect();
      expect((await viaCommand.exec('hostname')).stdout).toBe('login\n');
      expect(viaCommand.hopInfo.map(h => h.label)).toEqual(['pc-login (198.18.1.2)']);

      // Explicit jump hosts override ssh_config's ProxyJump: node1 via bastion and login.
      const viaJumps = connection({
        host: 'node1',
        configFile: tb.sshConfig,
        jumpHosts: ['bastion', 'alice@login:22']
      });
      await viaJumps.connect();
      expect((await viaJumps.exec('hostname')).stdout).toBe('node1\n');
      expect(viaJumps.hopInfo.map(h => h.alias)).toEqual(['bastion', 'login', 'node1']);
    });

    it('names the hop that cannot be reached', async () => {
      const cfg = path.join(tmp, 'bad-config');
      await fs.writeFile(cfg, `Include ${tb.sshConfig}\nHost nowhere\n  HostName 198.18.2.99\n  ProxyJump login\n`);
      const conn = connection({ host: 'nowhere', configFile: cfg, user: 'alice' }, undefined, {
        connectTimeoutMs: 8000
      });
      await expect(conn.connect()).rejects.toThrow(
        /^login \(198\.18\.1\.2\) could not open a connection to 198\.18\.2\.99:22 \(.+\)\.$/
      );
    });
  });

  it('reports state changes and can connect again after close', async () => {
    const states: ConnectionState[] = [];
    const conn = connection({ host: 'login', configFile: tb.sshConfig }, undefined, {
      onStateChange: s => states.push(s)
    });
    await conn.connect();
    await conn.close();
    await expect(conn.exec('true')).rejects.toThrow('Not connected to login.');
    await conn.connect();
    expect((await conn.exec('hostname')).stdout).toBe('login\n');
    await conn.close();
    expect(states).toEqual(['connecting', 'connected', 'closed', 'connecting', 'connected', 'closed']);
  });
});
