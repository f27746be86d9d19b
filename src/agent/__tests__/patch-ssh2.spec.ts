/**
 * scripts/patch-ssh2.mjs, the certificate edits to ssh2: the installed ssh2 carries them,
 * and the patcher refuses, without writing, an ssh2 whose code moved or another version.
 * (What the edits do is tested through real sshds: integration/host-certificates.spec.ts,
 * user-certificates.spec.ts.)
 */
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { ssh2HasCertificates } from '../ssh/host-key-check';

const ROOT = path.resolve(__dirname, '../../..');
const SCRIPT = path.join(ROOT, 'scripts/patch-ssh2.mjs');
const SSH2 = path.join(ROOT, 'node_modules/ssh2');

function patch(dir: string): { ok: boolean; out: string } {
  try {
    return {
      ok: true,
      out: execFileSync('node', [SCRIPT, dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
    };
  } catch (err) {
    return { ok: false, out: String((err as { stderr?: string }).stderr) };
  }
}

describe('scripts/patch-ssh2.mjs', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'rc-patch-ssh2-'));
    cpSync(path.join(SSH2, 'package.json'), path.join(dir, 'package.json'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('has been applied to the ssh2 the agent uses, and running it again changes nothing', () => {
    expect(ssh2HasCertificates()).toBe(true);
    expect(patch(SSH2)).toEqual({ ok: true, out: 'patch-ssh2: ssh2 already patched\n' });
  });

  it('refuses an ssh2 whose code moved, naming the anchor, and writes nothing', () => {
    const files = ['constants.js', 'kex.js', 'Protocol.js'];
    for (const f of files) {
      const text = readFileSync(path.join(SSH2, 'lib/protocol', f), 'utf8').replace(
        /\/\* jrc: OpenSSH certificates \*\/\n?/g,
        ''
      );
      cpSync(path.join(SSH2, 'lib/protocol', f), path.join(dir, 'lib/protocol', f));
      writeFileSync(path.join(dir, 'lib/protocol', f), text.replace("'ssh-dss',\n", "'ssh-dss', // moved\n"));
    }
    const before = readFileSync(path.join(dir, 'lib/protocol/constants.js'), 'utf8');
    const r = patch(dir);
    expect(r.ok).toBe(false);
    expect(r.out).toMatch(/patch-ssh2: anchor not found in lib\/protocol\/constants\.js/);
    expect(readFileSync(path.join(dir, 'lib/protocol/constants.js'), 'utf8')).toBe(before);
  });

  it('refuses another ssh2 version', () => {
    writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ version: '1.18.0' }));
    const r = patch(dir);
    expect(r.ok).toBe(false);
    expect(r.out).toMatch(/written for ssh2 1\.17\.0, found 1\.18\.0/);
  });
});
