/**
 * ssh_config resolution checked against OpenSSH itself: for a corpus of configurations
 * and target names with mixed letter case, `ssh -F <file> -G <name>` (the real client,
 * which resolves without connecting) and our resolver agree on the host name, user and
 * port. OpenSSH's rules: Host patterns match the name as typed, case-sensitively; Match
 * host/originalhost ignore case; Match user/localuser do not; the host name (and %h) is
 * lowercased.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { resolveHost } from '../ssh/ssh-config';

const CONFIG = `
Host FOO
    Port 1111
    CertificateFile /certs/FOO-cert.pub
Host foo
    User lowerhost
    CertificateFile /certs/foo-cert.pub
Host Bar* !BarNo
    Port 2222
Host Alias1
    HostName MyHost.Example.ORG
Host alias2
    HostName %h-Suffix
Match host BAZ,myhost.example.org
    Port 3333
Match originalhost QUX*
    User origmatch
Match user ALICE
    Port 4444
Match localuser NOBODY-X
    Port 5555
Match !host *.Example.ORG originalhost Mixed
    User notexample
Host *
    User defaultuser
    CertificateFile /certs/site-cert.pub
`;

const NAMES = [
  'FOO',
  'foo',
  'Foo',
  'BarX',
  'barx',
  'BarNo',
  'BAZ',
  'baz',
  'QUXY',
  'quxy',
  'Alias1',
  'alias1',
  'alias2',
  'ALIAS2',
  'MyHost.EXAMPLE.org',
  'Mixed',
  'MIXED'
];

let dir: string;
let file: string;

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'ssh-G-'));
  file = path.join(dir, 'config');
  writeFileSync(file, CONFIG);
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** What OpenSSH resolves (`ssh -G` prints the configuration it would use, and exits). */
function sshG(name: string, user?: string): { hostname: string; user: string; port: number } {
  const out = execFileSync('ssh', ['-F', file, '-G', ...(user ? ['-l', user] : []), name], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe']
  });
  const get = (k: string) => new RegExp(`^${k} (.*)$`, 'm').exec(out)?.[1] ?? '';
  return { hostname: get('hostname'), user: get('user'), port: Number(get('port')) };
}

function ours(name: string, user?: string): { hostname: string; user: string; port: number } {
  const h = resolveHost(name, { configFile: file, homeDir: dir, localUser: os.userInfo().username }, { user });
  return { hostname: h.hostName, user: h.user, port: h.port };
}

describe('ssh_config as `ssh -G` resolves it (letter case)', () => {
  it.each(NAMES)('%s', name => {
    expect(ours(name)).toEqual(sshG(name));
  });

  it.each(['FOO', 'foo', 'Foo'])('CertificateFile accumulates in order, %s', name => {
    const out = execFileSync('ssh', ['-F', file, '-G', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    const theirs = [...out.matchAll(/^certificatefile (.*)$/gm)].map(m => m[1]);
    const h = resolveHost(name, { configFile: file, homeDir: dir, localUser: os.userInfo().username });
    expect(theirs.length).toBeGreaterThan(0);
    expect(h.certificateFiles).toEqual(theirs);
  });

  it.each(['ALICE', 'alice'])('Match user, -l %s', user => {
    expect(ours('zz', user)).toEqual(sshG('zz', user));
  });

  it('the corpus tells the rules apart (a case-blind resolver would fail it)', () => {
    const seen = NAMES.map(n => sshG(n));
    expect(seen[0].port).toBe(1111); // Host FOO, typed FOO
    expect(seen[1]).toMatchObject({ port: 22, user: 'lowerhost' }); // typed foo: only Host foo
    expect(seen[2]).toMatchObject({ port: 22, user: 'defaultuser' }); // Foo: neither
    expect(seen[7].port).toBe(3333); // Match host ignores case
    expect(seen[13].hostname).toBe('alias2'); // lowercased
  });
});

describe('what ssh would do that we do not', () => {
  it('CanonicalizeHostname and Match canonical are refused by name, not silently', () => {
    const cfg = path.join(dir, 'canonical');
    writeFileSync(cfg, 'CanonicalizeHostname yes\nCanonicalDomains example.org\nMatch canonical\n    Port 2\n');
    const h = resolveHost('x', { configFile: cfg, homeDir: dir, localUser: 'me' });
    expect(h.port).toBe(22);
    expect(h.warnings.join('\n')).toMatch(/CanonicalizeHostname yes is not supported/);
    expect(h.warnings.join('\n')).toMatch(/Match canonical never matches here/);
  });
});
