/**
 * Per-session TLS credentials: a certificate authority made for one session and one
 * certificate it signs, used by everything of that session that speaks TLS (the helper's
 * relay for the agent, the Dask scheduler, workers and nanny, the kernels' Dask client).
 *
 * Why the agent makes them (and not openssl or `cryptography` on the node): Node's crypto
 * has every primitive, so a session gets TLS wherever its Python has the `ssl` module,
 * container images without openssl included, with no process spawned on the node; and
 * the CA's private key never leaves this process: it signs one certificate and is
 * dropped, so nobody can issue another certificate the session would trust.
 *
 * Node can parse certificates but not write them; this file writes the few DER
 * structures of RFC 5280 an ECDSA P-256 certificate needs. The certificates pass
 * OpenSSL's `-x509_strict` checks (Python 3.13 verifies that strictly by default).
 */
import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';

export interface ISessionTls {
  /** The session CA's certificate (PEM): the only trust anchor of the session. */
  caCert: string;
  /** The session's certificate (PEM), for servers and clients alike. */
  cert: string;
  /** Its private key (PEM, PKCS#8). */
  key: string;
  /** The DNS name in the certificate: what a client checks the server's identity against. */
  name: string;
}

/** Validity: long enough for any walltime (plain hosts have none); backdated for clock skew. */
const VALID_DAYS = 400;
const BACKDATE_MS = 60 * 60 * 1000;

export function sessionTlsName(sessionId: string): string {
  return `jrc-${sessionId}`;
}

/** A new CA and one certificate signed by it, for `sessionId`. */
export function makeSessionTls(sessionId: string, now = new Date()): ISessionTls {
  const name = sessionTlsName(sessionId);
  const notBefore = new Date(now.getTime() - BACKDATE_MS);
  const notAfter = new Date(now.getTime() + VALID_DAYS * 86_400_000);
  const ca = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const leaf = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const caName = `${name} CA`;
  const caKeyId = keyId(ca.publicKey);
  const caCert = certificate({
    subject: caName,
    issuer: caName,
    publicKey: ca.publicKey,
    signer: ca.privateKey,
    notBefore,
    notAfter,
    extensions: [
      extension(OID.basicConstraints, true, seq(bool(true), int(Buffer.from([0])))),
      extension(OID.keyUsage, true, keyUsage(KU.keyCertSign | KU.cRLSign)),
      extension(OID.subjectKeyIdentifier, false, octets(caKeyId))
    ]
  });
  const cert = certificate({
    subject: name,
    issuer: caName,
    publicKey: leaf.publicKey,
    signer: ca.privateKey,
    notBefore,
    notAfter,
    extensions: [
      extension(OID.basicConstraints, true, seq()),
      extension(OID.keyUsage, true, keyUsage(KU.digitalSignature)),
      extension(OID.extKeyUsage, false, seq(oid(OID.serverAuth), oid(OID.clientAuth))),
      extension(OID.subjectAltName, false, seq(tlv(0x82, Buffer.from(name, 'ascii')))),
      extension(OID.subjectKeyIdentifier, false, octets(keyId(leaf.publicKey))),
      extension(OID.authorityKeyIdentifier, false, seq(tlv(0x80, caKeyId)))
    ]
  });
  return {
    caCert: pem('CERTIFICATE', caCert),
    cert: pem('CERTIFICATE', cert),
    key: leaf.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    name
  };
}

/* ---------------- certificate structure (RFC 5280 §4.1) ---------------- */

const OID = {
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  commonName: '2.5.4.3',
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  subjectAltName: '2.5.29.17',
  subjectKeyIdentifier: '2.5.29.14',
  authorityKeyIdentifier: '2.5.29.35',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2'
};

/** KeyUsage bits, numbered from the most significant bit of the first byte. */
const KU = { digitalSignature: 1 << 0, keyCertSign: 1 << 5, cRLSign: 1 << 6 };

interface ICertificateSpec {
  subject: string;
  issuer: string;
  publicKey: KeyObject;
  signer: KeyObject;
  notBefore: Date;
  notAfter: Date;
  extensions: Buffer[];
}

