/**
 * Resolves a host alias through an OpenSSH client configuration file, the way ssh(1)
 * does (ssh_config(5)):
 * - the first obtained value of each keyword wins (IdentityFile accumulates);
 * - `Host` patterns with `*`, `?` and `!` negation; `Host *` gives defaults;
 * - `Match all | canonical | final | host | originalhost | user | localuser`, with `!`;
 *   `Match exec` is NEVER run: its block is skipped and a warning is returned;
 * - `Include` with globs, relative paths from ~/.ssh, conditional inside Host/Match;
 * - `~`, `${ENV}` and `%` tokens (%% %C %d %h %i %j %k %L %l %n %p %r %u) in
 *   IdentityFile, UserKnownHostsFile, GlobalKnownHostsFile, IdentityAgent;
 * - ProxyJump chains (`none`, `[user@]host[:port]`, `ssh://`), each entry resolved
 *   through the configuration too (see resolveChain).
 * - letter case as OpenSSH has it (checked against `ssh -G`): `Host` patterns match the
 *   name as typed, case-sensitively; `Match host`/`originalhost` ignore case; `Match
 *   user`/`localuser` do not; the host name connected to (and `%h`) is lowercased;
 * - `CanonicalizeHostname` is not supported (a warning says so; names are used as
 *   written), and `Match canonical` never matches (a warning too).
 * Unknown keywords are ignored. Reading files goes through an injectable `fs`.
 * The syntax is in ssh-config-syntax.ts, what each keyword does in ssh-config-keywords.ts.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import type { IConfiguredHost } from '../../common/api';
import { applyKeyword, evalMatch, type IContext, type IRaw } from './ssh-config-keywords';
import {
  expandEnv,
  expandGlob,
  expandTilde,
  hasGlob,
  hostPatternsMatch,
  parseProxyJump,
  percentExpand,
  tokenizeLine,
  type IJumpSpec
} from './ssh-config-syntax';

/** File access used by the resolver (tests may pass their own). */
export interface ISshConfigFs {
  /** File contents, or undefined if there is no such file. */
  readFile(file: string): string | undefined;
  /** Entry names of a directory, or undefined if there is no such directory. */
  readdir(dir: string): string[] | undefined;
}

export const nodeConfigFs: ISshConfigFs = {
  readFile(file: string): string | undefined {
    try {
      return fs.readFileSync(file, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR') {
        return undefined;
      }
      throw new Error(`Cannot read ssh config file ${file}: ${(err as Error).message}`);
    }
  },
  readdir(dir: string): string[] | undefined {
    try {
      return fs.readdirSync(dir);
    } catch {
      return undefined;
    }
  }
};

export interface IResolveOptions {
  /** The ssh_config file (default `~/.ssh/config`; a missing file is empty). */
  configFile?: string;
  /** Local home directory (default os.homedir()). */
  homeDir?: string;
  /** Local user name (default os.userInfo().username). */
  localUser?: string;
  /** Local host name for %l/%L (default os.hostname()). */
  localHost?: string;
  /** Local uid for %i. */
  uid?: number;
  /** Environment for `${VAR}` (default process.env). */
  env?: Record<string, string | undefined>;
  fs?: ISshConfigFs;
}

export interface IResolvedHost {
  /** The name asked for (the Host alias). */
  alias: string;
  hostName: string;
  user: string;
  port: number;
  /** IdentityFile values, expanded, in order (empty when none configured). */
  identityFiles: string[];
  /** CertificateFile values, expanded, in order (user certificates; empty when none). */
  certificateFiles: string[];
  identitiesOnly: boolean;
  /** IdentityAgent: a socket path, or `none`, or `SSH_AUTH_SOCK` (expanded when set). */
  identityAgent?: string;
  /** Raw ProxyJump value (`none` included); see parseProxyJump. */
  proxyJump?: string;
  proxyCommand?: string;
  /** UserKnownHostsFile values, expanded; undefined when not configured. */
  userKnownHostsFiles?: string[];
  /** GlobalKnownHostsFile values, expanded; undefined when not configured. */
  globalKnownHostsFiles?: string[];
  /** Parsed and kept for callers; this project always verifies host keys anyway. */
  strictHostKeyChecking?: string;
  hashKnownHosts?: boolean;
  hostKeyAlias?: string;
  /** Seconds. */
  serverAliveInterval?: number;
  serverAliveCountMax?: number;
  /** Seconds. */
  connectTimeout?: number;
  numberOfPasswordPrompts?: number;
  preferredAuthentications?: string[];
  pubkeyAuthentication?: boolean;
  kbdInteractiveAuthentication?: boolean;
  passwordAuthentication?: boolean;
  /** Problems found while resolving (Match exec skipped, bad tokens, ...). */
  warnings: string[];
}

/* ----------------------------------------------------------------------------------
 * Resolution
 * -------------------------------------------------------------------------------- */

const MAX_INCLUDE_DEPTH = 16;

/**
 * Resolves `alias` through the configuration. `overrides` are the equivalent of
 * ssh's command-line -l/-p: they win over the file.
 */
