/**
 * What the keywords of an OpenSSH client configuration do (ssh_config(5)): `Match`
 * criteria and each keyword's value, collected into the raw host that the resolver
 * (ssh-config.ts) finishes. The first obtained value of each keyword wins.
 */
import type { IResolvedHost, ISshConfigFs } from './ssh-config';
import { parseProxyJump, patternListMatches } from './ssh-config-syntax';

/** Values as collected from the file: all optional until defaults are applied. */
export type IRaw = Partial<Omit<IResolvedHost, 'alias' | 'identityFiles' | 'certificateFiles' | 'warnings'>> & {
  identityFiles: string[];
  certificateFiles: string[];
};

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

export interface IContext {
  alias: string;
  overrides: { user?: string; port?: number };
  localUser: string;
  homeDir: string;
  cfs: ISshConfigFs;
  raw: IRaw;
  warnings: string[];
  expandHostName: (v: string) => string;
}

export function evalMatch(ctx: IContext, args: string[], where: string): boolean {
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

export function applyKeyword(ctx: IContext, keyword: string, args: string[], rest: string, where: string): void {
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
