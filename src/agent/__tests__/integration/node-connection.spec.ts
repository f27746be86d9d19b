/**
 * ClusterConnection.connectNode against the REAL testbed: an SSH hop login -> node
 * (connectivity node-ssh) with the node's host key checked like any hop's. node3 accepts
 * only SSH from the cluster network; node4 accepts nothing. The testbed's own known_hosts
 * is copied before being altered.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { Duplex } from 'node:stream';

import type { IPrompt, IPromptAnswer } from '../../../common/api';
import { ClusterConnection } from '../../ssh/connection';
import { askingSshConfig, keygenFingerprint, testbedScratch } from './testbed';

jest.setTimeout(60000);

function firstBytes(s: Duplex, n: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    s.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      if (buf.length >= n) {
        s.destroy();
        resolve(buf.slice(0, n));
      }
    });
    s.on('error', reject);
  });
}

describe('connectNode (testbed)', () => {
  let tb: Record<string, string>;
  let tmp: string;
  const scratch = testbedScratch('rc-node-it-');
  const open = scratch.open;

  beforeAll(() => {
    ({ env: tb, tmp } = scratch);
  });

  async function login(knownHosts: string | undefined, prompts: Omit<IPrompt, 'id'>[], answer: IPromptAnswer) {
    const c = new ClusterConnection({
      // with its own known_hosts, a config that asks about unknown keys (the testbed's refuses them)
      target: knownHosts
        ? {
            host: 'login',
            configFile: await askingSshConfig(tb.RC_TESTBED_SSH_CONFIG, path.dirname(knownHosts)),
            knownHostsFiles: [knownHosts]
          }
        : { host: 'login', configFile: tb.RC_TESTBED_SSH_CONFIG },
      prompt: async p => {
        prompts.push(p);
        return answer;
      },
      homeDir: tmp,
      agentSocket: null
    });
    open.push(c);
    await c.connect();
    return c;
  }

  /** The testbed's known_hosts without node3, or with node3 under another key. */
  async function knownHosts(name: string, node3Key?: string): Promise<string> {
    const lines = (await fs.readFile(tb.RC_TESTBED_KNOWN_HOSTS, 'utf8'))
      .split('\n')
      .filter(l => l && !l.startsWith('node3,'));
    if (node3Key) {
      lines.push(`node3 ${node3Key}`);
    }
    const f = path.join(tmp, name);
    await fs.writeFile(f, lines.join('\n') + '\n');
    return f;
  }

  it('reaches node3 over SSH through login, where TCP from login is refused', async () => {
    const c = await login(undefined, [], { cancel: true });
    // via-login: refused by node3's firewall
    await expect(c.forwardOut('node3', 8787)).rejects.toThrow(/could not open a connection to node3:8787/);
    const node = await c.connectNode('node3');
    expect(node.label).toBe('node3');
    // from the node itself (its own address: no firewall in the way), its sshd answers
    expect(await firstBytes(await node.forwardOut(tb.RC_TESTBED_NODE3_ADDR, 22), 7)).toBe('SSH-2.0');
    await expect(node.forwardOutStreamLocal('/nonexistent/control.sock')).rejects.toThrow(
      /node3 could not connect to the socket \/nonexistent\/control.sock/
    );
    await expect(node.forwardOutStreamLocal('relative.sock')).rejects.toThrow(/Refusing/);
    let closed = '';
    node.onClose(m => (closed = m));
    node.close();
    await new Promise(r => setTimeout(r, 300));
    expect(node.isClosed).toBe(true);
    expect(closed).toMatch(/Connection to node3 closed/);
  });

  it('asks about an unknown node key, with its fingerprint, and does not connect when rejected', async () => {
    const prompts: Omit<IPrompt, 'id'>[] = [];
    const kh = await knownHosts('kh-reject');
    const c = await login(kh, prompts, { accept: false });
    await expect(c.connectNode('node3')).rejects.toMatchObject({ code: 'host-key-rejected' });
    expect(prompts).toHaveLength(1);
    expect(prompts[0]).toMatchObject({ kind: 'host-key', host: 'node3' });
    expect(prompts[0].hostKey?.fingerprint).toBe(await keygenFingerprint(tb.RC_TESTBED_KNOWN_HOSTS, 'node3', tmp));
    expect(await fs.readFile(kh, 'utf8')).not.toMatch(/^node3/m);
  });

  it('remembers an accepted node key', async () => {
    const prompts: Omit<IPrompt, 'id'>[] = [];
    const kh = await knownHosts('kh-accept');
    const c = await login(kh, prompts, { accept: true });
    const node = await c.connectNode('node3');
    expect(await firstBytes(await node.forwardOut(tb.RC_TESTBED_NODE3_ADDR, 22), 7)).toBe('SSH-2.0');
    expect(prompts.map(p => p.kind)).toEqual(['host-key']);
    expect(await fs.readFile(kh, 'utf8')).toMatch(/^node3 ssh-ed25519 /m);
  });

  it('refuses a node whose key changed, naming both fingerprints', async () => {
    const other = (await fs.readFile(tb.RC_TESTBED_KNOWN_HOSTS, 'utf8')).split('\n').find(l => l.startsWith('node1,'))!;
    const kh = await knownHosts('kh-changed', other.split(' ').slice(1, 3).join(' '));
    const prompts: Omit<IPrompt, 'id'>[] = [];
    const c = await login(kh, prompts, { accept: true });
    const err = await c.connectNode('node3').catch(e => e);
    expect(err).toMatchObject({ code: 'host-key-changed' });
    expect(err.message).toContain(await keygenFingerprint(tb.RC_TESTBED_KNOWN_HOSTS, 'node1', tmp));
    expect(err.message).toContain(await keygenFingerprint(tb.RC_TESTBED_KNOWN_HOSTS, 'node3', tmp));
    expect(prompts).toHaveLength(0);
  });

  it('gives up on node4 (nothing gets in) within its timeout, with a clear message', async () => {
    const c = await login(undefined, [], { cancel: true });
    const t = Date.now();
    await expect(c.connectNode('node4', 3000)).rejects.toThrow(/could not open a connection to node4:22 within 3 s/);
    expect(Date.now() - t).toBeLessThan(5000);
    await expect(c.connectNode('node4; rm -rf ~')).rejects.toThrow(/Refusing/);
  });
});
