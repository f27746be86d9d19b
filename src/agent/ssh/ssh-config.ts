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
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import type { IConfiguredHost } from '../../common/api';
import { wildcardMatch } from './known-hosts';

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

export interface IJumpSpec {
  host: string;
  user?: string;
  port?: number;
}

/* ----------------------------------------------------------------------------------
 * Tokenizing
 * -------------------------------------------------------------------------------- */

/** Splits a config line into keyword and arguments (quotes, `=`, trailing comments). */
export function tokenizeLine(line: string): { keyword: string; args: string[]; rest: string } | null {
  const s = line.replace(/^\s+/, '');
  if (!s || s.startsWith('#')) {
    return null;
  }
  const m = /^([^\s=]+)\s*(?:=\s*|\s+|$)/.exec(s);
  if (!m) {
    return null;
  }
  const keyword = m[1].toLowerCase();
  const rest = s.slice(m[0].length).replace(/\s+$/, '');
  const args: string[] = [];
  let i = 0;
  while (i < rest.length) {
    while (i < rest.length && /\s/.test(rest[i])) {
      i++;
    }
    if (i >= rest.length) {
      break;
    }
    if (rest[i] === '#') {
      break;
    }
    let arg = '';
    if (rest[i] === '"') {
      i++;
      while (i < rest.length && rest[i] !== '"') {
        arg += rest[i++];
      }
      i++; // closing quote
    } else {
      while (i < rest.length && !/\s/.test(rest[i])) {
        if (rest[i] === '"') {
          i++;
          while (i < rest.length && rest[i] !== '"') {
            arg += rest[i++];
          }
          i++;
        } else {
          arg += rest[i++];
        }
      }
    }
    args.push(arg);
  }
  return { keyword, args, rest };
}

/* ----------------------------------------------------------------------------------
 * Patterns
 * -------------------------------------------------------------------------------- */

/**
 * `Host` line semantics: some positive pattern matches and no negated one does. Case
 * counts, as in OpenSSH's Host lines (`ignoreCase`: as its `Match host`).
 */
export function hostPatternsMatch(name: string, patterns: string[], ignoreCase = false): boolean {
  const lname = ignoreCase ? name.toLowerCase() : name;
  let positive = false;
  for (const raw of patterns) {
    const negated = raw.startsWith('!');
    const pat = negated ? raw.slice(1) : raw;
    if (wildcardMatch(lname, ignoreCase ? pat.toLowerCase() : pat)) {
      if (negated) {
        return false;
      }
      positive = true;
    }
  }
  return positive;
}

/** A comma-separated pattern list (Match arguments), same semantics. */
function patternListMatches(name: string, list: string, ignoreCase: boolean): boolean {
  return hostPatternsMatch(name, list.split(',').filter(Boolean), ignoreCase);
}

/** glob(7) for one path segment: `*`, `?`, `[...]`. */
function globSegmentRegExp(segment: string): RegExp {
  let re = '';
  for (let i = 0; i < segment.length; i++) {
    const c = segment[i];
    if (c === '*') {
      re += '[^/]*';
    } else if (c === '?') {
      re += '[^/]';
    } else if (c === '[') {
      const end = segment.indexOf(']', i + 2);
      if (end < 0) {
        re += '\\[';
        continue;
      }
      let cls = segment.slice(i + 1, end);
      const neg = cls.startsWith('!') || cls.startsWith('^');
      if (neg) {
        cls = cls.slice(1);
      }
      re += '[' + (neg ? '^' : '') + cls.replace(/[\\\]]/g, '\\$&') + ']';
      i = end;
    } else {
      re += c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
    }
  }
  return new RegExp('^' + re + '$');
}