export function resolveHost(
  alias: string,
  options: IResolveOptions = {},
  overrides: { user?: string; port?: number } = {}
): IResolvedHost {
  const homeDir = options.homeDir ?? os.homedir();
  const localUser = options.localUser ?? os.userInfo().username;
  const localHost = options.localHost ?? os.hostname();
  const env = options.env ?? process.env;
  const cfs = options.fs ?? nodeConfigFs;
  const configFile = options.configFile
    ? expandTilde(options.configFile, homeDir)
    : path.join(homeDir, '.ssh', 'config');
  const raw: IRaw = { identityFiles: [], certificateFiles: [] };
  const warnings: string[] = [];
  // OpenSSH connects to the host name lowercased, %h included (ssh -G says so)
  const expandHostName = (v: string): string => {
    try {
      return percentExpand(v, { h: alias }).toLowerCase();
    } catch {
      return v.toLowerCase();
    }
  };
  const ctx: IContext = { alias, overrides, localUser, homeDir, cfs, raw, warnings, expandHostName };

  const text = cfs.readFile(configFile);
  if (text !== undefined) {
    readConfigText(ctx, text, configFile, 0, true);
  }

  const hostName = raw.hostName !== undefined ? expandHostName(raw.hostName) : alias.toLowerCase();
  const user = overrides.user ?? raw.user ?? localUser;
  const port = overrides.port ?? raw.port ?? 22;

  const jump = raw.proxyJump && raw.proxyJump.toLowerCase() !== 'none' ? raw.proxyJump : '';
  const tokens: Record<string, string> = {
    d: homeDir,
    h: hostName,
    i: String(options.uid ?? (typeof process.getuid === 'function' ? process.getuid() : 0)),
    j: jump,
    k: raw.hostKeyAlias ?? hostName,
    L: localHost.split('.')[0],
    l: localHost,
    n: alias,
    p: String(port),
    r: user,
    u: localUser
  };
  tokens.C = createHash('sha1')
    .update(tokens.l + tokens.h + tokens.p + tokens.r + tokens.j)
    .digest('hex');

  const expandPath = (keyword: string, v: string): string | undefined => {
    try {
      return expandTilde(percentExpand(expandEnv(v, env), tokens), homeDir);
    } catch (err) {
      warnings.push(`${keyword} ${v}: ${(err as Error).message}; ignored.`);
      return undefined;
    }
  };
  const expandList = (keyword: string, list: string[] | undefined): string[] | undefined =>
    list === undefined
      ? undefined
      : list
          .filter(v => v.toLowerCase() !== 'none')
          .map(v => expandPath(keyword, v))
          .filter((v): v is string => v !== undefined);

  let identityAgent: string | undefined;
  if (raw.identityAgent !== undefined) {
    const v = raw.identityAgent;
    identityAgent =
      v.toLowerCase() === 'none'
        ? 'none'
        : v === 'SSH_AUTH_SOCK'
          ? (env.SSH_AUTH_SOCK ?? 'none')
          : v.startsWith('$') && /^\$[A-Za-z_][A-Za-z0-9_]*$/.test(v)
            ? (env[v.slice(1)] ?? 'none')
            : expandPath('IdentityAgent', v);
  }

  return {
    alias,
    hostName,
    user,
    port,
    identityFiles: expandList('IdentityFile', raw.identityFiles) ?? [],
    certificateFiles: expandList('CertificateFile', raw.certificateFiles) ?? [],
    identitiesOnly: raw.identitiesOnly ?? false,
    identityAgent,
    proxyJump: raw.proxyJump,
    proxyCommand: raw.proxyCommand,
    userKnownHostsFiles: expandList('UserKnownHostsFile', raw.userKnownHostsFiles),
    globalKnownHostsFiles: expandList('GlobalKnownHostsFile', raw.globalKnownHostsFiles),
    strictHostKeyChecking: raw.strictHostKeyChecking,
    hashKnownHosts: raw.hashKnownHosts,
    hostKeyAlias: raw.hostKeyAlias,
    serverAliveInterval: raw.serverAliveInterval,
    serverAliveCountMax: raw.serverAliveCountMax,
    connectTimeout: raw.connectTimeout,
    numberOfPasswordPrompts: raw.numberOfPasswordPrompts,
    preferredAuthentications: raw.preferredAuthentications,
    pubkeyAuthentication: raw.pubkeyAuthentication,
    kbdInteractiveAuthentication: raw.kbdInteractiveAuthentication,
    passwordAuthentication: raw.passwordAuthentication,
    warnings
  };
}

