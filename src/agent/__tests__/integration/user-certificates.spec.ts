/**
 * User certificates on the REAL testbed (issue 15): login's sshd trusts the testbed's
 * user CA (TrustedUserCAKeys) and knows none of these freshly made keys (no
 * authorized_keys line), so only the certificate can let them in. Logged in with a
 * `<key>-cert.pub` next to the key, with a profile's certificateFiles, and from an
 * ssh-agent holding the certificate; an expired certificate is not offered, is named
 * with its expiry, and the next key is tried. sshd's own log says which certificate it
 * accepted.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';

import type { ISshTarget } from '../../../common/api';
import { ClusterConnection } from '../../ssh/connection';
import { run, startSshAgent, testbedScratch } from './testbed';

jest.setTimeout(60000);

describe('user certificates (testbed)', () => {
  let env: Record<string, string>;
  let tmp: string;
  const scratch = testbedScratch('rc-usercert-');
  const open = scratch.open;
  const logs: string[] = [];
  let n = 0;

  beforeAll(() => {
    ({ env, tmp } = scratch);
  });
  beforeEach(() => {
    logs.length = 0;
  });

  /** A fresh key (not authorized anywhere) and, unless `validity` is null, a certificate for alice. */
  async function certifiedKey(validity: string | null = '-5m:+1h', opts: { certFile?: string } = {}) {
    const id = `rc-usercert-${process.pid}-${n++}`;
    const key = path.join(tmp, id);
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', id, '-f', key]);
    if (validity !== null) {
      await run('ssh-keygen', [
        '-q',
        '-s',
        env.RC_TESTBED_USER_CA,
        '-I',
        id,
        '-n',
        'alice',
        '-V',
        validity,
        `${key}.pub`
      ]);
      if (opts.certFile) {
        await fs.rename(`${key}-cert.pub`, opts.certFile);
      }
    }
    return { id, key };
  }

  /** An ssh_config: bastion with alice's usual key, login with `loginLines`. */
  async function config(loginLines: string[]): Promise<string> {
    const file = path.join(tmp, `config-${n++}`);
    await fs.writeFile(
      file,
      [
        'Host bastion',
        `  HostName ${env.RC_TESTBED_BASTION_ADDR}`,
        `  IdentityFile ${env.RC_TESTBED_KEY_ALICE}`,
        '  IdentitiesOnly yes',
        'Host login',
        `  HostName ${env.RC_TESTBED_LOGIN_ADDR}`,
        '  ProxyJump bastion',
        ...loginLines.map(l => `  ${l}`),
        'Host *',
        '  User alice',
        `  UserKnownHostsFile ${env.RC_TESTBED_KNOWN_HOSTS}`,
        '  GlobalKnownHostsFile /dev/null',
        '  StrictHostKeyChecking yes',
        ''
      ].join('\n')
    );
    return file;
  }

  function connection(target: ISshTarget, agentSocket: string | null = null): ClusterConnection {
    const log = (m: string) => logs.push(m);
    const c = new ClusterConnection({
      target,
      prompt: async p => {
        throw new Error(`unexpected prompt ${p.kind}`);
      },
      homeDir: tmp,
      agentSocket,
      logger: { debug: log, info: log, warn: log, error: log }
    });
    open.push(c);
    return c;
  }

  /** login's sshd accepted alice with the certificate whose key id is `id`. */
  async function acceptedWithCertificate(id: string): Promise<boolean> {
    const log = await fs.readFile(path.join(env.RC_TESTBED_STATE, 'ssh/login/sshd.log'), 'utf8');
    return new RegExp(`Accepted publickey for alice from .* ED25519-CERT SHA256:\\S+ ID ${id} `).test(log);
  }

  it('logs in with <key>-cert.pub next to the identity file, and not without it', async () => {
    const { id, key } = await certifiedKey();
    const conn = connection({ host: 'login', configFile: await config([`IdentityFile ${key}`, 'IdentitiesOnly yes']) });
    await conn.connect();
    expect((await conn.exec('id -un')).stdout).toBe('alice\n');
    expect(await acceptedWithCertificate(id)).toBe(true);

    // The same key without its certificate is not authorized: the certificate did it.
    await fs.rm(`${key}-cert.pub`);
    const plain = connection({
      host: 'login',
      configFile: await config([`IdentityFile ${key}`, 'IdentitiesOnly yes'])
    });
    await expect(plain.connect()).rejects.toThrow(/^Authentication failed for alice@login/);
  });

  it("logs in with a profile's certificateFiles and ssh_config's CertificateFile", async () => {
    const a = await certifiedKey('-5m:+1h', { certFile: path.join(tmp, 'profile-cert.pub') });
    const byProfile = connection({
      host: 'login',
      configFile: await config([`IdentityFile ${a.key}`, 'IdentitiesOnly yes']),
      certificateFiles: [path.join(tmp, 'profile-cert.pub')]
    });
    await byProfile.connect();
    expect(await acceptedWithCertificate(a.id)).toBe(true);

    const b = await certifiedKey('-5m:+1h', { certFile: path.join(tmp, 'config-cert.pub') });
    const byConfig = connection({
      host: 'login',
      configFile: await config([
        `IdentityFile ${b.key}`,
        `CertificateFile ${path.join(tmp, 'config-cert.pub')}`,
        'IdentitiesOnly yes'
      ])
    });
    await byConfig.connect();
    expect(await acceptedWithCertificate(b.id)).toBe(true);
  });

  it('skips an expired certificate naming its file and expiry, and logs in with the next key', async () => {
    const expired = await certifiedKey('20200101:20200102');
    const good = await certifiedKey();
    const expiry = new Date(2020, 0, 2).toISOString().replace('.000Z', 'Z');
    const note = `certificate ${expired.key}-cert.pub: it expired at ${expiry}, not offered`;
    const conn = connection({
      host: 'login',
      configFile: await config([`IdentityFile ${expired.key}`, `IdentityFile ${good.key}`, 'IdentitiesOnly yes'])
    });
    await conn.connect();
    expect(await acceptedWithCertificate(good.id)).toBe(true);
    expect(logs).toContain(`ssh: ${note}; trying the next key`);

    // Alone, the expired one fails, and the failure says why.
    const alone = connection({
      host: 'login',
      configFile: await config([`IdentityFile ${expired.key}`, 'IdentitiesOnly yes'])
    });
    const err = await alone.connect().then(
      () => undefined,
      (e: Error) => e
    );
    expect(err?.message).toContain(note);
  });

  describe('from an ssh-agent', () => {
    let agent: Awaited<ReturnType<typeof startSshAgent>>;

    beforeAll(async () => {
      agent = await startSshAgent(tmp);
    });
    afterAll(() => agent?.stop());

    it('logs in with a certificate the agent holds (its key file is gone), skipping an expired one', async () => {
      const expired = await certifiedKey('20200101:20200102');
      const good = await certifiedKey();
      // ssh-add loads <key>-cert.pub along with the key; then nothing is left on disk.
      await agent.add(expired.key);
      await agent.add(good.key);
      for (const k of [expired.key, good.key]) {
        await fs.rm(k);
        await fs.rm(`${k}.pub`);
        await fs.rm(`${k}-cert.pub`);
      }
      const conn = connection({ host: 'login', configFile: await config(['IdentitiesOnly no']) }, agent.sock);
      await conn.connect();
      expect((await conn.exec('id -un')).stdout).toBe('alice\n');
      expect(await acceptedWithCertificate(good.id)).toBe(true);
      expect(logs).toContain(
        `ssh: the ssh-agent's certificate "${expired.id}": it expired at ${new Date(2020, 0, 2).toISOString().replace('.000Z', 'Z')}, not offered`
      );
    });
  });
});