const hasGlob = (s: string): boolean => /[*?[]/.test(s);

/** Expands a glob pattern on an absolute path into existing files, sorted. */
export function expandGlob(pattern: string, cfs: ISshConfigFs): string[] {
  if (!hasGlob(pattern)) {
    return [pattern];
  }
  const parts = pattern.split('/');
  let bases = [parts[0] === '' ? '/' : parts[0]];
  for (let i = 1; i < parts.length; i++) {
    const seg = parts[i];
    if (!seg) {
      continue;
    }
    const next: string[] = [];
    for (const base of bases) {
      if (!hasGlob(seg)) {
        next.push(path.join(base, seg));
        continue;
      }
      const re = globSegmentRegExp(seg);
      const names = (cfs.readdir(base) ?? []).filter(n => re.test(n) && (seg.startsWith('.') || !n.startsWith('.')));
      names.sort();
      for (const n of names) {
        next.push(path.join(base, n));
      }
    }
    bases = next;
  }
  return bases;
}

/* ----------------------------------------------------------------------------------
 * Expansion of ~, ${VAR} and % tokens
 * -------------------------------------------------------------------------------- */

export function expandTilde(p: string, homeDir: string): string {
  if (p === '~') {
    return homeDir;
  }
  if (p.startsWith('~/')) {
    return path.join(homeDir, p.slice(2));
  }
  if (p.startsWith('~')) {
    // ~user/...: only the local user's own home is known here.
    const slash = p.indexOf('/');
    const name = p.slice(1, slash < 0 ? undefined : slash);
    let home: string | undefined;
    try {
      home = name === os.userInfo().username ? os.userInfo().homedir : undefined;
    } catch {
      home = undefined;
    }
    if (home === undefined) {
      throw new Error(`cannot expand ~${name}: unknown user`);
    }
    return slash < 0 ? home : path.join(home, p.slice(slash + 1));
  }
  return p;
}

export function expandEnv(p: string, env: Record<string, string | undefined>): string {
  return p.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_m, name: string) => {
    const v = env[name];
    if (v === undefined) {
      throw new Error(`environment variable \${${name}} is not set`);
    }
    return v;
  });
}

/** Replaces `%x` tokens; an unknown token is an error (as in OpenSSH). */
export function percentExpand(s: string, tokens: Record<string, string>): string {
  let out = '';
  for (let i = 0; i < s.length; i++) {
    if (s[i] !== '%') {
      out += s[i];
      continue;
    }
    const t = s[++i];
    if (t === '%') {
      out += '%';
    } else if (t !== undefined && Object.prototype.hasOwnProperty.call(tokens, t)) {
      out += tokens[t];
    } else {
      throw new Error(t === undefined ? 'a lone % at the end' : `unknown token %${t}`);
    }
  }
  return out;
}

/* ----------------------------------------------------------------------------------
 * ProxyJump values
 * -------------------------------------------------------------------------------- */

/** `[user@]host[:port]`, `[user@][v6addr]:port` or `ssh://[user@]host[:port]`. */
export function parseJumpSpec(spec: string): IJumpSpec {
  let s = spec.trim();
  if (!s) {
    throw new Error('empty jump host');
  }
  if (s.startsWith('ssh://')) {
    s = s.slice('ssh://'.length).replace(/\/$/, '');
  }
  let user: string | undefined;
  const at = s.lastIndexOf('@');
  if (at >= 0) {
    user = s.slice(0, at);
    s = s.slice(at + 1);
    if (!user) {
      throw new Error(`bad jump host ${JSON.stringify(spec)}: empty user name`);
    }
  }
  let host = s;
  let port: number | undefined;
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(s);
  if (v6) {
    host = v6[1];
    port = v6[2] !== undefined ? Number(v6[2]) : undefined;
  } else {
    const colon = s.lastIndexOf(':');
    if (colon >= 0 && s.indexOf(':') === colon) {
      host = s.slice(0, colon);
      const p = s.slice(colon + 1);
      if (!/^\d+$/.test(p)) {
        throw new Error(`bad jump host ${JSON.stringify(spec)}: bad port`);
      }
      port = Number(p);
    }
  }
  if (!host || /[\s/]/.test(host)) {
    throw new Error(`bad jump host ${JSON.stringify(spec)}`);
  }
  if (port !== undefined && (port < 1 || port > 65535)) {
    throw new Error(`bad jump host ${JSON.stringify(spec)}: port out of range`);
  }
  return { host, user, port };
}

/** A ProxyJump value as a list of hops (`none` and empty give []). */
export function parseProxyJump(value: string | undefined): IJumpSpec[] {
  if (value === undefined || value.trim().toLowerCase() === 'none' || !value.trim()) {
    return [];
  }
  return value.split(',').map(parseJumpSpec);
}

/* ----------------------------------------------------------------------------------
 * Resolution
 * -------------------------------------------------------------------------------- */

