import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import {
  listConfiguredHosts,
  resolveChain,
  resolveHost,
  type IResolveOptions,
  type ISshConfigFs
} from '../ssh/ssh-config';
import { parseJumpSpec, parseProxyJump, percentExpand, tokenizeLine } from '../ssh/ssh-config-syntax';

const HOME = '/home/me';

/** An in-memory file system: path -> contents. */
function memFs(files: Record<string, string>): ISshConfigFs {
  return {
    readFile: f => files[f],
    readdir: dir => {
      const prefix = dir.endsWith('/') ? dir : dir + '/';
      const names = Object.keys(files)
        .filter(f => f.startsWith(prefix))
        .map(f => f.slice(prefix.length).split('/')[0]);
      return names.length ? [...new Set(names)] : undefined;
    }
  };
}

function opts(config: string, extra: Record<string, string> = {}): IResolveOptions {
  return {
    homeDir: HOME,
    localUser: 'me',
    localHost: 'laptop.lan',
    uid: 1000,
    env: { SSH_AUTH_SOCK: '/tmp/agent.sock', PROJ: '/proj' },
    fs: memFs({ [`${HOME}/.ssh/config`]: config, ...extra })
  };
}

describe('ssh_config', () => {
  it('tokenizes keywords, =, quotes and trailing comments', () => {
    expect(tokenizeLine('  HostName = login.hpc.org  ')).toMatchObject({
      keyword: 'hostname',
      args: ['login.hpc.org']
    });
    expect(tokenizeLine('IdentityFile "~/My Keys/id"  # mine')).toMatchObject({
      keyword: 'identityfile',
      args: ['~/My Keys/id']
    });
    expect(tokenizeLine('Port=2222')).toMatchObject({ keyword: 'port', args: ['2222'] });
    expect(tokenizeLine('# comment')).toBeNull();
    expect(tokenizeLine('   ')).toBeNull();
  });

  it('uses the first obtained value; Host * gives defaults; unknown keywords are ignored', () => {
    const cfg = `
Host cluster
    HostName login.hpc.org
    User alice
    FancyNewKeyword yes
Host cl*
    HostName wrong.example.org
    Port 2222
    User bob
Host *
    User carol
    ServerAliveInterval 30
    ServerAliveCountMax 5
    ConnectTimeout 7
    StrictHostKeyChecking accept-new
`;
    const r = resolveHost('cluster', opts(cfg));
    expect(r).toMatchObject({
      alias: 'cluster',
      hostName: 'login.hpc.org',
      user: 'alice',
      port: 2222,
      serverAliveInterval: 30,
      serverAliveCountMax: 5,
      connectTimeout: 7,
      strictHostKeyChecking: 'accept-new',
      identitiesOnly: false,
      identityFiles: []
    });
    expect(r.warnings).toEqual([]);
    const other = resolveHost('elsewhere', opts(cfg));
    expect(other).toMatchObject({ hostName: 'elsewhere', user: 'carol', port: 22 });
    // Overrides (like ssh -l/-p) win over the file.
    expect(resolveHost('cluster', opts(cfg), { user: 'dave', port: 2022 })).toMatchObject({ user: 'dave', port: 2022 });
    // Without a file: the local user, port 22.
    expect(resolveHost('x', { ...opts(''), fs: memFs({}) })).toMatchObject({ hostName: 'x', user: 'me', port: 22 });
  });

  it('matches Host patterns with *, ? and ! negation', () => {
    const cfg = `
Host node? !node9
    User nodeuser
Host *.hpc.org !*.public.hpc.org
    User hpcuser
Host *
    User default
`;
    expect(resolveHost('node1', opts(cfg)).user).toBe('nodeuser');
    expect(resolveHost('node9', opts(cfg)).user).toBe('default');
    expect(resolveHost('node10', opts(cfg)).user).toBe('default');
    expect(resolveHost('a.hpc.org', opts(cfg)).user).toBe('hpcuser');
    expect(resolveHost('a.public.hpc.org', opts(cfg)).user).toBe('default');
    // OpenSSH matches Host patterns case-sensitively (ssh-config-vs-ssh-G.spec.ts)
    expect(resolveHost('NODE2', opts(cfg)).user).toBe('default');
  });

  it('collects IdentityFile values and expands ~, ${ENV} and % tokens', () => {
    const cfg = `
Host login
    HostName login.hpc.org
    User alice
    Port 2200
    IdentityFile ~/.ssh/id_%h_%r
    IdentityFile %d/keys/%u@%l-%p
    IdentityFile \${PROJ}/key_%n%%
    IdentitiesOnly yes
    UserKnownHostsFile ~/.ssh/kh_%h /etc/kh_%k
Host *
    IdentityFile ~/.ssh/id_default
    IdentityFile ~/.ssh/id_%x
`;
    const r = resolveHost('login', opts(cfg));
    expect(r.identityFiles).toEqual([
      `${HOME}/.ssh/id_login.hpc.org_alice`,
      `${HOME}/keys/me@laptop.lan-2200`,
      '/proj/key_login%',
      `${HOME}/.ssh/id_default`
    ]);
    expect(r.identitiesOnly).toBe(true);
    expect(r.userKnownHostsFiles).toEqual([`${HOME}/.ssh/kh_login.hpc.org`, '/etc/kh_login.hpc.org']);
    expect(r.warnings).toEqual(['IdentityFile ~/.ssh/id_%x: unknown token %x; ignored.']);
    expect(() => percentExpand('%q', {})).toThrow('unknown token %q');
  });

  it('expands %h in HostName and supports HostKeyAlias', () => {
    const cfg = 'Host *.short\n  HostName %h.example.org\n  HostKeyAlias shared-login\n';
    expect(resolveHost('a.short', opts(cfg))).toMatchObject({
      hostName: 'a.short.example.org',
      hostKeyAlias: 'shared-login'
    });
  });

  it('follows Include: globs in lexical order, relative to ~/.ssh, conditional in Host blocks', () => {
    const cfg = `
Include conf.d/*.conf
Host special
    Include ~/.ssh/special-only
Host *
    User fallback
`;
    const files = {
      [`${HOME}/.ssh/conf.d/20-b.conf`]: 'Host alpha\n    User from-b\n    Port 2\n',
      [`${HOME}/.ssh/conf.d/10-a.conf`]: 'Host alpha\n    User from-a\n',
      [`${HOME}/.ssh/conf.d/ignored.txt`]: 'Host alpha\n    Port 99\n',
      [`${HOME}/.ssh/special-only`]: 'HostName special.example.org\nHost alpha\n    HostName should-not-apply\n'
    };
    const a = resolveHost('alpha', opts(cfg, files));
    expect(a).toMatchObject({ user: 'from-a', port: 2, hostName: 'alpha' });
    const s = resolveHost('special', opts(cfg, files));
    expect(s).toMatchObject({ hostName: 'special.example.org', user: 'fallback' });
  });

  it('evaluates Match all/host/originalhost/user/localuser, with negation', () => {
    const cfg = `
Host short
    HostName login.hpc.org
Match host *.hpc.org user alice
    Port 2201
Match originalhost short !localuser root
    IdentityFile ~/.ssh/short
Match user bob
    Port 2202
Match all
    User alice
`;
    // User is not known yet when the first Match is read: it is the local user "me".
    const r = resolveHost('short', opts(cfg));
    expect(r).toMatchObject({
      hostName: 'login.hpc.org',
      user: 'alice',
      port: 22,
      identityFiles: [`${HOME}/.ssh/short`]
    });
    // With the user given up front, the host+user match applies.
    expect(resolveHost('short', opts(cfg), { user: 'alice' }).port).toBe(2201);
    expect(resolveHost('other', opts(cfg), { user: 'bob' }).port).toBe(2202);
    expect(resolveHost('short', { ...opts(cfg), localUser: 'root' }).identityFiles).toEqual([]);
  });

  it('never runs Match exec: the block is skipped with a warning', () => {
    const marker = path.join(os.tmpdir(), `rc-match-exec-${process.pid}`);
    const cfg = `
Match exec "touch ${marker}" host login
    User from-exec
Match exec "true" host elsewhere
    User also-skipped
Host *
    User normal
`;
    const r = resolveHost('login', { ...opts(cfg), fs: memFs({ [`${HOME}/.ssh/config`]: cfg }) });
    expect(r.user).toBe('normal');
    expect(r.warnings).toEqual([
      `${HOME}/.ssh/config:2: "Match exec" is never run by jupyterlab-remote-cluster; the settings of this Match block are ignored.`
    ]);
    return expect(fs.stat(marker)).rejects.toThrow(/ENOENT/);
  });

  it('parses ProxyJump entries', () => {
    expect(parseJumpSpec('bastion')).toEqual({ host: 'bastion', user: undefined, port: undefined });
    expect(parseJumpSpec('bob@gw.example.org:2222')).toEqual({ host: 'gw.example.org', user: 'bob', port: 2222 });
    expect(parseJumpSpec('ssh://u@h:22')).toEqual({ host: 'h', user: 'u', port: 22 });
    expect(parseJumpSpec('u@[2001:db8::1]:2200')).toEqual({ host: '2001:db8::1', user: 'u', port: 2200 });
    expect(parseProxyJump('none')).toEqual([]);
    expect(parseProxyJump('a,b@c:3').map(s => s.host)).toEqual(['a', 'c']);
    expect(() => parseJumpSpec('h:notaport')).toThrow('bad port');
    expect(() => parseJumpSpec('h:70000')).toThrow('port out of range');
  });

  it('resolves ProxyJump chains through the config (first jump host keeps its own ProxyJump)', () => {
    const cfg = `
Host bastion
    HostName 198.18.0.2
    User alice
    ProxyJump none
Host login
    HostName 198.18.1.2
    ProxyJump bastion
Host node1
    HostName 198.18.2.11
    ProxyJump login
Host direct
    ProxyJump none
Host gw2
    HostName gw2.example.org
    ProxyJump elsewhere-should-be-ignored
Host *
    User alice
    ProxyJump bastion
`;
    const chain = resolveChain('node1', opts(cfg));
    expect(chain.map(h => `${h.user}@${h.hostName}:${h.port}`)).toEqual([
      'alice@198.18.0.2:22',
      'alice@198.18.1.2:22',
      'alice@198.18.2.11:22'
    ]);
    // "none" (first value obtained) wins over Host *'s ProxyJump.
    expect(resolveChain('direct', opts(cfg)).map(h => h.alias)).toEqual(['direct']);
    expect(resolveChain('bastion', opts(cfg)).map(h => h.alias)).toEqual(['bastion']);
    // Without "ProxyJump none", a jump host that jumps through itself loops.
    const loop = 'Host a\n  ProxyJump b\nHost b\n  ProxyJump c\nHost c\n  ProxyJump b\n';
    expect(() => resolveChain('a', opts(loop))).toThrow(
      'its ProxyJump chain loops (a -> b -> c -> b); give the first jump host "ProxyJump none" in ssh_config'
    );
    // Explicit jump hosts replace the target's ProxyJump; entries carry user and port;
    // later entries of a chain do not use their own ProxyJump.
    const explicit = resolveChain('node1', opts(cfg), { jumpHosts: ['login', 'carl@gw2:2022'] });
    expect(explicit.map(h => `${h.user}@${h.alias}:${h.port}`)).toEqual([
      'alice@bastion:22',
      'alice@login:22',
      'carl@gw2:2022',
      'alice@node1:22'
    ]);
  });

  it('lets ProxyJump and ProxyCommand compete: the first one wins', () => {
    const cfg = `
Host a
    ProxyCommand ssh -W %h:%p gw
Host *
    ProxyJump gw
`;
    expect(resolveHost('a', opts(cfg))).toMatchObject({ proxyCommand: 'ssh -W %h:%p gw', proxyJump: undefined });
    expect(resolveHost('b', opts(cfg))).toMatchObject({ proxyCommand: undefined, proxyJump: 'gw' });
  });

  it('reads real files with a real Include glob', async () => {
    const home = await fs.mkdtemp(path.join(os.tmpdir(), 'rc-sshcfg-'));
    try {
      await fs.mkdir(path.join(home, '.ssh', 'inc'), { recursive: true });
      await fs.writeFile(path.join(home, '.ssh', 'inc', 'x.conf'), 'Host x\n  HostName x.example.org\n  Port 2022\n');
      await fs.writeFile(path.join(home, 'cfg'), 'Include inc/*.conf\nHost x\n  Port 1\n');
      const r = resolveHost('x', { homeDir: home, localUser: 'me', configFile: path.join(home, 'cfg') });
      expect(r).toMatchObject({ hostName: 'x.example.org', port: 2022 });
      // configFile with ~ and a missing config are fine.
      expect(resolveHost('y', { homeDir: home, localUser: 'me', configFile: '~/nope' }).hostName).toBe('y');
    } finally {
      await fs.rm(home, { recursive: true, force: true });
    }
  });

  it('handles IdentityAgent and auth keywords', () => {
    const cfg = `
Host a
    IdentityAgent SSH_AUTH_SOCK
    NumberOfPasswordPrompts 1
    PreferredAuthentications keyboard-interactive,publickey
    PasswordAuthentication no
Host b
    IdentityAgent none
Host c
    IdentityAgent ~/agent.%u
`;
    expect(resolveHost('a', opts(cfg))).toMatchObject({
      identityAgent: '/tmp/agent.sock',
      numberOfPasswordPrompts: 1,
      preferredAuthentications: ['keyboard-interactive', 'publickey'],
      passwordAuthentication: false
    });
    expect(resolveHost('b', opts(cfg)).identityAgent).toBe('none');
    expect(resolveHost('c', opts(cfg)).identityAgent).toBe(`${HOME}/agent.me`);
  });

  it('lists the concrete Host aliases, following every Include, each resolved', () => {
    const cfg = `
Include conf.d/*.conf
Host *.compute !bad alpha beta? "gamma"
    User from-main
Match host never
    Include ~/.ssh/in-match
Host delta
    HostName delta.example.org
    ProxyJump none
Host *
    User fallback
`;
    const files = {
      [`${HOME}/.ssh/conf.d/10-a.conf`]:
        'Host cluster login-[ab] alpha\n    HostName login.cluster.org\n    Port 2222\n    ProxyJump gw\n',
      [`${HOME}/.ssh/in-match`]: 'Host epsilon\n    User eps\n'
    };
    const hosts = listConfiguredHosts(opts(cfg, files));
    expect(hosts.map(h => h.alias)).toEqual(['cluster', 'alpha', 'gamma', 'epsilon', 'delta']);
    expect(hosts[0]).toEqual({
      alias: 'cluster',
      hostName: 'login.cluster.org',
      user: 'fallback',
      port: 2222,
      proxyJump: 'gw',
      file: `${HOME}/.ssh/conf.d/10-a.conf`,
      warnings: []
    });
    expect(hosts[1]).toMatchObject({ alias: 'alpha', hostName: 'login.cluster.org', user: 'from-main', port: 2222 });
    expect(hosts[2]).toMatchObject({
      alias: 'gamma',
      hostName: 'gamma',
      user: 'from-main',
      port: 22,
      file: `${HOME}/.ssh/config`
    });
    // Resolved as ssh would: the Include inside a non-matching Match does not apply to epsilon.
    expect(hosts[3]).toMatchObject({ alias: 'epsilon', hostName: 'epsilon', user: 'fallback' });
    expect(hosts[4]).toMatchObject({ alias: 'delta', hostName: 'delta.example.org', user: 'fallback' });
    expect(hosts[4].proxyJump).toBeUndefined();
    expect(listConfiguredHosts(opts('', {}))).toEqual([]);
    expect(listConfiguredHosts({ ...opts(''), fs: memFs({}) })).toEqual([]);
  });
});
