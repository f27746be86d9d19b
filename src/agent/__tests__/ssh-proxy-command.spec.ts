/**
 * A ProxyCommand as a hop's stream: commands that stop reading or leave first (as `ssh -W`
 * and `nc` do when the server closes) end the stream like a closed socket, never with a
 * "Premature close" error that would hide the server's own reason.
 */
import { promises as fs } from 'node:fs';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

import { Server, utils } from 'ssh2';

import type { ClusterConnection } from '../ssh/connection';
import { ProxyCommandStream } from '../ssh/proxy-command';
import { ed25519KeyPair } from './helpers/keys';
import { startServer, testConnection, type ITestServer } from './helpers/ssh-server';

const quietLog = { debug: () => undefined, warn: () => undefined };

interface IOutcome {
  output: string;
  ended: boolean;
  errors: string[];
}

/** Everything the stream gives until it closes. */
function drain(stream: ProxyCommandStream): Promise<IOutcome> {
  const out: IOutcome = { output: '', ended: false, errors: [] };
  return new Promise(resolve => {
    stream.on('data', (d: Buffer) => (out.output += d.toString()));
    stream.on('end', () => (out.ended = true));
    stream.on('error', err => out.errors.push(err.message));
    stream.on('close', () => resolve(out));
  });
}

describe('ProxyCommandStream', () => {
  it('ends cleanly when the command leaves while we are still writing to it', async () => {
    const stream = new ProxyCommandStream('sh -c "head -c 5 >/dev/null; printf world"', 't', quietLog);
    const outcome = drain(stream);
    stream.write('hello');
    expect(await outcome).toEqual({ output: 'world', ended: true, errors: [] });
  });

  it('passes our end of input to the command and reads what it says after (half-close)', async () => {
    const stream = new ProxyCommandStream('sh -c "wc -c; printf bye"', 't', quietLog);
    const outcome = new Promise<IOutcome>(resolve => {
      const out: IOutcome = { output: '', ended: false, errors: [] };
      stream.on('data', (d: Buffer) => (out.output += d.toString()));
      stream.on('end', () => (out.ended = true));
      stream.on('error', err => out.errors.push(err.message));
      stream.on('close', () => resolve(out));
    });
    stream.end('12345678');
    const { output, ended, errors } = await outcome;
    expect([output.replace(/\s+/g, ' ').trim(), ended, errors]).toEqual(['8 bye', true, []]);
  });

  it('keeps every byte of a large output, with backpressure', async () => {
    const stream = new ProxyCommandStream('head -c 8000000 /dev/zero', 't', quietLog);
    let bytes = 0;
    stream.pause();
    const done = new Promise<void>(resolve => stream.on('end', resolve));
    // a slow reader: the command must wait for us, not lose data
    const timer = setInterval(() => {
      let chunk: Buffer | null;
      while ((chunk = stream.read() as Buffer | null) !== null) {
        bytes += chunk.length;
      }
    }, 5);
    await done;
    clearInterval(timer);
    expect(bytes).toBe(8000000);
  });

  it('stops the command when the stream is destroyed', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'rc-proxycmd-'));
    const pidFile = path.join(dir, 'pid');
    const stream = new ProxyCommandStream(`sh -c 'echo $$ > ${pidFile}; exec sleep 30'`, 't', quietLog);
    stream.on('error', () => undefined);
    let pid = 0;
    for (let i = 0; i < 100 && !pid; i++) {
      await new Promise(r => setTimeout(r, 20));
      pid = Number((await fs.readFile(pidFile, 'utf8').catch(() => '')).trim());
    }
    expect(pid).toBeGreaterThan(0);
    stream.destroy();
    await new Promise<void>(resolve => stream.on('close', () => resolve()));
    let alive = true;
    for (let i = 0; i < 100 && alive; i++) {
      await new Promise(r => setTimeout(r, 20));
      try {
        process.kill(pid, 0);
      } catch {
        alive = false;
      }
    }
    expect(alive).toBe(false);
    await fs.rm(dir, { recursive: true, force: true });
  });
});