/** Values as collected from the file: all optional until defaults are applied. */
type IRaw = Partial<Omit<IResolvedHost, 'alias' | 'identityFiles' | 'certificateFiles' | 'warnings'>> & {
  identityFiles: string[];
  certificateFiles: string[];
};

const MAX_INCLUDE_DEPTH = 16;

function yesNo(v: string | undefined): boolean | undefined {
  if (v === undefined) {
    return undefined;
  }
  const l = v.toLowerCase();
  if (l === 'yes' || l === 'true') {
    return true;
  }
  if (l === 'no' || l === 'false') {
    return false;
  }
  return undefined;
}

function intArg(v: string | undefined, min: number, max: number): number | undefined {
  if (v === undefined || !/^\d+$/.test(v)) {
    return undefined;
  }
  const n = Number(v);
  return n >= min && n <= max ? n : undefined;
}

interface IContext {
  alias: string;
  overrides: { user?: string; port?: number };
  localUser: string;
  homeDir: string;
  cfs: ISshConfigFs;
  raw: IRaw;
  warnings: string[];
  expandHostName: (v: string) => string;
}

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

function evalMatch(ctx: IContext, args: string[], where: string): boolean {
  if (args.length === 0) {
    ctx.warnings.push(`${where}: Match without criteria; block ignored.`);
    return false;
  }
  const hostName = ctx.raw.hostName !== undefined ? ctx.expandHostName(ctx.raw.hostName) : ctx.alias.toLowerCase();
  const remoteUser = ctx.overrides.user ?? ctx.raw.user ?? ctx.localUser;
  let result = true;
  let sawExec = false;
  let unsupported: string | undefined;
  for (let i = 0; i < args.length; i++) {
    let crit = args[i].toLowerCase();
    const negated = crit.startsWith('!');
    if (negated) {
      crit = crit.slice(1);
    }
    let r: boolean;
    if (crit === 'all') {
      r = true;
    } else if (crit === 'canonical') {
      r = false; // we never canonicalize host names
      ctx.warnings.push(`${where}: Match canonical never matches here (CanonicalizeHostname is not supported).`);
    } else if (crit === 'final') {
      r = true; // one pass only: treat it as the final one
    } else {
      const arg = args[i + 1];
      if (arg === undefined) {
        ctx.warnings.push(`${where}: Match ${crit} without an argument; block ignored.`);
        return false;
      }
      i++;
      switch (crit) {
        case 'host':
          r = patternListMatches(hostName, arg, true);
          break;
        case 'originalhost':
          r = patternListMatches(ctx.alias, arg, true);
          break;
        case 'user':
          r = patternListMatches(remoteUser, arg, false);
          break;
        case 'localuser':
          r = patternListMatches(ctx.localUser, arg, false);
          break;
        case 'exec':
          sawExec = true;
          r = true;
          break;
        default:
          unsupported = crit;
          r = false;
      }
    }
    if (negated) {
      r = !r;
    }
    result = result && r;
  }
  if (unsupported !== undefined) {
    ctx.warnings.push(`${where}: Match ${unsupported} is not supported; block ignored.`);
    return false;
  }
  if (sawExec) {
    if (result) {
      ctx.warnings.push(
        `${where}: "Match exec" is never run by jupyterlab-remote-cluster; the settings of this Match block are ignored.`
      );
    }
    return false;
  }
  return result;
}

