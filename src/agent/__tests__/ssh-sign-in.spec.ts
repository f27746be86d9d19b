/**
 * Logins that need a person (one-time codes, passwords, unknown host keys), from the
 * server's side: what it is sent when nobody can answer, when the user cancels or sends
 * nothing, and after repeated wrong codes. The server counts every answer it gets as an
 * attempt (sites lock accounts after a few), so the assertions are about what reached it.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { utils, type AuthContext } from 'ssh2';

import type { IPromptAnswer } from '../../common/api';
import type { ClusterConnection, IClusterConnectionOptions } from '../ssh/connection';
import { fingerprintSha256 } from '../ssh/known-hosts';
import { SignInGuard } from '../ssh/sign-in-guard';
import { startServer, testConnection, type ITestServer, type Prompt } from './helpers/ssh-server';

const CODE = '424242';

describe('signing in when a person is needed', () => {
  let tmp: string;
  let server: ITestServer | undefined;
  /** The answers the server received, one list per keyboard-interactive round. */
  let received: string[][];
  const conns: ClusterConnection[] = [];

  /** A server asking for a one-time code (keyboard-interactive) and nothing else. */
  const otpServer = () =>
    startServer((ctx: AuthContext) => {
      if (ctx.method !== 'keyboard-interactive') {
        ctx.reject(['keyboard-interactive']);
        return;
      }
      ctx.prompt([{ prompt: 'Verification code: ', echo: false }], 'OTP', '', answers => {
        received.push(answers);
        return answers[0] === CODE ? ctx.accept() : ctx.reject(['keyboard-interactive']);
      });
    });

  async function connect(
    prompt: (p: Prompt, signal: AbortSignal) => Promise<IPromptAnswer>,
    extra: Partial<IClusterConnectionOptions> = {},
    knownHosts = true
  ): Promise<ClusterConnection> {
    if (knownHosts) {
      await fs.writeFile(
        path.join(tmp, 'known_hosts'),
        `[127.0.0.1]:${server!.port} ssh-ed25519 ${server!.hostKeyBlob.toString('base64')}\n`
      );
    }
    const c = testConnection(tmp, server!.port, prompt, () => undefined, extra);
    conns.push(c);
    return c;
  }

  beforeEach(async () => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'rc-sign-in-'));
    received = [];
  });

  afterEach(async () => {
    await Promise.all(conns.splice(0).map(c => c.close()));
    await server?.close();
    server = undefined;
    await fs.rm(tmp, { recursive: true, force: true });
  });

  it('with nobody to ask, stops before the server asks for the code', async () => {
    server = await otpServer();
    const prompt = jest.fn(async () => ({ answers: [CODE] }));
    const c = await connect(prompt, { canAsk: () => false });
    await expect(c.connect()).rejects.toMatchObject({
      code: 'sign-in-needed',
      message: expect.stringContaining('no JupyterLab is open to ask you: sign in from JupyterLab')
    });
    expect(prompt).not.toHaveBeenCalled();
    expect(server.seen).not.toContain('keyboard-interactive');
    expect(received).toEqual([]);
  });

  it.each([
    ['cancels', { cancel: true }],
    ['sends nothing', { answers: [''] }],
    ['sends no answer list', {}]
  ])('when the user %s, leaves without answering the server', async (_, answer: IPromptAnswer) => {
    server = await otpServer();
    const c = await connect(async () => answer);
    await expect(c.connect()).rejects.toMatchObject({ code: 'auth-cancelled' });
    expect(server.seen).toContain('keyboard-interactive');
    expect(received).toEqual([]); // no empty answers: nothing the server could count as a failure
  });

  it('after three wrong codes, makes no more attempts for the account within the hour', async () => {
    server = await otpServer();
    let now = Date.parse('2026-12-05T10:00:00Z');
    const guard = new SignInGuard(3, 3_600_000, () => now);
    const prompts: Prompt[] = [];
    const answers = ['111111', '222222', '333333'];
    const c = await connect(
      async p => {
        prompts.push(p);
        return { answers: [answers.shift() ?? CODE] };
      },
      { signInGuard: guard }
    );
    // ssh(1)'s NumberOfPasswordPrompts (3) in one login: three codes, three failures
    await expect(c.connect()).rejects.toMatchObject({ code: 'auth-failed' });
    expect(received).toEqual([['111111'], ['222222'], ['333333']]);

    const again = await connect(
      async p => {
        prompts.push(p);
        return { answers: [CODE] };
      },
      { signInGuard: guard }
    );
    await expect(again.connect()).rejects.toMatchObject({
      code: 'sign-in-paused',
      message: expect.stringContaining(
        `3 sign-in attempts for me@127.0.0.1:${server.port} failed within the last 60 minutes`
      )
    });
    expect(received).toHaveLength(3); // the right code was not even asked for
    expect(prompts).toHaveLength(3);

    now += 3_600_001; // an hour later, the account may be tried again
    await again.connect();
    expect(received.at(-1)).toEqual([CODE]);
  });

  it('counts only refused codes: a right one after a wrong one leaves one failure', async () => {
    server = await otpServer();
    const guard = new SignInGuard(2);
    const answers = ['999999', CODE];
    const c = await connect(async () => ({ answers: [answers.shift()!] }), { signInGuard: guard });
    await c.connect();
    expect(guard.blocked(`me@127.0.0.1:${server.port}`)).toBeUndefined();
    guard.failed(`me@127.0.0.1:${server.port}`);
    expect(guard.blocked(`me@127.0.0.1:${server.port}`)).toContain('2 sign-in attempts');
  });
});

