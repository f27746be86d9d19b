/**
 * OpenSSH known_hosts files: parsing, host-key checks and appending accepted keys.
 *
 * ssh2 verifies nothing by itself (its `hostVerifier` accepts every key unless told
 * otherwise), so every hop of every connection is checked here. Supported, as in
 * OpenSSH's sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT":
 * - host patterns: plain names, comma lists, `[host]:port` for ports other than 22,
 *   wildcards `*` and `?`, negations `!pattern` (a negated match excludes the line);
 * - hashed names `|1|base64(salt)|base64(HMAC-SHA1(salt, name))`;
 * - markers: `@revoked` (that key is refused for the hosts it names) and
 *   `@cert-authority` (host certificates, checked with certificates.ts: the CA must be
 *   listed for a pattern matching the host).
 * Missing files are empty; unreadable ones are an error.
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';

import { certificateSignatureProblem, hostCertificateProblem, parseCertificate } from './certificates';

export type KnownHostMarker = 'revoked' | 'cert-authority';

export interface IKnownHostEntry {
  file: string;
  /** 1-based line number. */
  line: number;
  marker?: KnownHostMarker;
  /** Comma-separated host patterns, or one hashed `|1|salt|hmac` name. */
  hosts: string;
  keyType: string;
  /** The key as it appears in SSH wire format (what ssh2 hands to hostVerifier). */
  keyBlob: Buffer;
}

export type HostKeyStatus =
  'match' | 'unknown' | 'changed' | 'revoked' | 'cert-authority' | 'cert-unknown-ca' | 'cert-invalid';

export interface IHostKeyCheck {
  /**
   * - match: a plain entry for this host has exactly this key;
   * - unknown: no entry for this host with a key of this type;
   * - changed: entries for this host have other keys of this type, none this one;
   * - revoked: a `@revoked` entry for this host names this key;
   * - cert-authority: the only entries for this host are `@cert-authority` lines, but
   *   the server showed a plain key (no certificate for the algorithms we offered);
   * - cert-unknown-ca: a host certificate signed by a CA not listed for this host;
   * - cert-invalid: a host certificate of a listed CA that does not hold (`reason`).
   */
  status: HostKeyStatus;
  /** SHA256 fingerprints of the keys of this type known for the host (for `changed`). */
  knownFingerprints: string[];
  /** Types of other keys known for this host (for `unknown`: OpenSSH mentions them). */
  otherKeyTypes: string[];
  /** Where the deciding entry is (match, changed, revoked, cert-authority). */
  file?: string;
  line?: number;
  /** Why a certificate was refused (cert-invalid, cert-unknown-ca), as a clause. */
  reason?: string;
}

/** `SHA256:<base64 without padding>` of a key blob, as `ssh-keygen -lf` prints it. */
export function fingerprintSha256(keyBlob: Buffer): string {
  return 'SHA256:' + createHash('sha256').update(keyBlob).digest('base64').replace(/=+$/, '');
}

/** The key type name at the start of an SSH wire-format key blob (e.g. `ssh-ed25519`). */
export function keyTypeOfBlob(keyBlob: Buffer): string {
  if (keyBlob.length < 4) {
    throw new Error('Malformed SSH public key.');
  }
  const len = keyBlob.readUInt32BE(0);
  if (len === 0 || len > 64 || keyBlob.length < 4 + len) {
    throw new Error('Malformed SSH public key.');
  }
  return keyBlob.subarray(4, 4 + len).toString('latin1');
}

/** The name OpenSSH looks up: `host` on port 22, `[host]:port` otherwise. */
export function knownHostsName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

