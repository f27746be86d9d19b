/**
 * Logging in on a hop (ssh/README.md, "Authentication order", "A login that needs a
 * person is never tried without one"): ssh2's authHandler walks the methods the server
 * accepts in PreferredAuthentications order (ssh-agent, identity files with passphrase
 * prompts, keyboard-interactive, password). Answers go to ssh2 only: never logged, stored
 * or put in argv. It sees the hop and an IAuthContext, not the whole connection.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';

import {
  OpenSSHAgent,
  utils as sshUtils,
  type AnyAuthMethod,
  type AuthenticationType,
  type KnownPublicKeys,
  type ParsedKey,
  type Prompt as Ssh2Prompt
} from 'ssh2';

import type { IHop, IHopContext } from './hop';
import { agentCertificateBlob, agentIdentities, agentSignWithCertificate, certificateFor } from './user-certificates';
import type { SignInGuard } from './sign-in-guard';
import type { IResolvedHost } from './ssh-config';
import { expandTilde } from './ssh-config-syntax';

const DEFAULT_PROMPT_TRIES = 3;

/** What logging in needs of its ClusterConnection (read when used). */
export interface IAuthContext extends IHopContext {
  /** The local home directory (`~`, the default identity files). */
  readonly homeDir: string;
  /** The profile's own identity files (ISshTarget.identityFiles). */
  readonly targetIdentityFiles: string[] | undefined;
  /** The profile's own certificate files (ISshTarget.certificateFiles). */
  readonly targetCertificateFiles: string[] | undefined;
  /** Caps failed one-time codes and passwords per account. */
  readonly signInGuard: SignInGuard | undefined;
  /** Keys unlocked with a passphrase during the current connect() (see ClusterConnection). */
  readonly unlockedKeys: Map<string, ParsedKey>;
}

/**
 * ssh-agent limited to some keys (IdentitiesOnly), remembering what it offered. It lists
 * the agent's keys itself so that certificates are kept (user-certificates.ts); a
 * certificate that expired is left out with a warning naming it.
 */
class RecordingAgent extends OpenSSHAgent {
  readonly offered: Buffer[] = [];
  /** With IdentitiesOnly: the public keys it may offer (filled before first use). */
  constructor(
    private readonly socket: string,
    readonly allowed: Buffer[] | undefined,
    private readonly log: IHopContext['log'],
    private readonly notes: string[]
  ) {
    super(socket);
  }
  getIdentities(cb: (err?: Error | null, keys?: KnownPublicKeys<ParsedKey>) => void): void {
    agentIdentities(this.socket).then(
      ids => {
        const list: ParsedKey[] = [];
        for (const id of ids) {
          if (this.allowed && !this.allowed.some(a => a.equals(id.publicKey))) {
            continue;
          }
          if (id.problem) {
            const note = `the ssh-agent's certificate "${id.comment}": ${id.problem}, not offered`;
            this.log.warn(`ssh: ${note}`);
            this.notes.push(note);
            continue;
          }
          this.offered.push(id.publicKey);
          list.push(id.key);
        }
        cb(undefined, list);
      },
      (err: Error) => cb(err)
    );
  }
  sign(pubKey: ParsedKey | Buffer | string, data: Buffer, options?: unknown, cb?: unknown): boolean {
    const done = (typeof options === 'function' ? options : cb) as (err?: Error | null, sig?: Buffer) => void;
    const cert = agentCertificateBlob(pubKey);
    if (!cert) {
      return super.sign(pubKey, data, (typeof options === 'object' ? options : {}) as object, done);
    }
    agentSignWithCertificate(this.socket, cert, data).then(
      sig => done(undefined, sig),
      (err: Error) => done(err)
    );
    return true;
  }
}

type AuthCandidate =
  | { kind: 'agent'; agent: RecordingAgent }
  | { kind: 'key'; file: string; explicit: boolean }
  | { kind: 'loaded'; file: string; key: ParsedKey }
  | { kind: 'keyboard-interactive' }
  | { kind: 'password' };

const METHOD_OF: Record<AuthCandidate['kind'], AuthenticationType> = {
  agent: 'publickey',
  key: 'publickey',
  loaded: 'publickey',
  'keyboard-interactive': 'keyboard-interactive',
  password: 'password'
};

/** Identity files to offer on a hop (target's own first on the target hop). */
function identityFilesFor(
  ctx: IAuthContext,
  cfg: IResolvedHost,
  isTarget: boolean
): { file: string; explicit: boolean }[] {
  const fromTarget = (ctx.targetIdentityFiles ?? []).map(f => expandTilde(f, ctx.homeDir));
  const list = isTarget ? [...fromTarget, ...cfg.identityFiles] : [...cfg.identityFiles, ...fromTarget];
  const unique = [...new Set(list)];
  if (unique.length > 0) {
    return unique.map(file => ({ file, explicit: true }));
  }
  return ['id_ed25519', 'id_ecdsa', 'id_rsa'].map(n => ({
    file: path.join(ctx.homeDir, '.ssh', n),
    explicit: false
  }));
}

