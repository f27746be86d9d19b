/**
 * Host certificates on the REAL testbed (issue 15): every sshd presents a certificate
 * from the testbed's host CA. With a known_hosts that holds nothing but
 * `@cert-authority`, bastion, login, node1 and a node-ssh hop to node3 are reached
 * without a prompt. Impostor sshds in login's namespace present certificates that must
 * be refused with their reasons: one from another CA, an expired one, and one for
 * another host. The testbed's own files are never modified.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';

import type { IPrompt, IPromptAnswer } from '../../../common/api';
import { ClusterConnection, type IClusterConnectionOptions } from '../../ssh/connection';
import { run, TESTBED, testbedScratch } from './testbed';

jest.setTimeout(60000);

type Prompt = Omit<IPrompt, 'id'>;

const onLogin = (...cmd: string[]): Promise<string> => run(TESTBED, ['exec', 'login', '--', ...cmd]);
const escapeRe = (s: string): string => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

describe('host certificates (testbed)', () => {
  let env: Record<string, string>;
  let tmp: string;
  let caOnly: string;
  let config: string;
  const prompts: Prompt[] = [];
  const scratch = testbedScratch('rc-hostcert-');
  const open = scratch.open;
  // Impostors listen on login's address next to its real sshd (ports unique per run).
  const base = 2300 + (process.pid % 50) * 4;
  const impostorPids: string[] = [];

  const prompt = async (p: Prompt): Promise<IPromptAnswer> => {
    prompts.push(p);
    return { accept: true };
  };

  function connection(target: IClusterConnectionOptions['target']): ClusterConnection {
    const c = new ClusterConnection({ target, prompt, homeDir: tmp, agentSocket: null });
    open.push(c);
    return c;
  }

  /** An sshd on login's address at `port` with a fresh host key certified by `signer`. */
  async function impostor(port: number, name: string, signer: string, opts: string[], type = 'ed25519'): Promise<void> {
    const dir = path.join(tmp, name);
    await fs.mkdir(dir);
    const key = path.join(dir, 'host_key');
    await run('ssh-keygen', ['-q', '-t', type, '-N', '', '-f', key]);
    await run('ssh-keygen', ['-q', '-s', signer, '-I', name, '-h', ...opts, `${key}.pub`]);
    const pid = path.join(dir, 'sshd.pid');
    await fs.writeFile(
      path.join(dir, 'sshd_config'),
      [
        `Port ${port}`,
        `ListenAddress ${env.RC_TESTBED_LOGIN_ADDR}`,
        `HostKey ${key}`,
        `HostCertificate ${key}-cert.pub`,
        `PidFile ${pid}`,
        'UsePAM no',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        // Only the RSA impostor lets alice in (it stands for a real host with an RSA key).
        `AuthorizedKeysFile ${type === 'rsa' ? '.ssh/authorized_keys' : '/dev/null'}`,
        ''
      ].join('\n')
    );
    await onLogin('/usr/sbin/sshd', '-f', path.join(dir, 'sshd_config'), '-E', path.join(dir, 'sshd.log'));
    impostorPids.push(pid);
  }

  /** An ssh_config reaching login (as `login`, HostKeyAlias login) on `port` through bastion. */
  async function loginConfig(port: number): Promise<string> {
    const file = path.join(tmp, `config-${port}`);
    const id = env.RC_TESTBED_KEY_ALICE;
    await fs.writeFile(
      file,
      [
        'Host bastion',
        `  HostName ${env.RC_TESTBED_BASTION_ADDR}`,
        'Host login',
        `  HostName ${env.RC_TESTBED_LOGIN_ADDR}`,
        `  Port ${port}`,
        '  HostKeyAlias login',
        '  ProxyJump bastion',
        'Host *',
        '  User alice',
        `  IdentityFile ${id}`,
        '  IdentitiesOnly yes',
        `  UserKnownHostsFile ${caOnly}`,
        '  GlobalKnownHostsFile /dev/null',
        '  StrictHostKeyChecking ask',
        ''
      ].join('\n')
    );
    return file;
  }

  beforeAll(async () => {
    ({ env, tmp } = scratch);
    caOnly = path.join(tmp, 'known_hosts');
    const ca = (await fs.readFile(`${env.RC_TESTBED_HOST_CA}.pub`, 'utf8')).trim();
    // Nothing but the CA, for every name and address of the testbed.
    await fs.writeFile(caOnly, `@cert-authority bastion,login,node*,198.18.* ${ca}\n`);
    config = path.join(tmp, 'ssh_config');
    await fs.writeFile(
      config,
      `Host *\n  UserKnownHostsFile ${caOnly}\n  StrictHostKeyChecking ask\n\nInclude ${env.RC_TESTBED_SSH_CONFIG}\n`
    );
    const other = path.join(tmp, 'other_ca');
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', other]);
    await impostor(base, 'other-ca', other, ['-n', 'login']);
    await impostor(base + 1, 'expired', env.RC_TESTBED_HOST_CA, ['-n', 'login', '-V', '20200101:20200102']);
    await impostor(base + 2, 'wrong-host', env.RC_TESTBED_HOST_CA, ['-n', 'node9,node9.rctb']);
    await impostor(base + 3, 'rsa', env.RC_TESTBED_HOST_CA, ['-n', 'login'], 'rsa');
  });

  afterAll(async () => {
    for (const f of impostorPids) {
      const pid = await fs.readFile(f, 'utf8').catch(() => '');
      if (/^\d+\s*$/.test(pid)) {
        process.kill(Number(pid), 'SIGTERM');
      }
    }
  });

  beforeEach(() => {
    prompts.length = 0;
  });

  it('reaches node1 through bastion and login, and node3 over node-ssh, with only @cert-authority known', async () => {
    const conn = connection({ host: 'node1', configFile: config });
    await conn.connect();
    expect((await conn.exec('hostname')).stdout).toBe('node1\n');
    const login = connection({ host: 'login', configFile: config });
    await login.connect();
    const node = await login.connectNode('node3');
    // From node3 itself (past its firewall), its own sshd answers through the node hop.
    const ch = await node.forwardOut(env.RC_TESTBED_NODE3_ADDR, 22);
    const banner = await new Promise<string>(resolve => ch.once('data', (d: Buffer) => resolve(d.toString('latin1'))));
    ch.destroy();
    expect(banner).toMatch(/^SSH-2\.0-/);
    expect(prompts).toEqual([]);
    // Nothing was learnt: trust stays with the CA.
    expect(await fs.readFile(caOnly, 'utf8')).toMatch(/^@cert-authority [^\n]+\n$/);
  });

  it('accepts an RSA host key certified by the CA (rsa-sha2 certificate algorithms)', async () => {
    const conn = connection({ host: 'login', configFile: await loginConfig(base + 3) });
    await conn.connect();
    expect((await conn.exec('id -un')).stdout).toBe('alice\n');
    expect(conn.hopInfo.at(-1)?.label).toBe(`login (${env.RC_TESTBED_LOGIN_ADDR}:${base + 3})`);
    expect(prompts).toEqual([]);
  });

  it.each([
    ['another CA', 0, /^its CA \(SHA256:\S+\) is not listed with @cert-authority for login$/],
    [
      'an expired certificate',
      1,
      new RegExp(`^it expired at ${escapeRe(new Date(2020, 0, 2).toISOString().replace('.000Z', 'Z'))}$`)
    ],
    ['a certificate for another host', 2, /^it is for node9, node9\.rctb, not login$/]
  ])('refuses %s without asking, saying why', async (_what, offset, reason) => {
    const port = base + offset;
    const conn = connection({ host: 'login', configFile: await loginConfig(port) });
    const err = await conn.connect().then(
      () => undefined,
      (e: Error) => e
    );
    const label = `login (${env.RC_TESTBED_LOGIN_ADDR}:${port})`;
    const m = new RegExp(`^The host certificate of ${escapeRe(label)} is not trusted: (.*); refusing to connect`).exec(
      err?.message ?? ''
    );
    expect([err?.message, m?.[1]]).toEqual([err?.message, expect.stringMatching(reason)]);
    expect(prompts).toEqual([]);
    expect(conn.state).toBe('closed');
  });
});