describe('unknown host keys, as ssh_config says', () => {
  let tmp: string;
  let server: ITestServer | undefined;

  beforeEach(async () => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'rc-hostkeys-'));
    server = await startServer(ctx => ctx.accept());
  });

  afterEach(async () => {
    await server?.close();
    await fs.rm(tmp, { recursive: true, force: true });
  });

  const withConfig = async (lines: string): Promise<Partial<IClusterConnectionOptions>> => {
    const configFile = path.join(tmp, 'ssh_config');
    await fs.writeFile(configFile, `Host *\n${lines}\n`);
    return {
      target: {
        host: '127.0.0.1',
        port: server!.port,
        user: 'me',
        configFile,
        knownHostsFiles: [path.join(tmp, 'known_hosts')]
      }
    };
  };

  it('StrictHostKeyChecking yes: refuses an unknown key without asking', async () => {
    const prompt = jest.fn(async () => ({ accept: true }));
    const c = testConnection(
      tmp,
      server!.port,
      prompt,
      () => undefined,
      await withConfig('  StrictHostKeyChecking yes')
    );
    await expect(c.connect()).rejects.toMatchObject({
      code: 'host-key-unknown',
      message: expect.stringContaining(
        `StrictHostKeyChecking is yes: not connecting. Its ssh-ed25519 key is ${fingerprintSha256(server!.hostKeyBlob)}`
      )
    });
    expect(prompt).not.toHaveBeenCalled();
    expect(server!.seen).toEqual([]);
    await expect(fs.readFile(path.join(tmp, 'known_hosts'), 'utf8')).rejects.toThrow();
  });

  it('StrictHostKeyChecking accept-new: remembers a new key without asking, as ssh(1) does', async () => {
    const prompt = jest.fn(async () => ({ accept: false }));
    const c = testConnection(
      tmp,
      server!.port,
      prompt,
      () => undefined,
      await withConfig('  StrictHostKeyChecking accept-new')
    );
    await c.connect();
    await c.close();
    expect(prompt).not.toHaveBeenCalled();
    expect(await fs.readFile(path.join(tmp, 'known_hosts'), 'utf8')).toContain(server!.hostKeyBlob.toString('base64'));
  });

  it("shows ssh(1)'s warning when keys of other types are known for the host", async () => {
    // known: an ECDSA key for this host; offered: its ed25519 key
    const other = utils.generateKeyPairSync('ecdsa', { bits: 256 }).public;
    await fs.writeFile(path.join(tmp, 'known_hosts'), `[127.0.0.1]:${server!.port} ${other.trim()}\n`);
    const prompts: Prompt[] = [];
    const c = testConnection(
      tmp,
      server!.port,
      async p => (prompts.push(p), { accept: false }),
      () => undefined
    );
    await expect(c.connect()).rejects.toMatchObject({ code: 'host-key-rejected' });
    expect(prompts).toHaveLength(1);
    expect(prompts[0].warnings).toEqual([
      `Keys of other types are already known for this host (${other.split(' ')[0]}), but not this ssh-ed25519 key.`
    ]);
  });

  it('with nobody to ask, an unknown key waits for sign-in instead of being rejected', async () => {
    const prompt = jest.fn(async () => ({ accept: true }));
    const c = testConnection(tmp, server!.port, prompt, () => undefined, { canAsk: () => false });
    await expect(c.connect()).rejects.toMatchObject({ code: 'sign-in-needed' });
    expect(prompt).not.toHaveBeenCalled();
  });
});