/**
 * Before anything a person must answer is started with the server: is someone there
 * to answer, and may this account be tried again? A refusal (false) ends the login
 * with `sign-in-needed` or `sign-in-paused`; undefined: go ahead.
 */
function interactiveRefusal(ctx: IAuthContext, hop: IHop, account: string, what: string): string | undefined {
  if (!ctx.canAsk()) {
    hop.personNeeded = true;
    hop.failure =
      hop.failure ?? `${account} asks for ${what}, and no JupyterLab is open to ask you: sign in from JupyterLab.`;
    hop.failureCode = hop.failureCode ?? 'sign-in-needed';
    return hop.failure;
  }
  const blocked = ctx.signInGuard?.blocked(account);
  if (blocked) {
    hop.failure = hop.failure ?? blocked;
    hop.failureCode = hop.failureCode ?? 'sign-in-paused';
    return blocked;
  }
  return undefined;
}

/**
 * ssh2's authHandler for a hop: `none` first (the server answers with the methods it
 * accepts), then one candidate after another; `false` when none is left, with the reason
 * in `hop.failure`/`failureCode`.
 */
export function makeAuthHandler(
  ctx: IAuthContext,
  hop: IHop,
  isTarget: boolean,
  agentSock: string | undefined | null
): (methodsLeft: AuthenticationType[], partial: boolean, next: (m: AnyAuthMethod | false) => void) => void {
  const cfg = hop.cfg;
  const username = cfg.user;
  const maxTries = cfg.numberOfPasswordPrompts ?? DEFAULT_PROMPT_TRIES;
  const idFiles = identityFilesFor(ctx, cfg, isTarget);
  const fromTargetCerts = (ctx.targetCertificateFiles ?? []).map(f => expandTilde(f, ctx.homeDir));
  const certificateFiles = isTarget
    ? [...fromTargetCerts, ...cfg.certificateFiles]
    : [...cfg.certificateFiles, ...fromTargetCerts];
  const tried: string[] = [];
  let kbdTries = 0;
  let pwTries = 0;
  let started = false;
  let cancelled = false;
  /** A one-time code or password was sent: the next call of the handler says whether it failed. */
  let interactiveSent = false;
  const account = `${username}@${cfg.hostName}${cfg.port === 22 ? '' : `:${cfg.port}`}`;

  // Candidates grouped by method, in PreferredAuthentications order.
  const groups: Record<string, () => AuthCandidate[]> = {
    publickey: () => {
      if (cfg.pubkeyAuthentication === false) {
        return [];
      }
      const out: AuthCandidate[] = [];
      const agentPath = cfg.identityAgent !== undefined ? cfg.identityAgent : agentSock;
      if (agentPath && agentPath !== 'none') {
        out.push({
          kind: 'agent',
          agent: new RecordingAgent(agentPath, cfg.identitiesOnly ? [] : undefined, ctx.log, tried)
        });
      }
      out.push(...idFiles.map(f => ({ kind: 'key' as const, ...f })));
      return out;
    },
    'keyboard-interactive': () =>
      cfg.kbdInteractiveAuthentication === false ? [] : [{ kind: 'keyboard-interactive' }],
    password: () => (cfg.passwordAuthentication === false ? [] : [{ kind: 'password' }])
  };
  const order = (cfg.preferredAuthentications ?? ['publickey', 'keyboard-interactive', 'password']).filter(
    m => m in groups
  );
  const candidates: AuthCandidate[] = [...new Set(order)].flatMap(m => groups[m]());
  let idx = 0;

  const agentCandidate = candidates.find(c => c.kind === 'agent') as
    { kind: 'agent'; agent: RecordingAgent } | undefined;
  const allowedAgentKeysReady: Promise<void> = (async () => {
    if (agentCandidate && cfg.identitiesOnly) {
      // IdentitiesOnly: the agent may only offer the keys of the identity files.
      for (const f of idFiles) {
        const pub = await readPublicKey(f.file);
        if (pub) {
          agentCandidate.agent.allowed?.push(pub);
        }
      }
    }
  })();

  const abort = (message: string, code: string): false => {
    hop.failure = hop.failure ?? message;
    hop.failureCode = hop.failureCode ?? code;
    return false;
  };

  const pickNext = async (methodsLeft: AuthenticationType[]): Promise<AnyAuthMethod | false> => {
    await allowedAgentKeysReady;
    if (cancelled) {
      return abort(`Login to ${username}@${hop.label} was cancelled.`, 'auth-cancelled');
    }
    while (idx < candidates.length) {
      const c = candidates[idx];
      if (!methodsLeft.includes(METHOD_OF[c.kind])) {
        idx++;
        continue;
      }
      switch (c.kind) {
        case 'agent':
          idx++;
          tried.push('ssh-agent keys');
          return { type: 'agent', username, agent: c.agent };
        case 'key': {
          idx++;
          const key = await loadKey(ctx, hop, c.file, c.explicit, agentCandidate?.agent.offered ?? []);
          if (key === 'cancel') {
            continue;
          }
          if (!key) {
            continue;
          }
          // As ssh(1): the key's certificate first, then the key itself.
          const withCert = await certificateFor(key, c.file, certificateFiles);
          if (withCert && 'problem' in withCert) {
            const note = `certificate ${withCert.file}: ${withCert.problem}, not offered`;
            ctx.log.warn(`ssh: ${note}; trying the next key`);
            tried.push(note);
          } else if (withCert) {
            candidates.splice(idx, 0, { kind: 'loaded', file: c.file, key });
            tried.push(`certificate ${withCert.file}`);
            return { type: 'publickey', username, key: withCert.key };
          }
          tried.push(`key ${c.file}`);
          return { type: 'publickey', username, key };
        }
        case 'loaded':
          idx++;
          tried.push(`key ${c.file}`);
          return { type: 'publickey', username, key: c.key };
        case 'keyboard-interactive': {
          if (kbdTries >= maxTries) {
            idx++;
            continue;
          }
          if (interactiveRefusal(ctx, hop, account, 'a one-time code or password')) {
            return false;
          }
          kbdTries++;
          if (kbdTries === 1) {
            tried.push('keyboard-interactive');
          }
          return {
            type: 'keyboard-interactive',
            username,
            prompt: (
              name: string,
              instructions: string,
              _lang: string,
              prompts: Ssh2Prompt[],
              finish: (answers: string[]) => void
            ) => {
              if (prompts.length === 0) {
                finish([]); // an information message only: nothing to answer
                return;
              }
              hop.timer?.pause();
              void ctx
                .ask(hop, {
                  kind: 'keyboard-interactive',
                  host: hop.label,
                  title: name || `Login to ${username}@${hop.label}`,
                  instructions:
                    (instructions || '') +
                      (kbdTries > 1 ? `${instructions ? ' ' : ''}(attempt ${kbdTries} of ${maxTries})` : '') ||
                    undefined,
                  questions: prompts.map(p => ({ text: p.prompt, echo: p.echo === true }))
                })
                .then(answer => {
                  hop.timer?.resume();
                  const answers = answer.cancel ? undefined : answer.answers;
                  if (!answers || !completeAnswers(prompts, answers)) {
                    // Never send empty or partial answers: the server would count a failed
                    // attempt (and lockouts count those). Leave before answering instead.
                    cancelled = true;
                    abort(
                      hop.personNeeded
                        ? `${account} asks for a one-time code or password, and no JupyterLab is open to ask you: sign in from JupyterLab.`
                        : `Login to ${username}@${hop.label} was cancelled.`,
                      hop.personNeeded ? 'sign-in-needed' : 'auth-cancelled'
                    );
                    hop.client.end();
                    return;
                  }
                  interactiveSent = true;
                  finish(prompts.map((_p, i) => answers[i]));
                });
            }
          };
        }
        case 'password': {
          if (pwTries >= maxTries) {
            idx++;
            continue;
          }
          if (interactiveRefusal(ctx, hop, account, 'a password')) {
            return false;
          }
          pwTries++;
          if (pwTries === 1) {
            tried.push('password');
          }
          hop.timer?.pause();
          const answer = await ctx.ask(hop, {
            kind: 'password',
            host: hop.label,
            title: `Password for ${username}@${hop.label}`,
            instructions: pwTries > 1 ? `Wrong password; try again (attempt ${pwTries} of ${maxTries}).` : undefined,
            questions: [{ text: `Password for ${username}@${hop.label}:`, echo: false }]
          });
          hop.timer?.resume();
          if (answer.cancel || !answer.answers || !answer.answers[0]) {
            return hop.personNeeded
              ? abort(
                  `${account} asks for a password, and no JupyterLab is open to ask you: sign in from JupyterLab.`,
                  'sign-in-needed'
                )
              : abort(`Login to ${username}@${hop.label} was cancelled.`, 'auth-cancelled');
          }
          interactiveSent = true;
          return { type: 'password', username, password: answer.answers[0] };
        }
      }
    }
    if (hop.personNeeded) {
      // e.g. an encrypted key whose passphrase nobody could be asked for
      return abort(
        `Logging in to ${username}@${hop.label} needs you (a passphrase): sign in from JupyterLab.`,
        'sign-in-needed'
      );
    }
    return abort(
      `Authentication failed for ${username}@${hop.label}: the server accepts ${methodsLeft.join(', ') || 'nothing'}` +
        `; tried ${tried.join(', ') || 'nothing it accepts'}.`,
      'auth-failed'
    );
  };

  return (methodsLeft, partial, next) => {
    if (interactiveSent) {
      // Called again after a code or password was sent: refused (unless it was one step
      // of several, which the server reports as a partial success).
      interactiveSent = false;
      if (!partial) {
        ctx.signInGuard?.failed(account);
      }
    }
    if (!started || methodsLeft === null) {
      started = true;
      if (methodsLeft === null) {
        // Ask with "none" first: the server answers with the methods it accepts.
        next({ type: 'none', username });
        return;
      }
    }
    pickNext(methodsLeft ?? []).then(next, (err: Error) => {
      next(abort(`Authentication on ${hop.label} failed: ${err.message}`, 'auth-failed'));
    });
  };
}