/** OpenSSH's match_pattern: `*` any run, `?` one character, everything else literal. */
export function wildcardMatch(text: string, pattern: string): boolean {
  // Iterative matcher with backtracking on the last `*` (no regular expressions).
  let t = 0;
  let p = 0;
  let starP = -1;
  let starT = 0;
  while (t < text.length) {
    if (p < pattern.length && (pattern[p] === '?' || pattern[p] === text[t])) {
      t++;
      p++;
    } else if (p < pattern.length && pattern[p] === '*') {
      starP = p++;
      starT = t;
    } else if (starP >= 0) {
      p = starP + 1;
      t = ++starT;
    } else {
      return false;
    }
  }
  while (p < pattern.length && pattern[p] === '*') {
    p++;
  }
  return p === pattern.length;
}

/**
 * OpenSSH's match_pattern_list for host names (case-insensitive): 1 if a positive
 * pattern matches and no negated one does, -1 if a negated pattern matches, 0 otherwise.
 */
export function matchPatternList(name: string, patternList: string): -1 | 0 | 1 {
  const lname = name.toLowerCase();
  let got: 0 | 1 = 0;
  for (const raw of patternList.split(',')) {
    let pat = raw.trim().toLowerCase();
    if (!pat) {
      continue;
    }
    const negated = pat.startsWith('!');
    if (negated) {
      pat = pat.slice(1);
    }
    if (wildcardMatch(lname, pat)) {
      if (negated) {
        return -1;
      }
      got = 1;
    }
  }
  return got;
}

/** Whether a hashed `|1|salt|hmac` name is `name`. */
export function hashedNameMatches(hashed: string, name: string): boolean {
  const parts = hashed.split('|');
  // ['', '1', salt, hmac]
  if (parts.length !== 4 || parts[0] !== '' || parts[1] !== '1') {
    return false;
  }
  const salt = Buffer.from(parts[2], 'base64');
  const want = Buffer.from(parts[3], 'base64');
  if (salt.length !== 20 || want.length !== 20) {
    return false;
  }
  const got = createHmac('sha1', salt).update(name).digest();
  return got.equals(want);
}

/** `|1|salt|hmac` for `name` (what `ssh-keygen -H` writes). */
export function hashKnownHostName(name: string, salt: Buffer = randomBytes(20)): string {
  const mac = createHmac('sha1', salt).update(name).digest('base64');
  return `|1|${salt.toString('base64')}|${mac}`;
}

/** Whether an entry's host field names `host` on `port`. */
export function entryMatchesHost(entry: Pick<IKnownHostEntry, 'hosts'>, host: string, port: number): boolean {
  const name = knownHostsName(host, port);
  if (entry.hosts.startsWith('|')) {
    // Hashed: OpenSSH hashes the lower-cased name.
    return hashedNameMatches(entry.hosts, name.toLowerCase()) || hashedNameMatches(entry.hosts, name);
  }
  return matchPatternList(name, entry.hosts) === 1;
}

/** Parses one known_hosts file's text; malformed lines are skipped (as OpenSSH does). */
export function parseKnownHosts(text: string, file = '<known_hosts>'): IKnownHostEntry[] {
  const entries: IKnownHostEntry[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (!line || line.startsWith('#')) {
      continue;
    }
    const fields = line.split(/[ \t]+/);
    let marker: KnownHostMarker | undefined;
    if (fields[0].startsWith('@')) {
      const m = fields.shift()!;
      if (m === '@revoked') {
        marker = 'revoked';
      } else if (m === '@cert-authority') {
        marker = 'cert-authority';
      } else {
        continue;
      }
    }
    if (fields.length < 3) {
      continue;
    }
    const [hosts, keyType, b64] = fields;
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) {
      continue;
    }
    const keyBlob = Buffer.from(b64, 'base64');
    let blobType: string;
    try {
      blobType = keyTypeOfBlob(keyBlob);
    } catch {
      continue;
    }
    // The type field and the type inside the blob must agree (OpenSSH checks this too).
    if (blobType !== keyType) {
      continue;
    }
    entries.push({ file, line: i + 1, marker, hosts, keyType, keyBlob });
  }
  return entries;
}

