/**
 * User certificates for publickey logins (issue 15), found as ssh(1) finds them:
 * CertificateFile (ssh_config and the profile), `<key>-cert.pub` next to an identity file,
 * and certificates held by the ssh-agent. ssh2 knows none of them: a certificate is
 * offered by wrapping the key so that ssh2 sends the certificate as the public key and
 * the certificate algorithm as its name (scripts/patch-ssh2.mjs gives the signature its
 * plain name), and agent certificates need our own agent requests, because ssh2's agent
 * client drops identities it cannot parse (mscdex/ssh2#551). An expired or not yet valid
 * certificate is not offered: the reason names the file and the time, and the next key
 * is tried.
 */
import { promises as fsp } from 'node:fs';
import * as net from 'node:net';

import { utils as sshUtils, type ParsedKey } from 'ssh2';

import {
  CERT_TYPE_USER,
  isCertificateType,
  parseCertificate,
  validityProblem,
  type ISshCertificate
} from './certificates';

/** A key to log in with its certificate, or why the certificate is not offered. */
export type CertificateLookup =
  { key: ParsedKey; file: string; cert: ISshCertificate } | { problem: string; file: string } | undefined;

/** Keys that are agent certificates (signing goes to the agent with the certificate). */
const AGENT_CERTS = new WeakMap<object, Buffer>();

/** The certificate's algorithm name to log in with: RSA only with SHA-2 (OpenSSH 8.8+). */
function loginAlgorithm(cert: ISshCertificate): string {
  return cert.keyType === 'ssh-rsa' ? 'rsa-sha2-512-cert-v01@openssh.com' : cert.type;
}

/**
 * `key` dressed as its certificate: ssh2 reads `type` and `getPublicSSH()` for the
 * request and signs with the key (SHA-512 for RSA, to match the name).
 */
function withCertificate(key: ParsedKey, certBlob: Buffer, cert: ISshCertificate): ParsedKey {
  const dressed = Object.create(key) as ParsedKey & { type: string };
  Object.defineProperty(dressed, 'type', { value: loginAlgorithm(cert) });
  dressed.getPublicSSH = () => certBlob;
  if (cert.keyType === 'ssh-rsa') {
    dressed.sign = (data: Buffer) => key.sign(data, 'sha512');
  }
  return dressed;
}

/** Why a user certificate cannot be offered now, or undefined. */
export function userCertificateProblem(cert: ISshCertificate, now = Date.now() / 1000): string | undefined {
  if (cert.certType !== CERT_TYPE_USER) {
    return 'it is a host certificate, not a user certificate';
  }
  return validityProblem(cert, now);
}

async function readCertificateFile(file: string): Promise<{ blob: Buffer; cert: ISshCertificate } | undefined> {
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch {
    return undefined;
  }
  const b64 = text.trim().split(/\s+/)[1] ?? '';
  const blob = Buffer.from(b64, 'base64');
  try {
    return { blob, cert: parseCertificate(blob) };
  } catch {
    return undefined;
  }
}

/**
 * The certificate to log in with `key` (read from `keyFile`): the listed certificate
 * files first, then `<keyFile>-cert.pub`; only certificates of this very key count.
 */
export async function certificateFor(
  key: ParsedKey,
  keyFile: string,
  certificateFiles: string[],
  now = Date.now() / 1000
): Promise<CertificateLookup> {
  const pub = key.getPublicSSH();
  let refused: CertificateLookup;
  for (const file of [...new Set([...certificateFiles, `${keyFile}-cert.pub`])]) {
    const found = await readCertificateFile(file);
    if (!found || !found.cert.publicKey.equals(pub)) {
      continue;
    }
    const problem = userCertificateProblem(found.cert, now);
    if (!problem) {
      return { key: withCertificate(key, found.blob, found.cert), file, cert: found.cert };
    }
    refused = refused ?? { problem, file };
  }
  return refused;
}

// --- the ssh-agent (draft-miller-ssh-agent), for the identities ssh2's client drops ---

const SSH_AGENTC_REQUEST_IDENTITIES = 11;
const SSH_AGENT_IDENTITIES_ANSWER = 12;
const SSH_AGENTC_SIGN_REQUEST = 13;
const SSH_AGENT_SIGN_RESPONSE = 14;
const SSH_AGENT_RSA_SHA2_512 = 4;
const AGENT_TIMEOUT_MS = 10000;

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}
const str = (b: Buffer): Buffer => Buffer.concat([u32(b.length), b]);