/**
 * Reads a private key; prompts for the passphrase of an encrypted one. Returns
 * undefined to skip the key (missing, unusable, offered by the agent already).
 */
async function loadKey(
  ctx: IAuthContext,
  hop: IHop,
  file: string,
  explicit: boolean,
  agentOffered: Buffer[]
): Promise<ParsedKey | undefined | 'cancel'> {
  let data: Buffer;
  try {
    data = await fsp.readFile(file);
  } catch (err) {
    if (explicit) {
      ctx.log.warn(
        `ssh: identity file ${file} for ${hop.label} cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`
      );
    }
    return undefined;
  }
  if (agentOffered.length) {
    const pub = await readPublicKey(file);
    if (pub && agentOffered.some(b => b.equals(pub))) {
      return undefined; // the agent has offered this key already
    }
  }
  let parsed = firstKey(sshUtils.parseKey(data));
  const unlocked = ctx.unlockedKeys.get(file);
  if (parsed instanceof Error && unlocked) {
    return unlocked; // an earlier hop of this connect() asked for its passphrase
  }
  if (parsed instanceof Error && /no passphrase given/i.test(parsed.message)) {
    const tries = hop.cfg.numberOfPasswordPrompts ?? DEFAULT_PROMPT_TRIES;
    for (let i = 1; i <= tries; i++) {
      hop.timer?.pause();
      const answer = await ctx.ask(hop, {
        kind: 'passphrase',
        host: hop.label,
        title: `Passphrase for ${path.basename(file)}`,
        instructions:
          i > 1
            ? `Wrong passphrase; try again (attempt ${i} of ${tries}).`
            : `The key ${file} is encrypted; its passphrase unlocks it for logging in to ${hop.label}.`,
        questions: [{ text: `Enter passphrase for key ${file}:`, echo: false }]
      });
      hop.timer?.resume();
      if (answer.cancel || !answer.answers || answer.answers[0] === undefined) {
        ctx.log.info(`ssh: passphrase for ${file} not given; skipping that key`);
        return 'cancel';
      }
      parsed = firstKey(sshUtils.parseKey(data, answer.answers[0]));
      if (!(parsed instanceof Error)) {
        ctx.unlockedKeys.set(file, parsed);
        break;
      }
    }
    if (parsed instanceof Error) {
      ctx.log.warn(`ssh: wrong passphrase for ${file}; skipping that key`);
      return undefined;
    }
  }
  if (parsed instanceof Error) {
    ctx.log.warn(`ssh: cannot use identity file ${file}: ${parsed.message}`);
    return undefined;
  }
  if (!parsed.isPrivateKey()) {
    ctx.log.warn(`ssh: identity file ${file} holds no private key; skipping it`);
    return undefined;
  }
  return parsed;
}

function firstKey(k: ParsedKey | ParsedKey[] | Error): ParsedKey | Error {
  return Array.isArray(k) ? (k[0] ?? new Error('no key found')) : k;
}

/** The public key blob of an identity file (from `file.pub`, or an unencrypted key). */
async function readPublicKey(file: string): Promise<Buffer | undefined> {
  for (const candidate of [`${file}.pub`, file]) {
    try {
      const k = firstKey(sshUtils.parseKey(await fsp.readFile(candidate)));
      if (!(k instanceof Error)) {
        return k.getPublicSSH();
      }
    } catch {
      // missing or unreadable
    }
  }
  return undefined;
}

/** Every question that hides its answer (a code, a password) has one; never an empty set. */
function completeAnswers(prompts: Ssh2Prompt[], answers: string[]): boolean {
  return prompts.every((p, i) => typeof answers[i] === 'string' && (p.echo === true || answers[i] !== ''));
}
