/**
 * Host keys of a hop against known_hosts (known-hosts.ts), as ssh_config's
 * StrictHostKeyChecking says (ssh/README.md, "Host keys on every hop"): which files, which
 * key types to ask the server for first, the check when the server shows its key, and
 * remembering an accepted key once the handshake proved the server holds it. On its own
 * because it decides whom we talk to.
 */
import * as path from 'node:path';

import type { Algorithms, ServerHostKeyAlgorithm } from 'ssh2';

import type { IPromptAnswer } from '../../common/api';
import type { IHop, IHopContext } from './hop';
import { certHostKeyAlgorithms, isCertificateType } from './certificates';
import {
  appendKnownHost,
  checkHostCertificate,
  checkHostKey,
  fingerprintSha256,
  hasCertAuthority,
  keyTypeOfBlob,
  knownKeyTypes
} from './known-hosts';
import type { IResolvedHost } from './ssh-config';
import { expandTilde } from './ssh-config-syntax';
import type { IConnectionLogger } from './types';

/** Host-key algorithms to prefer for each known key type. */
const HOSTKEY_ALGOS: Record<string, string[]> = {
  'ssh-ed25519': ['ssh-ed25519'],
  'ecdsa-sha2-nistp256': ['ecdsa-sha2-nistp256'],
  'ecdsa-sha2-nistp384': ['ecdsa-sha2-nistp384'],
  'ecdsa-sha2-nistp521': ['ecdsa-sha2-nistp521'],
  'ssh-rsa': ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa']
};

/** The known_hosts files of a hop (knownHostsFor). */
export interface IKnownHostsFiles {
  check: string[];
  append: string;
}

/**
 * known_hosts files for a hop: checked ones, and the one accepted keys go to.
 * `explicitFiles`: the profile's knownHostsFiles, which replace ssh_config's.
 */
export function knownHostsFor(
  cfg: IResolvedHost,
  explicitFiles: string[] | undefined,
  homeDir: string
): IKnownHostsFiles {
  const explicit = explicitFiles?.map(f => expandTilde(f, homeDir));
  if (explicit && explicit.length) {
    return { check: explicit, append: explicit[0] };
  }
  const user = cfg.userKnownHostsFiles?.length
    ? cfg.userKnownHostsFiles
    : [path.join(homeDir, '.ssh', 'known_hosts'), path.join(homeDir, '.ssh', 'known_hosts2')];
  const global = cfg.globalKnownHostsFiles ?? ['/etc/ssh/ssh_known_hosts', '/etc/ssh/ssh_known_hosts2'];
  return { check: [...user, ...global], append: user[0] };
}

/**
 * Whether this ssh2 carries scripts/patch-ssh2.mjs (certificate host-key algorithms):
 * an unpatched one throws on them, so they are offered only when it does.
 */
export function ssh2HasCertificates(): boolean {
  return certHostKeyAlgorithms().length > 0;
}

/**
 * The serverHostKey algorithms to offer a hop: certificates first when known_hosts has a
 * `@cert-authority` for it, then the key types known_hosts has for it (OpenSSH orders
 * them the same way: what it can verify first).
 */
export async function hostKeyAlgorithmsFor(
  files: string[],
  name: string,
  port: number
): Promise<Algorithms['serverHostKey']> {
  const types = await knownKeyTypes(files, name, port);
  const certs = (await hasCertAuthority(files, name, port)) ? certHostKeyAlgorithms() : [];
  const prefer = [...certs, ...types.flatMap(t => HOSTKEY_ALGOS[t] ?? [])] as ServerHostKeyAlgorithm[];
  return prefer.length ? { remove: prefer, prepend: prefer, append: [] } : undefined;
}

/**
 * ssh2's hostVerifier for a hop: true to go on. A refused key leaves its reason in
 * `hop.failure`/`failureCode`; a new key accepted waits in `hop.pendingAppend` for the
 * handshake (appendPendingHostKey).
 */
