/**
 * OpenSSH certificates (PROTOCOL.certkeys): parsing one, and checking a host certificate
 * the way ssh(1) does before trusting it (the CA's signature, the CA listed with
 * `@cert-authority` for the host, `@revoked`, the certificate's type, principals,
 * validity window and critical options). ssh2 itself only learned to offer certificate
 * host-key algorithms and to verify the key exchange with a certified key through
 * scripts/patch-ssh2.mjs; every decision about trust is made here.
 */
import { utils } from 'ssh2';

/** The suffix of every certificate key type name. */
export const CERT_SUFFIX = '-cert-v01@openssh.com';

/**
 * Certificate host-key algorithms we offer when known_hosts has a CA for the host: those
 * scripts/patch-ssh2.mjs made ssh2 support (its list is the one source; none when this
 * ssh2 was not patched).
 */
export function certHostKeyAlgorithms(): string[] {
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const { SUPPORTED_SERVER_HOST_KEY } = require('ssh2/lib/protocol/constants.js') as {
    SUPPORTED_SERVER_HOST_KEY: string[];
  };
  return SUPPORTED_SERVER_HOST_KEY.filter(isCertificateType);
}

/**
 * Signature algorithms a CA may sign with: OpenSSH's default CASignatureAlgorithms
 * (SHA-1 `ssh-rsa` has been refused since OpenSSH 8.2).
 */
const CA_SIGNATURE_ALGORITHMS = new Set([
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'rsa-sha2-512',
  'rsa-sha2-256'
]);

export const CERT_TYPE_USER = 1;
export const CERT_TYPE_HOST = 2;
/** `valid before` of a certificate that never expires. */
const FOREVER = 0xffffffffffffffffn;

export interface ISshCertificate {
  /** e.g. `ssh-ed25519-cert-v01@openssh.com`. */
  type: string;
  /** The certified key's own type, e.g. `ssh-ed25519`. */
  keyType: string;
  /** The certified key as a plain public key blob (`string type` + its fields). */
  publicKey: Buffer;
  serial: bigint;
  certType: number;
  keyId: string;
  principals: string[];
  /** Seconds since the epoch; validBefore is FOREVER for "forever". */
  validAfter: bigint;
  validBefore: bigint;
  criticalOptions: Map<string, Buffer>;
  extensions: string[];
  /** The CA's public key blob. */
  signatureKey: Buffer;
  /** Everything the CA signed (the certificate up to its signature). */
  signedData: Buffer;
  signature: Buffer;
}

class Reader {
  private pos = 0;
  constructor(private readonly buf: Buffer) {}
  get offset(): number {
    return this.pos;
  }
  get done(): boolean {
    return this.pos === this.buf.length;
  }
  uint32(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  uint64(): bigint {
    this.need(8);
    const v = this.buf.readBigUInt64BE(this.pos);
    this.pos += 8;
    return v;
  }
  string(): Buffer {
    const len = this.uint32();
    this.need(len);
    const v = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return v;
  }
  text(): string {
    return this.string().toString('utf8');
  }
  private need(n: number): void {
    if (this.pos + n > this.buf.length) {
      throw new Error('the certificate is truncated');
    }
  }
}

function sshString(b: Buffer | string): Buffer {
  const body = typeof b === 'string' ? Buffer.from(b) : b;
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length);
  return Buffer.concat([len, body]);
}

/** How many wire strings/mpints the certified key has, per plain key type. */
function keyFieldCount(keyType: string): number {
  if (keyType === 'ssh-ed25519') {
    return 1;
  }
  if (keyType === 'ssh-rsa' || keyType.startsWith('ecdsa-sha2-')) {
    return 2; // e, n / curve, point
  }
  if (keyType === 'ssh-dss') {
    return 4;
  }
  throw new Error(`certificates of ${keyType} keys are not supported`);
}

export function isCertificateType(keyType: string): boolean {
  return keyType.endsWith(CERT_SUFFIX);
}

/** Parses an OpenSSH certificate blob; throws with the reason when it is malformed. */
export function parseCertificate(blob: Buffer): ISshCertificate {
  const r = new Reader(blob);
  const type = r.text();
  if (!isCertificateType(type)) {
    throw new Error(`${type} is not a certificate key type`);
  }
  const keyType = type.slice(0, -CERT_SUFFIX.length);
  r.string(); // nonce
  const fields: Buffer[] = [];
  for (let i = keyFieldCount(keyType); i > 0; i--) {
    fields.push(r.string());
  }
  const publicKey = Buffer.concat([sshString(keyType), ...fields.map(sshString)]);
  const serial = r.uint64();
  const certType = r.uint32();
  const keyId = r.text();
  const principals: string[] = [];
  const pr = new Reader(r.string());
  while (!pr.done) {
    principals.push(pr.text());
  }
  const validAfter = r.uint64();
  const validBefore = r.uint64();
  const criticalOptions = new Map<string, Buffer>();
  const cr = new Reader(r.string());
  while (!cr.done) {
    criticalOptions.set(cr.text(), cr.string());
  }
  const extensions: string[] = [];
  const er = new Reader(r.string());
  while (!er.done) {
    extensions.push(er.text());
    er.string();
  }
  r.string(); // reserved
  const signatureKey = r.string();
  const signedData = blob.subarray(0, r.offset);
  const signature = r.string();
  if (!r.done) {
    throw new Error('the certificate has trailing data');
  }
  return {
    type,
    keyType,
    publicKey,
    serial,
    certType,
    keyId,
    principals,
    validAfter,
    validBefore,
    criticalOptions,
    extensions,
    signatureKey,
    signedData,
    signature
  };
}

