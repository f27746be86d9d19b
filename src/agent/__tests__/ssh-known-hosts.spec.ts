import { createHash, createHmac, generateKeyPairSync, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import {
  appendKnownHost,
  checkHostKey,
  checkHostKeyInEntries,
  fingerprintSha256,
  hashKnownHostName,
  keyTypeOfBlob,
  knownKeyTypes,
  matchPatternList,
  parseKnownHosts,
  wildcardMatch
} from '../ssh/known-hosts';

/** An ssh-ed25519 public key blob (SSH wire format). */
function ed25519Blob(): Buffer {
  const { publicKey } = generateKeyPairSync('ed25519');
  const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
  const str = (b: Buffer): Buffer => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(b.length);
    return Buffer.concat([len, b]);
  };
  return Buffer.concat([str(Buffer.from('ssh-ed25519')), str(raw)]);
}

function ecdsaLikeBlob(): Buffer {
  // Only the type name matters for the parser; the rest is opaque bytes.
  const type = Buffer.from('ecdsa-sha2-nistp256');
  const len = Buffer.alloc(4);
  len.writeUInt32BE(type.length);
  return Buffer.concat([len, type, randomBytes(40)]);
}

const b64 = (b: Buffer): string => b.toString('base64');

/** A hashed host field, made here with HMAC-SHA1 exactly as ssh-keygen -H does. */
function hashed(name: string): string {
  const salt = randomBytes(20);
  return `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update(name).digest('base64')}`;
}