/** Reads one file's text; `active` is whether the enclosing Host/Match block applies. */
function readConfigText(ctx: IContext, text: string, file: string, depth: number, active: boolean): void {
  const lines = text.split(/\r?\n/);
  for (let n = 0; n < lines.length; n++) {
    const tok = tokenizeLine(lines[n]);
    if (!tok) {
      continue;
    }
    const where = `${file}:${n + 1}`;
    const { keyword, args } = tok;
    if (keyword === 'host') {
      active = hostPatternsMatch(ctx.alias, args);
      continue;
    }
    if (keyword === 'match') {
      active = evalMatch(ctx, args, where);
      continue;
    }
    if (keyword === 'include') {
      if (!active) {
        continue;
      }
      if (depth >= MAX_INCLUDE_DEPTH) {
        ctx.warnings.push(`${where}: Include nested too deeply; ignored.`);
        continue;
      }
      for (const arg of args) {
        let p: string;
        try {
          p = expandTilde(arg, ctx.homeDir);
        } catch (err) {
          ctx.warnings.push(`${where}: Include ${arg}: ${(err as Error).message}; ignored.`);
          continue;
        }
        if (!path.isAbsolute(p)) {
          p = path.join(ctx.homeDir, '.ssh', p);
        }
        for (const f of expandGlob(p, ctx.cfs)) {
          const t = ctx.cfs.readFile(f);
          if (t !== undefined) {
            // An included file's Host/Match lines change the state only within it.
            readConfigText(ctx, t, f, depth + 1, active);
          }
        }
      }
      continue;
    }
    if (active) {
      applyKeyword(ctx, keyword, args, tok.rest, where);
    }
  }
}

/* ----------------------------------------------------------------------------------
 * Jump chains
 * -------------------------------------------------------------------------------- */

const MAX_JUMP_DEPTH = 8;

/**
 * The hops to reach `alias`, first to last; the last one is the target itself.
 * `jumpHosts` (like `ssh -J`) replaces the target's own ProxyJump. As in OpenSSH,
 * the FIRST jump host of a chain is itself resolved with its own ProxyJump (so
 * `node1 -> ProxyJump login`, `login -> ProxyJump bastion` gives bastion, login,
 * node1), while later entries of one chain are reached through the earlier ones.
 */
export function resolveChain(
  alias: string,
  options: IResolveOptions = {},
  overrides: { user?: string; port?: number; jumpHosts?: string[] } = {}
): IResolvedHost[] {
  const target = resolveHost(alias, options, { user: overrides.user, port: overrides.port });
  const specs =
    overrides.jumpHosts && overrides.jumpHosts.length
      ? overrides.jumpHosts.flatMap(j => parseProxyJump(j))
      : parseProxyJump(target.proxyJump);
  return [...chainFor(specs, options, 1, [alias]), target];
}

function chainFor(specs: IJumpSpec[], options: IResolveOptions, depth: number, seen: string[]): IResolvedHost[] {
  if (specs.length === 0) {
    return [];
  }
  const resolved = specs.map(s => resolveHost(s.host, options, { user: s.user, port: s.port }));
  const first = resolved[0];
  if (seen.includes(first.alias) || depth > MAX_JUMP_DEPTH) {
    throw new Error(
      `its ProxyJump chain loops (${[...seen, first.alias].join(' -> ')}); ` +
        'give the first jump host "ProxyJump none" in ssh_config'
    );
  }
  const before = chainFor(parseProxyJump(first.proxyJump), options, depth + 1, [...seen, first.alias]);
  return [...before, ...resolved];
}

/* ----------------------------------------------------------------------------------
 * Listing the hosts a user wrote (profile from an ssh_config host)
 * -------------------------------------------------------------------------------- */

export type { IConfiguredHost };

/**
 * The concrete `Host` aliases of the configuration (no `*`/`?`/`[` patterns, no `!`
 * negations), in file order, each resolved as ssh(1) would. Every Include is followed,
 * including those inside Host/Match blocks: an alias there is still one the user can type.
 */
export function listConfiguredHosts(options: IResolveOptions = {}): IConfiguredHost[] {
  const homeDir = options.homeDir ?? os.homedir();
  const cfs = options.fs ?? nodeConfigFs;
  const configFile = options.configFile
    ? expandTilde(options.configFile, homeDir)
    : path.join(homeDir, '.ssh', 'config');
  const found = new Map<string, string>();
  const read = (file: string, depth: number): void => {
    const text = cfs.readFile(file);
    if (text === undefined || depth > MAX_INCLUDE_DEPTH) {
      return;
    }
    for (const line of text.split(/\r?\n/)) {
      const tok = tokenizeLine(line);
      if (tok?.keyword === 'host') {
        for (const a of tok.args) {
          if (!hasGlob(a) && !a.startsWith('!') && !found.has(a)) {
            found.set(a, file);
          }
        }
      } else if (tok?.keyword === 'include') {
        for (const arg of tok.args) {
          let p: string;
          try {
            p = expandTilde(arg, homeDir);
          } catch {
            continue; // ~otheruser: resolveHost reports it for the aliases it affects
          }
          for (const f of expandGlob(path.isAbsolute(p) ? p : path.join(homeDir, '.ssh', p), cfs)) {
            read(f, depth + 1);
          }
        }
      }
    }
  };
  read(configFile, 0);
  return [...found].map(([alias, file]) => {
    const h = resolveHost(alias, options);
    const jump = h.proxyJump && h.proxyJump.toLowerCase() !== 'none' ? h.proxyJump : undefined;
    return {
      alias,
      hostName: h.hostName,
      user: h.user,
      port: h.port,
      ...(jump ? { proxyJump: jump } : {}),
      file,
      warnings: h.warnings
    };
  });
}