/** Reads and parses known_hosts files; a missing file is empty. */
export async function readKnownHosts(files: string[]): Promise<IKnownHostEntry[]> {
  const all: IKnownHostEntry[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = await fsp.readFile(file, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') {
        continue;
      }
      throw new Error(`Cannot read known_hosts file ${file}: ${(err as Error).message}`);
    }
    all.push(...parseKnownHosts(text, file));
  }
  return all;
}

/** Decides what known_hosts entries say about `keyBlob` offered by `host`:`port`. */
export function checkHostKeyInEntries(
  entries: IKnownHostEntry[],
  host: string,
  port: number,
  keyType: string,
  keyBlob: Buffer
): IHostKeyCheck {
  const forHost = entries.filter(e => entryMatchesHost(e, host, port));
  const result = (status: HostKeyStatus, at?: IKnownHostEntry): IHostKeyCheck => {
    const sameType = forHost.filter(e => !e.marker && e.keyType === keyType);
    return {
      status,
      knownFingerprints: [...new Set(sameType.map(e => fingerprintSha256(e.keyBlob)))],
      otherKeyTypes: [...new Set(forHost.filter(e => !e.marker && e.keyType !== keyType).map(e => e.keyType))],
      file: at?.file,
      line: at?.line
    };
  };
  const revoked = forHost.find(e => e.marker === 'revoked' && e.keyBlob.equals(keyBlob));
  if (revoked) {
    return result('revoked', revoked);
  }
  const plain = forHost.filter(e => !e.marker);
  const match = plain.find(e => e.keyType === keyType && e.keyBlob.equals(keyBlob));
  if (match) {
    return result('match', match);
  }
  const changed = plain.find(e => e.keyType === keyType);
  if (changed) {
    return result('changed', changed);
  }
  const ca = forHost.find(e => e.marker === 'cert-authority');
  if (ca && plain.length === 0) {
    return result('cert-authority', ca);
  }
  return result('unknown');
}

/**
 * Decides what known_hosts entries say about a host certificate offered by `host`:`port`
 * at `now` (seconds). Trusted when a `@cert-authority` entry for the host holds the
 * certificate's CA key and the certificate holds (signature, host type, principals,
 * validity, critical options). `@revoked` applies to the certificate, the certified key
 * and the CA key. A certificate that fails is still accepted when its certified key is
 * itself listed for the host, as ssh(1) falls back to the plain key; unlike ssh(1), an
 * unknown plain key is then refused, not asked about: the server claimed a CA's trust.
 */
export function checkHostCertificateInEntries(
  entries: IKnownHostEntry[],
  host: string,
  port: number,
  certBlob: Buffer,
  now: number
): IHostKeyCheck {
  const none: IHostKeyCheck = { status: 'cert-invalid', knownFingerprints: [], otherKeyTypes: [] };
  let cert;
  try {
    cert = parseCertificate(certBlob);
  } catch (err) {
    return { ...none, reason: `it cannot be read (${(err as Error).message})` };
  }
  const forHost = entries.filter(e => entryMatchesHost(e, host, port));
  const revoked = forHost.find(
    e =>
      e.marker === 'revoked' &&
      (e.keyBlob.equals(certBlob) || e.keyBlob.equals(cert.publicKey) || e.keyBlob.equals(cert.signatureKey))
  );
  if (revoked) {
    const what = revoked.keyBlob.equals(cert.signatureKey) ? 'its CA key' : 'its key';
    return { ...none, status: 'revoked', file: revoked.file, line: revoked.line, reason: `${what} is marked @revoked` };
  }
  const plain = checkHostKeyInEntries(entries, host, port, cert.keyType, cert.publicKey);
  const ca = forHost.find(e => e.marker === 'cert-authority' && e.keyBlob.equals(cert.signatureKey));
  const problem = ca
    ? (certificateSignatureProblem(cert) ?? hostCertificateProblem(cert, host.toLowerCase(), now))
    : `its CA (${cert.signatureKey.length ? fingerprintSha256(cert.signatureKey) : 'none'}) is not listed with @cert-authority for ${host}`;
  if (!problem) {
    return { ...plain, status: 'match', file: ca!.file, line: ca!.line };
  }
  if (plain.status === 'match' || plain.status === 'revoked' || plain.status === 'changed') {
    return plain;
  }
  return {
    ...plain,
    status: ca ? 'cert-invalid' : 'cert-unknown-ca',
    file: ca?.file,
    line: ca?.line,
    reason: problem
  };
}