/** One request to the agent at `socketPath`; resolves to the answer's body (type first). */
function agentRequest(socketPath: string, body: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(socketPath);
    let got = Buffer.alloc(0);
    const fail = (err: Error) => {
      sock.destroy();
      reject(err);
    };
    sock.setTimeout(AGENT_TIMEOUT_MS, () => fail(new Error('the ssh-agent did not answer')));
    sock.on('error', fail);
    sock.on('connect', () => sock.write(Buffer.concat([u32(body.length), body])));
    sock.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d]);
      if (got.length >= 4 && got.length >= 4 + got.readUInt32BE(0)) {
        sock.destroy();
        resolve(got.subarray(4, 4 + got.readUInt32BE(0)));
      }
    });
    sock.on('close', () => reject(new Error('the ssh-agent closed the connection')));
  });
}

/** Reads SSH wire strings from a buffer. */
function strings(buf: Buffer, start: number, count: number): { values: Buffer[]; end: number } {
  const values: Buffer[] = [];
  let p = start;
  for (let i = 0; i < count; i++) {
    if (p + 4 > buf.length || p + 4 + buf.readUInt32BE(p) > buf.length) {
      throw new Error('malformed ssh-agent answer');
    }
    const len = buf.readUInt32BE(p);
    values.push(buf.subarray(p + 4, p + 4 + len));
    p += 4 + len;
  }
  return { values, end: p };
}

export interface IAgentIdentity {
  key: ParsedKey;
  /** The plain public key (for a certificate: the certified key). */
  publicKey: Buffer;
  /** Set for a certificate: its problem when it cannot be offered (then `key` is unusable). */
  problem?: string;
  comment: string;
}

/**
 * The agent's identities, certificates included (as keys ssh2 signs through the agent
 * with the certificate). Identities of types neither ssh2 nor we can use are left out.
 */
export async function agentIdentities(socketPath: string, now = Date.now() / 1000): Promise<IAgentIdentity[]> {
  const answer = await agentRequest(socketPath, Buffer.from([SSH_AGENTC_REQUEST_IDENTITIES]));
  if (answer[0] !== SSH_AGENT_IDENTITIES_ANSWER || answer.length < 5) {
    throw new Error('the ssh-agent refused to list its keys');
  }
  const n = answer.readUInt32BE(1);
  const out: IAgentIdentity[] = [];
  let p = 5;
  for (let i = 0; i < n; i++) {
    const { values, end } = strings(answer, p, 2);
    p = end;
    const [blob, commentBuf] = values;
    const comment = commentBuf.toString('utf8');
    const typeLen = blob.length >= 4 ? blob.readUInt32BE(0) : 0;
    const type = blob.subarray(4, 4 + typeLen).toString('latin1');
    if (!isCertificateType(type)) {
      const key = sshUtils.parseKey(blob);
      if (!(key instanceof Error)) {
        out.push({ key, publicKey: blob, comment });
      }
      continue;
    }
    let cert: ISshCertificate;
    try {
      cert = parseCertificate(blob);
    } catch {
      continue;
    }
    const plain = sshUtils.parseKey(cert.publicKey);
    if (plain instanceof Error) {
      continue;
    }
    const key = withCertificate(plain, blob, cert);
    AGENT_CERTS.set(key, blob);
    out.push({ key, publicKey: cert.publicKey, comment, problem: userCertificateProblem(cert, now) });
  }
  return out;
}

/** Whether `key` is an agent certificate (agentIdentities); its blob if so. */
export function agentCertificateBlob(key: unknown): Buffer | undefined {
  return typeof key === 'object' && key !== null ? AGENT_CERTS.get(key) : undefined;
}

/** Has the agent sign `data` with the certificate's key; resolves to the bare signature. */
export async function agentSignWithCertificate(socketPath: string, certBlob: Buffer, data: Buffer): Promise<Buffer> {
  const cert = parseCertificate(certBlob);
  const flags = cert.keyType === 'ssh-rsa' ? SSH_AGENT_RSA_SHA2_512 : 0;
  const answer = await agentRequest(
    socketPath,
    Buffer.concat([Buffer.from([SSH_AGENTC_SIGN_REQUEST]), str(certBlob), str(data), u32(flags)])
  );
  if (answer[0] !== SSH_AGENT_SIGN_RESPONSE) {
    throw new Error('the ssh-agent refused to sign with the certificate');
  }
  const [sig] = strings(answer, 1, 1).values;
  // OpenSSH's signature format: string algorithm, string bytes. ssh2 wants the bytes.
  return strings(sig, 0, 2).values[1];
}