describe('a hop reached through a ProxyCommand that leaves when the server closes', () => {
  let tmp: string;
  let server: ITestServer | undefined;
  const conns: ClusterConnection[] = [];

  beforeEach(async () => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'rc-proxycmd-'));
  });

  afterEach(async () => {
    conns.forEach(c => c.close());
    conns.length = 0;
    await server?.close();
    server = undefined;
    await fs.rm(tmp, { recursive: true, force: true });
  });

  /** `ssh_config` with a ProxyCommand that copies both ways and exits when the server's
   * side closes (as `ssh -W %h:%p` and `nc` do); known_hosts with `hostKey` for the server. */
  async function proxiedTarget(port: number, hostKey: string) {
    const proxy = path.join(tmp, 'proxy.js');
    await fs.writeFile(
      proxy,
      "const s = require('net').connect(+process.argv[3], process.argv[2]);" +
        "process.stdin.pipe(s); s.pipe(process.stdout); s.on('close', () => process.exit(0));"
    );
    const config = path.join(tmp, 'ssh_config');
    await fs.writeFile(config, `Host 127.0.0.1\n  ProxyCommand ${process.execPath} ${proxy} %h %p\n`);
    const key = utils.parseKey(hostKey);
    if (key instanceof Error) {
      throw key;
    }
    const knownHosts = path.join(tmp, 'known_hosts');
    await fs.writeFile(knownHosts, `[127.0.0.1]:${port} ${key.type} ${key.getPublicSSH().toString('base64')}\n`);
    return { host: '127.0.0.1', port, user: 'me', configFile: config, knownHostsFiles: [knownHosts] };
  }

  const noPrompt = () => Promise.reject(new Error('no prompt expected'));

  it('says the server closed the connection (not "Premature close") when it hangs up at login', async () => {
    const hostKey = ed25519KeyPair();
    // like sshd refusing a user (DenyUsers, MaxStartups): the connection just closes
    const hangUp = new Server({ hostKeys: [hostKey.private] }, client => {
      client.on('error', () => undefined);
      client.on('authentication', () => client.end());
    });
    await new Promise<void>(resolve => hangUp.listen(0, '127.0.0.1', resolve));
    server = {
      port: (hangUp.address() as AddressInfo).port,
      hostKeyBlob: Buffer.alloc(0),
      seen: [],
      close: () => new Promise<void>(r => hangUp.close(() => r()))
    };
    const target = await proxiedTarget(server.port, hostKey.public);
    const conn = testConnection(tmp, server.port, noPrompt, () => undefined, { target });
    conns.push(conn);
    await expect(conn.connect()).rejects.toThrow(/closed the connection before login completed/);
  });

  it('reads what the command printed before it exited (the server greeted, then hung up)', async () => {
    // a command that has exited by the time its output is read: the output still counts
    const config = path.join(tmp, 'ssh_config');
    await fs.writeFile(config, "Host 127.0.0.1\n  ProxyCommand printf 'SSH-2.0-OpenSSH_9.2\\r\\n'\n");
    const target = {
      host: '127.0.0.1',
      port: 22,
      user: 'me',
      configFile: config,
      knownHostsFiles: [path.join(tmp, 'known_hosts')]
    };
    const conn = testConnection(tmp, 22, noPrompt, () => undefined, { target });
    conns.push(conn);
    await expect(conn.connect()).rejects.toThrow(/closed the connection/);
  });

  it("reports the refused host key, not the command's exit", async () => {
    server = await startServer(ctx => ctx.accept());
    // known_hosts holds another key for this host: a man in the middle, as ssh(1) sees it
    const target = await proxiedTarget(server.port, ed25519KeyPair().public);
    const conn = testConnection(tmp, server.port, noPrompt, () => undefined, { target });
    conns.push(conn);
    await expect(conn.connect()).rejects.toMatchObject({ code: 'host-key-changed' });
  });
});
