/**
 * Host certificates as ssh-keygen(1) makes them, judged against known_hosts as ssh(1)
 * would: a listed CA, @revoked, principals, validity, the CA's signature and algorithm.
 * The connection through a real sshd is tested on the testbed (host-certificates.spec.ts).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { hostKeyAlgorithmsFor } from '../ssh/host-key-check';
import { certificateSignatureProblem, hostCertificateProblem, parseCertificate, validUntil } from '../ssh/certificates';
import { checkHostCertificateInEntries, parseKnownHosts } from '../ssh/known-hosts';

let dir: string;
let n = 0;

function keygen(...args: string[]): void {
  execFileSync('ssh-keygen', ['-q', ...args], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A new key pair in the temp dir; returns its base name. */
function key(type = 'ed25519'): string {
  const name = `k${n++}`;
  keygen('-t', type, ...(type === 'rsa' ? ['-b', '2048'] : []), '-N', '', '-f', path.join(dir, name));
  return name;
}

/** The public key line's blob of a key or certificate file. */
function blob(file: string): Buffer {
  return Buffer.from(readFileSync(path.join(dir, file), 'utf8').split(' ')[1], 'base64');
}

/** Signs `hostKey`.pub with `ca`; returns the certificate blob. */
function sign(
  ca: string,
  hostKey: string,
  opts: { principals?: string; validity?: string; user?: boolean; algo?: string } = {}
): Buffer {
  keygen(
    '-s',
    ca,
    '-I',
    'test-id',
    ...(opts.user ? [] : ['-h']),
    ...(opts.principals ? ['-n', opts.principals] : []),
    ...(opts.validity ? ['-V', opts.validity] : []),
    ...(opts.algo ? ['-t', opts.algo] : []),
    `${hostKey}.pub`
  );
  return blob(`${hostKey}-cert.pub`);
}

const now = (): number => Date.now() / 1000;

function known(lines: string): ReturnType<typeof parseKnownHosts> {
  return parseKnownHosts(lines, 'kh');
}