/** Checks a host key against known_hosts files (missing files are empty). */
export async function checkHostKey(
  files: string[],
  host: string,
  port: number,
  keyType: string,
  keyBlob: Buffer
): Promise<IHostKeyCheck> {
  return checkHostKeyInEntries(await readKnownHosts(files), host, port, keyType, keyBlob);
}

/** Checks a host certificate against known_hosts files (checkHostCertificateInEntries). */
export async function checkHostCertificate(
  files: string[],
  host: string,
  port: number,
  certBlob: Buffer,
  now = Date.now() / 1000
): Promise<IHostKeyCheck> {
  return checkHostCertificateInEntries(await readKnownHosts(files), host, port, certBlob, now);
}

/** Whether known_hosts lists a `@cert-authority` for the host (so certificates are asked for). */
export async function hasCertAuthority(files: string[], host: string, port: number): Promise<boolean> {
  const entries = await readKnownHosts(files);
  return entries.some(e => e.marker === 'cert-authority' && entryMatchesHost(e, host, port));
}

/**
 * Key types known for a host, most trusted first, for ordering the host key
 * algorithms we offer (OpenSSH does the same: it prefers the types it can verify).
 */
export async function knownKeyTypes(files: string[], host: string, port: number): Promise<string[]> {
  const entries = await readKnownHosts(files);
  return [...new Set(entries.filter(e => !e.marker && entryMatchesHost(e, host, port)).map(e => e.keyType))];
}

/** The known_hosts line for a key (hashed name if asked). */
export function knownHostsLine(
  host: string,
  port: number,
  keyType: string,
  keyBlob: Buffer,
  options: { hash?: boolean } = {}
): string {
  if (!/^[A-Za-z0-9._:%-]+$/.test(host)) {
    throw new Error(`Refusing to write a known_hosts entry for the malformed host name ${JSON.stringify(host)}.`);
  }
  if (!/^[A-Za-z0-9@._-]+$/.test(keyType)) {
    throw new Error(`Refusing to write a known_hosts entry with the malformed key type ${JSON.stringify(keyType)}.`);
  }
  const name = knownHostsName(host, port);
  const hosts = options.hash ? hashKnownHostName(name.toLowerCase()) : name;
  return `${hosts} ${keyType} ${keyBlob.toString('base64')}`;
}

/**
 * Appends an accepted key to a known_hosts file, creating the file (0600) and its
 * directory (0700) if missing. Writes `[host]:port` when port is not 22.
 */
export async function appendKnownHost(
  file: string,
  host: string,
  port: number,
  keyType: string,
  keyBlob: Buffer,
  options: { hash?: boolean } = {}
): Promise<void> {
  const line = knownHostsLine(host, port, keyType, keyBlob, options);
  await fsp.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  let prefix = '';
  try {
    const fh = await fsp.open(file, 'r');
    try {
      const { size } = await fh.stat();
      if (size > 0) {
        const last = Buffer.alloc(1);
        await fh.read(last, 0, 1, size - 1);
        if (last[0] !== 0x0a) {
          prefix = '\n';
        }
      }
    } finally {
      await fh.close();
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw err;
    }
  }
  await fsp.appendFile(file, `${prefix}${line}\n`, { mode: 0o600 });
}