function certificate(c: ICertificateSpec): Buffer {
  const algorithm = seq(oid(OID.ecdsaWithSha256));
  const serial = randomBytes(16);
  serial[0] = (serial[0] & 0x7f) | 0x01; // positive and no leading zero byte
  const tbs = seq(
    tlv(0xa0, int(Buffer.from([2]))), // version v3
    int(serial),
    algorithm,
    dname(c.issuer),
    seq(time(c.notBefore), time(c.notAfter)),
    dname(c.subject),
    c.publicKey.export({ type: 'spki', format: 'der' }),
    tlv(0xa3, seq(...c.extensions))
  );
  // ECDSA signatures from node:crypto are DER Ecdsa-Sig-Value, as X.509 wants them.
  return seq(tbs, algorithm, bitString(sign('sha256', tbs, c.signer)));
}

function dname(commonName: string): Buffer {
  return seq(tlv(0x31, seq(oid(OID.commonName), tlv(0x0c, Buffer.from(commonName, 'utf8')))));
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return critical ? seq(oid(id), bool(true), octets(value)) : seq(oid(id), octets(value));
}

function keyUsage(bits: number): Buffer {
  // A named bit list: DER drops trailing zero bits (RFC 5280 §4.2.1.3, X.690 §11.2.2).
  let byte = 0;
  let last = 0;
  for (let i = 0; i < 8; i++) {
    if (bits & (1 << i)) {
      byte |= 0x80 >> i;
      last = i;
    }
  }
  return tlv(0x03, Buffer.from([7 - last, byte]));
}

/** RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits. */
function keyId(publicKey: KeyObject): Buffer {
  const jwk = publicKey.export({ format: 'jwk' });
  const point = Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')]);
  return createHash('sha1').update(point).digest();
}

function pem(label: string, der: Buffer): string {
  const b64 = der
    .toString('base64')
    .replace(/(.{64})/g, '$1\n')
    .replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

/* ---------------- DER (X.690) ---------------- */

function tlv(tag: number, content: Buffer): Buffer {
  const n = content.length;
  let len: Buffer;
  if (n < 0x80) {
    len = Buffer.from([n]);
  } else {
    const bytes: number[] = [];
    for (let v = n; v > 0; v = Math.floor(v / 256)) {
      bytes.unshift(v & 0xff);
    }
    len = Buffer.from([0x80 | bytes.length, ...bytes]);
  }
  return Buffer.concat([Buffer.from([tag]), len, content]);
}

function seq(...items: Buffer[]): Buffer {
  return tlv(0x30, Buffer.concat(items));
}

function octets(b: Buffer): Buffer {
  return tlv(0x04, b);
}

function bool(v: boolean): Buffer {
  return tlv(0x01, Buffer.from([v ? 0xff : 0]));
}

function bitString(b: Buffer): Buffer {
  return tlv(0x03, Buffer.concat([Buffer.from([0]), b]));
}

/** A non-negative INTEGER from big-endian bytes. */
function int(b: Buffer): Buffer {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) {
    i++;
  }
  const v = b.subarray(i);
  return tlv(0x02, v[0] & 0x80 ? Buffer.concat([Buffer.from([0]), v]) : v);
}

function oid(dotted: string): Buffer {
  const parts = dotted.split('.').map(Number);
  const out = [40 * parts[0] + parts[1]];
  for (const p of parts.slice(2)) {
    const chunk = [p & 0x7f];
    for (let v = Math.floor(p / 128); v > 0; v = Math.floor(v / 128)) {
      chunk.unshift(0x80 | (v & 0x7f));
    }
    out.push(...chunk);
  }
  return tlv(0x06, Buffer.from(out));
}

/** UTCTime up to 2049, GeneralizedTime after (RFC 5280 §4.1.2.5). */
function time(d: Date): Buffer {
  const iso = d.toISOString().replace(/[-:T]/g, '').slice(0, 14) + 'Z'; // YYYYMMDDHHMMSSZ
  return d.getUTCFullYear() < 2050
    ? tlv(0x17, Buffer.from(iso.slice(2), 'ascii'))
    : tlv(0x18, Buffer.from(iso, 'ascii'));
}