function applyKeyword(ctx: IContext, keyword: string, args: string[], rest: string, where: string): void {
  const raw = ctx.raw;
  const a0 = args[0];
  const bad = (): void => {
    ctx.warnings.push(`${where}: bad value for ${keyword}: ${JSON.stringify(rest)}; ignored.`);
  };
  switch (keyword) {
    case 'canonicalizehostname':
      if (a0 && a0.toLowerCase() !== 'no') {
        ctx.warnings.push(
          `${where}: CanonicalizeHostname ${a0} is not supported by jupyterlab-remote-cluster: host names are used as written.`
        );
      }
      break;
    case 'hostname':
      if (raw.hostName === undefined && a0) {
        raw.hostName = a0;
      }
      break;
    case 'user':
      if (raw.user === undefined && a0) {
        raw.user = a0;
      }
      break;
    case 'port': {
      const p = intArg(a0, 1, 65535);
      if (p === undefined) {
        bad();
      } else if (raw.port === undefined) {
        raw.port = p;
      }
      break;
    }
    case 'identityfile':
      if (a0 !== undefined && !raw.identityFiles.includes(a0)) {
        raw.identityFiles.push(a0);
      }
      break;
    case 'certificatefile':
      // Accumulates like IdentityFile (ssh_config(5)).
      if (a0 !== undefined && !raw.certificateFiles.includes(a0)) {
        raw.certificateFiles.push(a0);
      }
      break;
    case 'identitiesonly': {
      const v = yesNo(a0);
      if (v === undefined) {
        bad();
      } else if (raw.identitiesOnly === undefined) {
        raw.identitiesOnly = v;
      }
      break;
    }
    case 'identityagent':
      if (raw.identityAgent === undefined && a0) {
        raw.identityAgent = a0;
      }
      break;
    case 'proxyjump':
      // ProxyJump and ProxyCommand compete: whichever comes first wins.
      if (raw.proxyJump === undefined && raw.proxyCommand === undefined && a0) {
        if (a0.toLowerCase() !== 'none') {
          try {
            parseProxyJump(a0);
          } catch (err) {
            ctx.warnings.push(`${where}: ProxyJump ${a0}: ${(err as Error).message}; ignored.`);
            break;
          }
        }
        raw.proxyJump = a0;
      }
      break;
    case 'proxycommand':
      if (raw.proxyJump === undefined && raw.proxyCommand === undefined && rest) {
        raw.proxyCommand = rest;
      }
      break;
    case 'userknownhostsfile':
      if (raw.userKnownHostsFiles === undefined && args.length) {
        raw.userKnownHostsFiles = [...args];
      }
      break;
    case 'globalknownhostsfile':
      if (raw.globalKnownHostsFiles === undefined && args.length) {
        raw.globalKnownHostsFiles = [...args];
      }
      break;
    case 'stricthostkeychecking':
      if (raw.strictHostKeyChecking === undefined && a0) {
        raw.strictHostKeyChecking = a0.toLowerCase();
      }
      break;
    case 'hashknownhosts': {
      const v = yesNo(a0);
      if (v !== undefined && raw.hashKnownHosts === undefined) {
        raw.hashKnownHosts = v;
      }
      break;
    }
    case 'hostkeyalias':
      if (raw.hostKeyAlias === undefined && a0) {
        raw.hostKeyAlias = a0;
      }
      break;
    case 'serveraliveinterval': {
      const v = intArg(a0, 0, 86400);
      if (v === undefined) {
        bad();
      } else if (raw.serverAliveInterval === undefined) {
        raw.serverAliveInterval = v;
      }
      break;
    }
    case 'serveralivecountmax': {
      const v = intArg(a0, 0, 1000);
      if (v === undefined) {
        bad();
      } else if (raw.serverAliveCountMax === undefined) {
        raw.serverAliveCountMax = v;
      }
      break;
    }
    case 'connecttimeout': {
      const v = a0?.toLowerCase() === 'none' ? 0 : intArg(a0, 0, 86400);
      if (v === undefined) {
        bad();
      } else if (raw.connectTimeout === undefined) {
        raw.connectTimeout = v;
      }
      break;
    }
    case 'numberofpasswordprompts': {
      const v = intArg(a0, 0, 100);
      if (v === undefined) {
        bad();
      } else if (raw.numberOfPasswordPrompts === undefined) {
        raw.numberOfPasswordPrompts = v;
      }
      break;
    }
    case 'preferredauthentications':
      if (raw.preferredAuthentications === undefined && a0) {
        raw.preferredAuthentications = a0.split(',').filter(Boolean);
      }
      break;
    case 'pubkeyauthentication': {
      const v = yesNo(a0);
      if (v !== undefined && raw.pubkeyAuthentication === undefined) {
        raw.pubkeyAuthentication = v;
      }
      break;
    }
    case 'kbdinteractiveauthentication':
    case 'challengeresponseauthentication': {
      const v = yesNo(a0);
      if (v !== undefined && raw.kbdInteractiveAuthentication === undefined) {
        raw.kbdInteractiveAuthentication = v;
      }
      break;
    }
    case 'passwordauthentication': {
      const v = yesNo(a0);
      if (v !== undefined && raw.passwordAuthentication === undefined) {
        raw.passwordAuthentication = v;
      }
      break;
    }
    default:
      // Unknown or irrelevant keywords are ignored.
      break;
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