export async function verifyHostKey(
  ctx: IHopContext,
  hop: IHop,
  key: Buffer,
  kh: IKnownHostsFiles,
  name: string,
  port: number
): Promise<boolean> {
  const keyType = keyTypeOfBlob(key);
  const fp = fingerprintSha256(key);
  if (hop.accepted.some(k => k.equals(key))) {
    return true;
  }
  const res = isCertificateType(keyType)
    ? await checkHostCertificate(kh.check, name, port, key)
    : await checkHostKey(kh.check, name, port, keyType, key);
  const where = res.file ? ` (${res.file}:${res.line})` : '';
  switch (res.status) {
    case 'match':
      hop.accepted.push(key);
      ctx.log.debug(`ssh: host key of ${hop.label} matches${where}`);
      return true;
    case 'changed':
      hop.failureCode = 'host-key-changed';
      hop.failure =
        `Host key for ${hop.label} has CHANGED: known ${res.knownFingerprints.join(', ')}, ` +
        `offered ${fp}; refusing to connect (remove the old key from ${res.file}:${res.line} only if the administrators confirm the change).`;
      return false;
    case 'revoked':
      hop.failureCode = 'host-key-revoked';
      hop.failure = res.reason
        ? `The host certificate of ${hop.label} is refused: ${res.reason}${where}; refusing to connect.`
        : `Host key ${fp} of ${hop.label} is marked @revoked${where}; refusing to connect.`;
      return false;
    case 'cert-authority':
      hop.failureCode = 'host-key-certificate';
      hop.failure = ssh2HasCertificates()
        ? `known_hosts${where} trusts ${hop.label} only through a host certificate authority, ` +
          `but it showed a plain ${keyType} key (${fp}), no certificate; refusing to connect.`
        : `known_hosts${where} trusts ${hop.label} only through a host certificate authority, and this ` +
          "build's ssh2 lacks certificate support (scripts/patch-ssh2.mjs was not applied); not connecting.";
      return false;
    case 'cert-unknown-ca':
    case 'cert-invalid':
      hop.failureCode = 'host-key-certificate';
      hop.failure =
        `The host certificate of ${hop.label} is not trusted: ${res.reason}; refusing to connect` +
        (res.file ? ` (its CA is listed at ${res.file}:${res.line}).` : '.');
      return false;
    case 'unknown': {
      const strict = hop.cfg.strictHostKeyChecking ?? 'ask';
      if (strict === 'yes' || strict === 'true') {
        hop.failureCode = 'host-key-unknown';
        hop.failure =
          `No host key is known for ${hop.label} and StrictHostKeyChecking is yes: not connecting. ` +
          `Its ${keyType} key is ${fp}; once the cluster's documentation or administrators confirm it, add it to ${kh.append}.`;
        return false;
      }
      if (strict === 'accept-new' || strict === 'no' || strict === 'off' || strict === 'false') {
        // As ssh(1) does with these settings: new keys are remembered without asking
        // (a changed key is still refused, above).
        ctx.log.info(`ssh: accepting the new ${keyType} key ${fp} of ${hop.label} (StrictHostKeyChecking ${strict})`);
        hop.accepted.push(key);
        hop.pendingAppend = { file: kh.append, name, port, keyType, key, hash: hop.cfg.hashKnownHosts === true };
        return true;
      }
      if (!ctx.canAsk()) {
        hop.personNeeded = true;
        hop.failureCode = 'sign-in-needed';
        hop.failure = `The host key of ${hop.label} is not known yet, and no JupyterLab is open to show it to you: sign in from JupyterLab.`;
        return false;
      }
      // OpenSSH's own warning (sshconnect.c): worth a second look, it may be a spoof.
      const warnings = res.otherKeyTypes.length
        ? [
            `Keys of other types are already known for this host (${res.otherKeyTypes.join(', ')}), but not this ${keyType} key.`
          ]
        : [];
      const others = warnings.length ? ` ${warnings[0]}` : '';
      hop.timer?.pause();
      let answer: IPromptAnswer;
      try {
        answer = await ctx.ask(hop, {
          kind: 'host-key',
          host: hop.label,
          title: `Unknown host key for ${hop.label}`,
          instructions:
            `The authenticity of ${hop.label} can't be established. Its ${keyType} key fingerprint is ${fp}.${others} ` +
            `Check it with the cluster's documentation or administrators. Accepting adds it to ${kh.append}.`,
          questions: [],
          hostKey: { type: keyType, fingerprint: fp },
          ...(warnings.length > 0 && { warnings })
        });
      } finally {
        hop.timer?.resume();
      }
      if (answer.accept === true && !answer.cancel) {
        hop.accepted.push(key);
        hop.pendingAppend = {
          file: kh.append,
          name,
          port,
          keyType,
          key,
          hash: hop.cfg.hashKnownHosts === true
        };
        return true;
      }
      hop.failureCode = 'host-key-rejected';
      hop.failure = `The host key of ${hop.label} (${fp}) was not accepted; not connecting.`;
      return false;
    }
  }
}

/**
 * On the hop's `handshake`: the server proved it holds the key, so a key accepted in
 * verifyHostKey is appended to known_hosts now (`hop.appendDone` settles when written).
 */
export function appendPendingHostKey(hop: IHop, log: Required<IConnectionLogger>): void {
  const p = hop.pendingAppend;
  if (p) {
    hop.pendingAppend = undefined;
    hop.appendDone = appendKnownHost(p.file, p.name, p.port, p.keyType, p.key, { hash: p.hash }).then(
      () => log.info(`ssh: added the ${p.keyType} key of ${hop.label} to ${p.file}`),
      err => log.warn(`ssh: could not add the host key of ${hop.label} to ${p.file}: ${(err as Error).message}`)
    );
  }
}