describe('ssh known_hosts', () => {
  const keyA = ed25519Blob();
  const keyB = ed25519Blob();
  const keyC = ecdsaLikeBlob();
  const check = (text: string, host: string, port: number, key: Buffer) =>
    checkHostKeyInEntries(parseKnownHosts(text, 'kh'), host, port, keyTypeOfBlob(key), key);

  it('fingerprints like ssh-keygen -lf (SHA256, base64 without padding)', () => {
    const fp = fingerprintSha256(keyA);
    expect(fp).toBe('SHA256:' + createHash('sha256').update(keyA).digest('base64').replace(/=+$/, ''));
    expect(fp).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
    expect(keyTypeOfBlob(keyA)).toBe('ssh-ed25519');
    expect(() => keyTypeOfBlob(Buffer.from([0, 0]))).toThrow('Malformed');
  });

  it('matches wildcards and pattern lists like OpenSSH', () => {
    expect(wildcardMatch('login1.hpc.org', '*.hpc.org')).toBe(true);
    expect(wildcardMatch('hpc.org', '*.hpc.org')).toBe(false);
    expect(wildcardMatch('node7', 'node?')).toBe(true);
    expect(wildcardMatch('node17', 'node?')).toBe(false);
    expect(wildcardMatch('[a.b]:2222', '[*.b]:2222')).toBe(true);
    expect(matchPatternList('Login.HPC.org', '*.hpc.org')).toBe(1);
    expect(matchPatternList('evil.hpc.org', '*.hpc.org,!evil.hpc.org')).toBe(-1);
    expect(matchPatternList('x.org', '*.hpc.org')).toBe(0);
  });

  it('finds plain hosts, comma lists and [host]:port', () => {
    const text = [
      '# comment',
      '',
      `login,198.18.1.2 ssh-ed25519 ${b64(keyA)} comment words`,
      `[gw.example.org]:2222 ssh-ed25519 ${b64(keyB)}`
    ].join('\n');
    expect(check(text, 'login', 22, keyA)).toMatchObject({ status: 'match', file: 'kh', line: 3 });
    expect(check(text, '198.18.1.2', 22, keyA).status).toBe('match');
    // A port other than 22 must be written [host]:port; the plain entry does not apply.
    expect(check(text, 'login', 2222, keyA).status).toBe('unknown');
    expect(check(text, 'gw.example.org', 2222, keyB)).toMatchObject({ status: 'match', line: 4 });
    expect(check(text, 'gw.example.org', 22, keyB).status).toBe('unknown');
  });

  it('tells changed from unknown, and reports the known fingerprints', () => {
    const text = `login ssh-ed25519 ${b64(keyA)}\n`;
    const changed = check(text, 'login', 22, keyB);
    expect(changed).toEqual({
      status: 'changed',
      knownFingerprints: [fingerprintSha256(keyA)],
      otherKeyTypes: [],
      file: 'kh',
      line: 1
    });
    // A key of another type is unknown (OpenSSH asks), with the other type mentioned.
    const other = check(text, 'login', 22, keyC);
    expect(other.status).toBe('unknown');
    expect(other.otherKeyTypes).toEqual(['ssh-ed25519']);
    expect(check(text, 'other', 22, keyB)).toMatchObject({ status: 'unknown', knownFingerprints: [] });
  });

  it('matches hashed |1|salt|hmac entries, with and without port', () => {
    const text = [
      `${hashed('login.hpc.org')} ssh-ed25519 ${b64(keyA)}`,
      `${hashed('[login.hpc.org]:2200')} ssh-ed25519 ${b64(keyB)}`
    ].join('\n');
    expect(check(text, 'login.hpc.org', 22, keyA)).toMatchObject({ status: 'match', line: 1 });
    expect(check(text, 'LOGIN.hpc.org', 22, keyA).status).toBe('match');
    expect(check(text, 'login.hpc.org', 2200, keyB)).toMatchObject({ status: 'match', line: 2 });
    expect(check(text, 'login.hpc.org', 22, keyB).status).toBe('changed');
    expect(check(text, 'login2.hpc.org', 22, keyA).status).toBe('unknown');
    // Our own hashing is what OpenSSH reads.
    const ours = `${hashKnownHostName('a.b')} ssh-ed25519 ${b64(keyA)}`;
    expect(check(ours, 'a.b', 22, keyA).status).toBe('match');
  });

  it('honours wildcards and negations in host fields', () => {
    const text = `*.hpc.org,!bad.hpc.org ssh-ed25519 ${b64(keyA)}\nnode? ssh-ed25519 ${b64(keyB)}\n`;
    expect(check(text, 'login.hpc.org', 22, keyA).status).toBe('match');
    expect(check(text, 'bad.hpc.org', 22, keyA).status).toBe('unknown');
    expect(check(text, 'node3', 22, keyB).status).toBe('match');
    expect(check(text, 'node33', 22, keyB).status).toBe('unknown');
  });

  it('refuses @revoked keys even when a plain entry lists them', () => {
    const text = `login ssh-ed25519 ${b64(keyA)}\n@revoked * ssh-ed25519 ${b64(keyA)}\n`;
    expect(check(text, 'login', 22, keyA)).toMatchObject({ status: 'revoked', line: 2 });
    expect(check(text, 'login', 22, keyB).status).toBe('changed');
  });

  it('reports @cert-authority-only hosts distinctly', () => {
    const text = `@cert-authority *.hpc.org ssh-ed25519 ${b64(keyB)}\n`;
    expect(check(text, 'login.hpc.org', 22, keyA)).toMatchObject({ status: 'cert-authority', line: 1 });
    expect(check(text, 'elsewhere.org', 22, keyA).status).toBe('unknown');
    // With a plain entry as well, the plain entry decides.
    const both = text + `login.hpc.org ssh-ed25519 ${b64(keyA)}\n`;
    expect(check(both, 'login.hpc.org', 22, keyA).status).toBe('match');
  });

  it('skips malformed lines and unknown markers', () => {
    const text = [
      'garbage',
      `login ssh-rsa ${b64(keyA)}`, // type field disagrees with the blob
      'login ssh-ed25519 not*base64',
      `@weird login ssh-ed25519 ${b64(keyA)}`,
      `login ssh-ed25519 ${b64(keyB)}`
    ].join('\n');
    const entries = parseKnownHosts(text, 'f');
    expect(entries.map(e => e.line)).toEqual([5]);
    expect(check(text, 'login', 22, keyA).status).toBe('changed');
  });

  describe('files', () => {
    let dir: string;
    beforeEach(async () => {
      dir = await fs.mkdtemp(path.join(os.tmpdir(), 'rc-kh-'));
    });
    afterEach(async () => {
      await fs.rm(dir, { recursive: true, force: true });
    });

    it('treats missing files as empty and reads several', async () => {
      const f1 = path.join(dir, 'a');
      const f2 = path.join(dir, 'b');
      await fs.writeFile(f2, `login ssh-ed25519 ${b64(keyA)}\n`);
      const r = await checkHostKey([path.join(dir, 'missing'), f1, f2], 'login', 22, 'ssh-ed25519', keyA);
      expect(r).toMatchObject({ status: 'match', file: f2, line: 1 });
      expect(await knownKeyTypes([f2], 'login', 22)).toEqual(['ssh-ed25519']);
      expect(await knownKeyTypes([f2], 'other', 22)).toEqual([]);
    });

    it('appends with [host]:port, creating the file 0600 and its directory 0700', async () => {
      const file = path.join(dir, 'new', 'known_hosts');
      await appendKnownHost(file, 'login', 22, 'ssh-ed25519', keyA);
      await appendKnownHost(file, 'gw', 2222, 'ssh-ed25519', keyB);
      expect(await fs.readFile(file, 'utf8')).toBe(
        `login ssh-ed25519 ${b64(keyA)}\n[gw]:2222 ssh-ed25519 ${b64(keyB)}\n`
      );
      expect((await fs.stat(file)).mode & 0o777).toBe(0o600);
      expect((await fs.stat(path.dirname(file))).mode & 0o777).toBe(0o700);
      expect((await checkHostKey([file], 'gw', 2222, 'ssh-ed25519', keyB)).status).toBe('match');
    });

    it('keeps an existing file intact, adding a missing final newline', async () => {
      const file = path.join(dir, 'known_hosts');
      await fs.writeFile(file, `old ssh-ed25519 ${b64(keyB)}`, { mode: 0o644 });
      await appendKnownHost(file, 'login', 22, 'ssh-ed25519', keyA, { hash: true });
      const lines = (await fs.readFile(file, 'utf8')).split('\n');
      expect(lines[0]).toBe(`old ssh-ed25519 ${b64(keyB)}`);
      expect(lines[1]).toMatch(/^\|1\|[^|]+\|[^ ]+ ssh-ed25519 /);
      expect(lines[2]).toBe('');
      expect((await checkHostKey([file], 'login', 22, 'ssh-ed25519', keyA)).status).toBe('match');
      expect((await checkHostKey([file], 'old', 22, 'ssh-ed25519', keyB)).status).toBe('match');
    });

    it('refuses to write malformed host names', async () => {
      await expect(appendKnownHost(path.join(dir, 'kh'), 'a b\nc', 22, 'ssh-ed25519', keyA)).rejects.toThrow(
        /malformed host name/
      );
    });
  });
});