function caLine(ca: string, hosts = 'node*,login'): string {
  return `@cert-authority ${hosts} ${readFileSync(path.join(dir, `${ca}.pub`), 'utf8').trim()}\n`;
}

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'rc-certs-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('host certificates', () => {
  it('parses what ssh-keygen -L shows', () => {
    const ca = key();
    const host = key();
    const cert = parseCertificate(sign(ca, host, { principals: 'node1,node1.cluster', validity: '20200101:20400101' }));
    expect(cert.type).toBe('ssh-ed25519-cert-v01@openssh.com');
    expect(cert.certType).toBe(2);
    expect(cert.keyId).toBe('test-id');
    expect(cert.principals).toEqual(['node1', 'node1.cluster']);
    expect(cert.publicKey.equals(blob(`${host}.pub`))).toBe(true);
    expect(cert.signatureKey.equals(blob(`${ca}.pub`))).toBe(true);
    expect(validUntil(cert)).toBe(new Date(2040, 0, 1).toISOString().replace('.000Z', 'Z'));
    expect(certificateSignatureProblem(cert)).toBeUndefined();
  });

  it('trusts a certificate of a CA listed for the host, and no other host or CA', () => {
    const ca = key();
    const other = key();
    const host = key();
    const cert = sign(ca, host, { principals: 'node1' });
    expect(checkHostCertificateInEntries(known(caLine(ca)), 'node1', 22, cert, now())).toMatchObject({
      status: 'match',
      line: 1
    });
    // The CA is listed, but only for other names.
    expect(checkHostCertificateInEntries(known(caLine(ca, 'gpu*')), 'node1', 22, cert, now())).toMatchObject({
      status: 'cert-unknown-ca',
      reason: expect.stringMatching(/^its CA \(SHA256:\S+\) is not listed with @cert-authority for node1$/)
    });
    // Another CA is listed for the host.
    expect(checkHostCertificateInEntries(known(caLine(other)), 'node1', 22, cert, now()).status).toBe(
      'cert-unknown-ca'
    );
  });

  it('refuses an expired, a not-yet-valid and a wrong-principal certificate, saying which', () => {
    const ca = key();
    const host = key();
    const kh = known(caLine(ca));
    const expired = sign(ca, host, { principals: 'node1', validity: '20200101:20200102' });
    expect(checkHostCertificateInEntries(kh, 'node1', 22, expired, now())).toMatchObject({
      status: 'cert-invalid',
      reason: `it expired at ${new Date(2020, 0, 2).toISOString().replace('.000Z', 'Z')}`
    });
    const future = sign(ca, host, { principals: 'node1', validity: '+1d:+2d' });
    expect(checkHostCertificateInEntries(kh, 'node1', 22, future, now()).reason).toMatch(/^it is not valid before /);
    const wrong = sign(ca, host, { principals: 'node2,node3' });
    expect(checkHostCertificateInEntries(kh, 'node1', 22, wrong, now())).toMatchObject({
      status: 'cert-invalid',
      reason: 'it is for node2, node3, not node1'
    });
    // Principals hold wildcards (OpenSSH 8.8+ for host certificates); none means any host.
    expect(checkHostCertificateInEntries(kh, 'node1', 22, sign(ca, host, { principals: 'node*' }), now()).status).toBe(
      'match'
    );
    expect(checkHostCertificateInEntries(kh, 'node1', 22, sign(ca, host), now()).status).toBe('match');
  });

  it('refuses a user certificate offered as a host certificate', () => {
    const ca = key();
    const host = key();
    const cert = sign(ca, host, { principals: 'node1', user: true });
    expect(checkHostCertificateInEntries(known(caLine(ca)), 'node1', 22, cert, now())).toMatchObject({
      status: 'cert-invalid',
      reason: 'it is a user certificate, not a host certificate'
    });
  });

  it('refuses a certificate whose CA signature does not verify', () => {
    const ca = key();
    const host = key();
    const cert = Buffer.from(sign(ca, host, { principals: 'node1' }));
    cert[cert.length - 5] ^= 0x01; // inside the signature bytes
    expect(checkHostCertificateInEntries(known(caLine(ca)), 'node1', 22, cert, now())).toMatchObject({
      status: 'cert-invalid',
      reason: 'the CA signature does not verify'
    });
    const tampered = Buffer.from(sign(ca, host, { principals: 'node1' }));
    tampered[60] ^= 0x01; // inside the certified key: signed data changed
    expect(checkHostCertificateInEntries(known(caLine(ca)), 'node1', 22, tampered, now()).status).toBe('cert-invalid');
  });

  it('verifies RSA (rsa-sha2-512/256) and ECDSA CAs, and refuses SHA-1 ssh-rsa CA signatures', () => {
    const host = key('ecdsa');
    for (const [type, algo] of [
      ['rsa', 'rsa-sha2-512'],
      ['rsa', 'rsa-sha2-256'],
      ['ecdsa', undefined]
    ] as const) {
      const ca = key(type);
      const cert = sign(ca, host, { principals: 'node1', algo });
      expect([type, checkHostCertificateInEntries(known(caLine(ca)), 'node1', 22, cert, now()).status]).toEqual([
        type,
        'match'
      ]);
    }
    const rsaCa = key('rsa');
    const sha1 = parseCertificate(sign(rsaCa, host, { principals: 'node1', algo: 'ssh-rsa' }));
    expect(certificateSignatureProblem(sha1)).toBe(
      'it is signed with ssh-rsa, which is not accepted for certificate authorities'
    );
  });

  it('honours @revoked for the CA key and for the certified key', () => {
    const ca = key();
    const host = key();
    const cert = sign(ca, host, { principals: 'node1' });
    const caPub = readFileSync(path.join(dir, `${ca}.pub`), 'utf8').trim();
    const hostPub = readFileSync(path.join(dir, `${host}.pub`), 'utf8').trim();
    expect(
      checkHostCertificateInEntries(known(caLine(ca) + `@revoked * ${caPub}\n`), 'node1', 22, cert, now())
    ).toMatchObject({ status: 'revoked', reason: 'its CA key is marked @revoked', line: 2 });
    expect(
      checkHostCertificateInEntries(known(caLine(ca) + `@revoked node1 ${hostPub}\n`), 'node1', 22, cert, now())
    ).toMatchObject({ status: 'revoked', reason: 'its key is marked @revoked' });
  });

  it('falls back to a plainly listed key as ssh(1) does, and reports a changed one', () => {
    const ca = key();
    const host = key();
    const expired = sign(ca, host, { principals: 'node1', validity: '20200101:20200102' });
    const hostPub = readFileSync(path.join(dir, `${host}.pub`), 'utf8').trim();
    expect(
      checkHostCertificateInEntries(known(caLine(ca) + `node1 ${hostPub}\n`), 'node1', 22, expired, now()).status
    ).toBe('match');
    const otherPub = readFileSync(path.join(dir, `${key()}.pub`), 'utf8').trim();
    expect(
      checkHostCertificateInEntries(known(caLine(ca) + `node1 ${otherPub}\n`), 'node1', 22, expired, now()).status
    ).toBe('changed');
  });

  it('checks the validity window against the given clock and names hosts in lower case', () => {
    const ca = key();
    const host = key();
    const cert = parseCertificate(sign(ca, host, { principals: 'node1', validity: '20300101:20300102' }));
    const at = Date.UTC(2030, 0, 1, 12) / 1000;
    expect(hostCertificateProblem(cert, 'node1', at)).toBeUndefined();
    expect(
      checkHostCertificateInEntries(
        known(caLine(ca, 'NODE1')),
        'NODE1',
        22,
        sign(ca, host, { principals: 'node1' }),
        now()
      ).status
    ).toBe('match');
  });

  it('offers certificate host-key algorithms first only where known_hosts lists a CA', async () => {
    const ca = key();
    const host = key();
    const kh = path.join(dir, 'known_hosts');
    writeFileSync(kh, caLine(ca, 'node*') + `login ${readFileSync(path.join(dir, `${host}.pub`), 'utf8')}`);
    const forNode = await hostKeyAlgorithmsFor([kh], 'node1', 22);
    expect((forNode as { prepend: string[] }).prepend.slice(0, 2)).toEqual([
      'ssh-ed25519-cert-v01@openssh.com',
      'ecdsa-sha2-nistp256-cert-v01@openssh.com'
    ]);
    const forLogin = await hostKeyAlgorithmsFor([kh], 'login', 22);
    expect((forLogin as { prepend: string[] }).prepend).toEqual(['ssh-ed25519']);
  });
});
