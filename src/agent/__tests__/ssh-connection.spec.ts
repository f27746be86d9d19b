/**
 * ClusterConnection against an in-process ssh2 server on 127.0.0.1: the auth flows the
 * testbed does not offer (password, several keyboard-interactive questions), host keys
 * on a non-22 port, and that answers never reach the log.
 */
import { promises as fs } from 'node:fs';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

import type { IPromptAnswer } from '../../common/api';
import { ClusterConnection, type IClusterConnectionOptions } from '../ssh/connection';
import { fingerprintSha256 } from '../ssh/known-hosts';
import { ed25519KeyPair } from './helpers/keys';
import { startServer, testConnection, type ITestServer, type Prompt } from './helpers/ssh-server';

const PASSWORD = 'pa55-w0rd-never-logged';

describe('ssh ClusterConnection (in-process server)', () => {
  let tmp: string;
  let kh: string;
  let server: ITestServer | undefined;
  const logs: string[] = [];
  const conns: ClusterConnection[] = [];

  function connect(
    port: number,
    prompt: (p: Prompt, signal: AbortSignal) => Promise<IPromptAnswer>,
    extra: Partial<IClusterConnectionOptions> = {}
  ): ClusterConnection {
    const c = testConnection(tmp, port, prompt, m => logs.push(m), extra);
    conns.push(c);
    return c;
  }

  beforeEach(async () => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'rc-ssh-unit-'));
    kh = path.join(tmp, 'known_hosts');
    logs.length = 0;
  });

  afterEach(async () => {
    await Promise.all(conns.splice(0).map(c => c.close()));
    await server?.close();
    server = undefined;
    await fs.rm(tmp, { recursive: true, force: true });
  });

  it('asks for the host key on a non-22 port, then the password; remembers the key as [host]:port', async () => {
    server = await startServer(ctx => {
      if (ctx.method === 'password' && ctx.password === PASSWORD) {
        ctx.accept();
      } else {
        ctx.reject(['password']);
      }
    });
    const prompts: Prompt[] = [];
    const c = connect(server.port, async p => {
      prompts.push(p);
      return p.kind === 'host-key' ? { accept: true } : { answers: [PASSWORD] };
    });
    await c.connect();
    await expect(c.exec('hello')).resolves.toEqual({ code: 0, stdout: 'ran: hello\n', stderr: '' });
    const label = `127.0.0.1:${server.port}`;
    expect(prompts).toEqual([
      expect.objectContaining({
        kind: 'host-key',
        cluster: '127.0.0.1',
        host: label,
        hostKey: { type: 'ssh-ed25519', fingerprint: fingerprintSha256(server.hostKeyBlob) }
      }),
      expect.objectContaining({
        kind: 'password',
        host: label,
        questions: [{ text: `Password for me@${label}:`, echo: false }]
      })
    ]);
    expect((await fs.readFile(kh, 'utf8')).split(' ')[0]).toBe(`[127.0.0.1]:${server.port}`);
    await c.close();

    // Second time: the key is known, only the password is asked.
    prompts.length = 0;
    await c.connect();
    expect(prompts.map(p => p.kind)).toEqual(['password']);
    expect(logs.join('\n')).not.toContain(PASSWORD);
  });

  it('gives up after three wrong passwords with one clear sentence', async () => {
    server = await startServer(ctx =>
      ctx.method === 'password' && ctx.password === PASSWORD ? ctx.accept() : ctx.reject(['password'])
    );
    await fs.writeFile(kh, `[127.0.0.1]:${server.port} ssh-ed25519 ${server.hostKeyBlob.toString('base64')}\n`);
    const prompts: Prompt[] = [];
    const c = connect(server.port, async p => {
      prompts.push(p);
      return { answers: ['wrong'] };
    });
    await expect(c.connect()).rejects.toThrow(
      `Authentication failed for me@127.0.0.1:${server.port}: the server accepts password; tried password.`
    );
    expect(prompts).toHaveLength(3);
    expect(prompts[1].instructions).toBe('Wrong password; try again (attempt 2 of 3).');
    expect(server.seen.filter(m => m === 'password')).toHaveLength(3);
    expect(c.state).toBe('closed');
  });

  it('relays every keyboard-interactive question with its echo flag', async () => {
    server = await startServer(ctx => {
      if (ctx.method !== 'keyboard-interactive') {
        ctx.reject(['keyboard-interactive']);
        return;
      }
      ctx.prompt(
        [
          { prompt: 'Verification code: ', echo: false },
          { prompt: 'Project: ', echo: true }
        ],
        'Two questions',
        'Answer both.',
        answers => (answers[0] === '123456' && answers[1] === 'climate' ? ctx.accept() : ctx.reject())
      );
    });
    await fs.writeFile(kh, `[127.0.0.1]:${server.port} ssh-ed25519 ${server.hostKeyBlob.toString('base64')}\n`);
    const prompts: Prompt[] = [];
    const c = connect(server.port, async p => {
      prompts.push(p);
      return { answers: ['123456', 'climate'] };
    });
    await c.connect();
    expect(prompts).toEqual([
      {
        kind: 'keyboard-interactive',
        cluster: '127.0.0.1',
        host: `127.0.0.1:${server.port}`,
        title: 'Two questions',
        instructions: 'Answer both.',
        questions: [
          { text: 'Verification code: ', echo: false },
          { text: 'Project: ', echo: true }
        ]
      }
    ]);
    expect(logs.join('\n')).not.toMatch(/123456|climate/);
  });

  it('refuses a changed host key without asking, naming both fingerprints', async () => {
    server = await startServer(ctx => ctx.accept());
    const other = ed25519KeyPair();
    const otherBlob = Buffer.from(other.public.split(' ')[1], 'base64');
    await fs.writeFile(kh, `[127.0.0.1]:${server.port} ssh-ed25519 ${otherBlob.toString('base64')}\n`);
    const prompt = jest.fn(async () => ({ accept: true }));
    const c = connect(server.port, prompt);
    await expect(c.connect()).rejects.toThrow(
      `Host key for 127.0.0.1:${server.port} has CHANGED: known ${fingerprintSha256(otherBlob)}, ` +
        `offered ${fingerprintSha256(server.hostKeyBlob)}; refusing to connect`
    );
    expect(prompt).not.toHaveBeenCalled();
    expect(server.seen).toEqual([]); // never got as far as authenticating
  });

  it('times out on a silent server, but not while the user is answering', async () => {
    server = await startServer(ctx => (ctx.method === 'password' ? ctx.accept() : ctx.reject(['password'])));
    const c = connect(
      server.port,
      async p => {
        // The user takes longer than the connect timeout to decide.
        await new Promise(r => setTimeout(r, 1500));
        return p.kind === 'host-key' ? { accept: true } : { answers: ['x'] };
      },
      { connectTimeoutMs: 1000 }
    );
    await c.connect();
    expect(c.state).toBe('connected');

    // A TCP server that never speaks SSH.
    const net = await import('node:net');
    const accepted: import('node:net').Socket[] = [];
    const silent = net.createServer(sock => {
      accepted.push(sock);
    });
    await new Promise<void>(r => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as AddressInfo).port;
    try {
      const t0 = Date.now();
      await expect(connect(port, async () => ({ cancel: true }), { connectTimeoutMs: 500 }).connect()).rejects.toThrow(
        `Timed out connecting to 127.0.0.1:${port}: no answer from the server within 500 ms.`
      );
      expect(Date.now() - t0).toBeLessThan(3000);
    } finally {
      accepted.forEach(sock => sock.destroy());
      silent.close();
    }
  });

  it('withdraws a pending prompt when the attempt is closed', async () => {
    server = await startServer(ctx => (ctx.method === 'password' ? ctx.accept() : ctx.reject(['password'])));
    await fs.writeFile(kh, `[127.0.0.1]:${server.port} ssh-ed25519 ${server.hostKeyBlob.toString('base64')}\n`);
    let signal: AbortSignal | undefined;
    let asked!: () => void;
    const wasAsked = new Promise<void>(r => (asked = r));
    const c = connect(server.port, (_p, s) => {
      signal = s;
      asked();
      // A user who never answers; the dialog goes away when the signal fires.
      return new Promise<IPromptAnswer>(resolve => s.addEventListener('abort', () => resolve({ cancel: true })));
    });
    const states: string[] = [];
    c.on('state', (st: string) => states.push(st));
    const attempt = c.connect();
    await wasAsked;
    expect(signal?.aborted).toBe(false);
    await c.close();
    await expect(attempt).rejects.toThrow('Connecting to 127.0.0.1 was cancelled.');
    expect(signal?.aborted).toBe(true);
    expect(states).toEqual(['connecting', 'closed']);
    expect(c.state).toBe('closed');
  });

  it('says clearly when nothing listens', async () => {
    const net = await import('node:net');
    const s = net.createServer();
    await new Promise<void>(r => s.listen(0, '127.0.0.1', r));
    const port = (s.address() as AddressInfo).port;
    await new Promise<void>(r => s.close(() => r()));
    await expect(connect(port, async () => ({ cancel: true })).connect()).rejects.toThrow(
      `Could not connect to 127.0.0.1:${port}: connection refused at 127.0.0.1:${port}.`
    );
  });
});
