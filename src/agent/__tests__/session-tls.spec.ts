/**
 * The session's TLS: certificates made by the agent (checked by OpenSSL's strict verifier
 * and used by Node and by Python's ssl), and the relay client against the real helper
^ * (jupyterlab_remote_cluster/remote/helper/, run with the machine's python3), including
 * what an impostor on the relay's port gets: a failed handshake, never the token.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';

import { requestOver } from '../sessions/connectivity';
import { makeSessionTls, type ISessionTls } from '../tls/x509';
import { openRelay, RelayError, type IRelayCredentials } from '../tunnels/relay';

const HELPER = path.resolve(__dirname, '../../../jupyterlab_remote_cluster/remote/helper');

describe('session certificates', () => {
  const t = makeSessionTls('ab12cd');

  it('are a CA and a certificate it signs, for servers and clients, passing OpenSSL -x509_strict', async () => {
    const ca = new X509Certificate(t.caCert);
    const leaf = new X509Certificate(t.cert);
    expect(ca.ca).toBe(true);
    expect(leaf.ca).toBe(false);
    expect(leaf.checkIssued(ca)).toBe(true);
    expect(leaf.verify(ca.publicKey)).toBe(true);
    expect(leaf.checkHost('jrc-ab12cd')).toBe('jrc-ab12cd');
    expect(leaf.checkHost('jrc-other')).toBeUndefined();
    expect(leaf.keyUsage).toEqual(expect.arrayContaining(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']));
    expect(leaf.checkPrivateKey(createPrivateKey(t.key))).toBe(true);
    expect(new Date(leaf.validFrom).getTime()).toBeLessThan(Date.now());
    expect(new Date(leaf.validTo).getTime()).toBeGreaterThan(Date.now() + 300 * 86_400_000);
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'jrc-tls-'));
    try {
      await fs.writeFile(path.join(dir, 'ca.pem'), t.caCert);
      await fs.writeFile(path.join(dir, 'cert.pem'), t.cert);
      for (const purpose of ['sslserver', 'sslclient']) {
        const out = execFileSync(
          'openssl',
          ['verify', '-x509_strict', '-purpose', purpose, '-CAfile', 'ca.pem', 'cert.pem'],
          {
            cwd: dir
          }
        ).toString();
        expect(out.trim()).toBe('cert.pem: OK');
      }
      // another session's CA does not vouch for this certificate
      await fs.writeFile(path.join(dir, 'other.pem'), makeSessionTls('ab12cd').caCert);
      expect(() =>
        execFileSync('openssl', ['verify', '-CAfile', 'other.pem', 'cert.pem'], { cwd: dir, stdio: 'pipe' })
      ).toThrow();
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it('every session gets its own CA and key', () => {
    const u = makeSessionTls('ab12cd');
    expect(u.caCert).not.toBe(t.caCert);
    expect(u.key).not.toBe(t.key);
  });
});

/** The real helper on 127.0.0.1 with connectivity via-login, in a temporary session dir. */
async function startHelper(
  session: ISessionTls,
  token: string
): Promise<{ proc: ChildProcess; dir: string; port: number }> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'jrc-relay-'));
  const sdir = path.join(dir, 'session');
  await fs.mkdir(sdir, { mode: 0o700 });
  const config = {
    sessionId: 'ab12cd',
    token,
    tls: { ca: session.caCert, cert: session.cert, key: session.key },
    workdir: dir,
    connectivity: 'via-login',
    bindAddress: '127.0.0.1'
  };
  await fs.writeFile(path.join(sdir, 'config.json'), JSON.stringify(config), { mode: 0o600 });
  const proc = spawn('python3', [HELPER, 'serve', '--session-dir', sdir], { stdio: 'ignore' });
  for (let i = 0; i < 200; i++) {
    try {
      const st = JSON.parse(await fs.readFile(path.join(sdir, 'state.json'), 'utf8'));
      if (st.status === 'failed') {
        throw new Error(st.error);
      }
      if (st.status === 'ready') {
        return { proc, dir, port: st.relayPort };
      }
    } catch (err) {
      if (!(err instanceof SyntaxError) && (err as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw err;
      }
    }
    await new Promise(r => setTimeout(r, 50));
  }
  throw new Error('the helper did not become ready');
}

function tcp(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });
}

describe('the relay client against the real helper', () => {
  const session = makeSessionTls('ab12cd');
  const token = 'f'.repeat(64);
  const creds: IRelayCredentials = {
    ca: session.caCert,
    cert: session.cert,
    key: session.key,
    name: 'jrc-ab12cd',
    token
  };
  let helper: { proc: ChildProcess; dir: string; port: number };

  beforeAll(async () => {
    helper = await startHelper(session, token);
  });
  afterAll(async () => {
    helper.proc.kill('SIGTERM');
    await new Promise(r => helper.proc.once('exit', r));
    await fs.rm(helper.dir, { recursive: true, force: true });
  });

  it('reaches the control channel over TLS with the session certificate and token', async () => {
    const stream = await openRelay(await tcp(helper.port), creds, 'control', 'node1:relay');
    const r = await requestOver(stream, 'GET', '/health', token, undefined, 10_000, 'node1');
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ status: 'ready', sessionId: 'ab12cd', version: 2 });
  });

  it("names the helper's refusal: a wrong token, an unknown target", async () => {
    await expect(
      openRelay(await tcp(helper.port), { ...creds, token: 'x'.repeat(64) }, 'control', 'node1:relay')
    ).rejects.toMatchObject({
      status: 401,
      message: expect.stringMatching(/refused control: missing or wrong bearer token/)
    });
    await expect(openRelay(await tcp(helper.port), creds, 'kernel/nosuch/shell', 'node1:relay')).rejects.toMatchObject({
      status: 404
    });
  });

  it("is refused by the helper without the session's certificate", async () => {
    const other = makeSessionTls('ab12cd');
    // our CA, but a certificate of another CA (someone else's session, or bob's own)
    const err = await openRelay(
      await tcp(helper.port),
      { ...creds, cert: other.cert, key: other.key },
      'control',
      'node1:relay'
    ).catch(e => e);
    expect(err).toBeInstanceOf(RelayError);
    expect(err.status).toBe(0);
  });

  it("sends an impostor on the relay's port nothing but a failed handshake", async () => {
    // bob binds the port a helper released, with a certificate of his own making
    const bob = makeSessionTls('ab12cd');
    const received: Buffer[] = [];
    const server = tls.createServer({ cert: bob.cert, key: bob.key, ca: bob.caCert, requestCert: false }, s => {
      s.on('data', d => received.push(d));
      s.on('error', () => undefined);
    });
    const raw: Buffer[] = [];
    server.on('connection', (s: net.Socket) => s.on('data', d => raw.push(d)));
    server.on('tlsClientError', () => undefined);
    await new Promise<void>(r => server.listen(0, '127.0.0.1', r));
    try {
      const port = (server.address() as net.AddressInfo).port;
      const err = await openRelay(await tcp(port), creds, 'control', 'node1:relay').catch(e => e);
      expect(err).toBeInstanceOf(RelayError);
      expect(err.message).toMatch(/not this session's helper/);
      await new Promise(r => setTimeout(r, 100));
      expect(received).toEqual([]); // no CONNECT, no token: nothing decrypted
      expect(Buffer.concat(raw).includes(Buffer.from(token))).toBe(false);
    } finally {
      server.close();
    }
  });
});