// ssh2's internal helper that turns an SSH ECDSA/DSA signature into the ASN.1 form
// Node's crypto verifies (the same call ssh2's own server makes).
// eslint-disable-next-line @typescript-eslint/no-var-requires
const { sigSSHToASN1 } = require('ssh2/lib/protocol/utils.js') as {
  sigSSHToASN1: (sig: Buffer, type: string) => Buffer | undefined;
};

/** Checks the CA's signature over the certificate; returns why not, or undefined. */
export function certificateSignatureProblem(cert: ISshCertificate): string | undefined {
  let algo: string;
  let sig: Buffer | undefined;
  try {
    const r = new Reader(cert.signature);
    algo = r.text();
    sig = r.string();
  } catch {
    return 'its signature is malformed';
  }
  if (!CA_SIGNATURE_ALGORITHMS.has(algo)) {
    return `it is signed with ${algo}, which is not accepted for certificate authorities`;
  }
  const ca = utils.parseKey(cert.signatureKey);
  if (ca instanceof Error || isCertificateType(ca.type)) {
    return 'its CA key cannot be read';
  }
  const caBase = ca.type === 'ssh-rsa' ? 'rsa' : ca.type;
  const sigBase = algo.startsWith('rsa-sha2-') ? 'rsa' : algo;
  if (caBase !== sigBase) {
    return `its ${algo} signature does not fit the CA's ${ca.type} key`;
  }
  const hash = algo === 'rsa-sha2-512' ? 'sha512' : algo === 'rsa-sha2-256' ? 'sha256' : undefined;
  sig = sigSSHToASN1(sig, algo);
  if (!sig) {
    return 'its signature is malformed';
  }
  const ok = (ca.verify as (data: Buffer, sig: Buffer, hash?: string) => boolean | Error)(cert.signedData, sig, hash);
  return ok === true ? undefined : 'the CA signature does not verify';
}

function formatTime(seconds: bigint): string {
  return new Date(Number(seconds) * 1000).toISOString().replace('.000Z', 'Z');
}

/**
 * Problems with a certificate's validity at `now` (seconds): not yet valid, expired.
 * The message names the window, as `ssh-keygen -L` shows it.
 */
export function validityProblem(cert: ISshCertificate, now: number): string | undefined {
  const t = BigInt(Math.floor(now));
  if (t < cert.validAfter) {
    return `it is not valid before ${formatTime(cert.validAfter)}`;
  }
  if (cert.validBefore !== FOREVER && t >= cert.validBefore) {
    return `it expired at ${formatTime(cert.validBefore)}`;
  }
  return undefined;
}

/** `valid before` as text for messages ("forever" or an ISO time). */
export function validUntil(cert: ISshCertificate): string {
  return cert.validBefore === FOREVER ? 'forever' : formatTime(cert.validBefore);
}

/** OpenSSH's match_pattern: `*` and `?` wildcards, nothing else. */
function principalMatches(name: string, pattern: string): boolean {
  const re = new RegExp(
    '^' +
      pattern
        .split('')
        .map(c => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[\\^$.|+()[\]{}]/g, '\\$&')))
        .join('') +
      '$'
  );
  return re.test(name);
}

/**
 * Why a host certificate does not vouch for `host` now, or undefined when it does.
 * The CA's signature is checked separately (certificateSignatureProblem), its trust by
 * known_hosts in known-hosts.ts. As OpenSSH: a certificate without principals is valid
 * for any host, principals may hold wildcards, and host certificates have no critical
 * options, so any is refused.
 */
export function hostCertificateProblem(cert: ISshCertificate, host: string, now: number): string | undefined {
  if (cert.certType !== CERT_TYPE_HOST) {
    return 'it is a user certificate, not a host certificate';
  }
  const when = validityProblem(cert, now);
  if (when) {
    return when;
  }
  if (cert.principals.length > 0 && !cert.principals.some(p => principalMatches(host, p))) {
    return `it is for ${cert.principals.join(', ')}, not ${host}`;
  }
  if (cert.criticalOptions.size > 0) {
    return `it has critical options this client does not know (${[...cert.criticalOptions.keys()].join(', ')})`;
  }
  return undefined;
}
