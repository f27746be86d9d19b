/**
 * The syntax of an OpenSSH client configuration (ssh_config(5)), apart from what it
 * means: splitting a line into keyword and arguments, host patterns and globs, the
 * expansion of `~`, `${VAR}` and `%` tokens, and ProxyJump values. ssh-config.ts
 * resolves a host with these.
 */
import * as os from 'node:os';
import * as path from 'node:path';

import { wildcardMatch } from './known-hosts';
import type { ISshConfigFs } from './ssh-config';

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
export function patternListMatches(name: string, list: string, ignoreCase: boolean): boolean {
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

export const hasGlob = (s: string): boolean => /[*?[]/.test(s);

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
