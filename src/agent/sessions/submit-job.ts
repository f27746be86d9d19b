/**
 * A session's batch job, from nothing to queued: its private directory on the cluster, the
 * helper's code (once per version), config.json (the control token, the session's TLS,
 * what the helper starts), the job script, the submission. A refusal leaves nothing
 * behind; a submission without an answer says how to find the job that may be queued.
 */
import { randomBytes } from 'node:crypto';

import type { IClusterProfile } from '../../common/api';
import { proxiedPrefix } from '../../common/routes';
import type { IClusterLink } from '../cluster/link';
import { shQuote } from '../schedulers/shell';
import { SchedulerUnavailableError, type ICommandResult, type ISchedulerAdapter } from '../schedulers/types';
import { parseWalltime } from '../schedulers/validate';
import { makeSessionTls } from '../tls/x509';
import { onLogin, REMOTE_ROOT, type ISessionRecord } from './records';
import { loginChecksCommand, loginCheckWarnings } from './login-checks';
import type { IRemoteFiles } from './remote-files';
import { elasticConfig, workersConfig } from './scale-out';

export interface ISubmitJob {
  /** The session being submitted: its remoteDir, protocol and proxyKey are set here. */
  s: ISessionRecord;
  profile: IClusterProfile;
  adapter: ISchedulerAdapter;
  link: IClusterLink;
  /** The user's home on the cluster. */
  home: string;
  remote: IRemoteFiles;
  /** Jupyter's base URL (the proxied prefix the helper serves dashboards under). */
  baseUrl: string;
  /** Minutes: the idle timeout when the profile sets none (0: off). */
  defaultIdleTimeout: number;
}

/** Submit the session's job; returns its id. */
export async function submitSessionJob(a: ISubmitJob): Promise<string> {
  const { s, profile, adapter, link, home, remote, baseUrl } = a;
  const root = `${home}/${REMOTE_ROOT}`;
  const dir = `${root}/sessions/${s.id}`;
  const codeDir = `${root}/remote-${remote.digest}`;
  const helperPath = `${codeDir}/${remote.entry}`;
  s.remoteDir = dir;
  s.protocol = remote.protocol;
  s.proxyKey = randomBytes(32).toString('base64url');

  // One round trip: the login node's checks, private directories, and whether this
  // version of the helper is there.
  const checks = loginChecksCommand(profile);
  const prep = await link.exec(
    `${checks ? checks + '; ' : ''}umask 077 && mkdir -p ${shQuote(dir)} && chmod 700 ${shQuote(root)} ${shQuote(root + '/sessions')} ${shQuote(dir)} && ` +
      `{ test -f ${shQuote(helperPath)} && echo helper-present || echo helper-missing; }`
  );
  if (prep.code !== 0) {
    throw new Error(`cannot create ${dir}: ${prep.stderr.trim()}`);
  }
  const warnings = loginCheckWarnings(prep.stdout, profile);
  s.loginWarnings = warnings.length ? warnings : undefined;
  if (!prep.stdout.split('\n').includes('helper-present')) {
    // Into a temporary directory first: a concurrent submit never runs half of a version.
    const tmp = `${codeDir}.${randomBytes(4).toString('hex')}`;
    await link.exec(`umask 077 && mkdir ${shQuote(tmp)}`);
    for (const f of remote.files) {
      await link.writeFile(`${tmp}/${f.name}`, f.data, 0o600);
    }
    await link.exec(`mv -T ${shQuote(tmp)} ${shQuote(codeDir)} 2>/dev/null || rm -rf ${shQuote(tmp)}`);
  }
  // The session's own CA and certificate (docs/security.md): its key is dropped here.
  const tls = makeSessionTls(s.id);
  const config = {
    sessionId: s.id,
    token: randomBytes(32).toString('hex'),
    tls: { ca: tls.caCert, cert: tls.cert, key: tls.key },
    python: profile.python,
    workdir: profile.workdir ?? home,
    dask: profile.dask !== false,
    proxyBase: proxiedPrefix(baseUrl, s.proxyKey),
    kernelEnv: {},
    // the session's end, as the helper reports it (worker jobs stop there)
    ...(s.resources.walltime && { walltimeSeconds: parseWalltime(s.resources.walltime) }),
    // idle reclaim, decided by the helper (its idle.py; docs/allocation.md)
    ...idleConfig(profile.idleTimeout ?? a.defaultIdleTimeout),
    // auto: the helper listens for every mode; the agent finds out which one works
    connectivity: profile.connectivity ?? 'via-login',
    ...(profile.reverseHost && { reverseHost: profile.reverseHost }),
    // A plain host is its own "login node": nothing needs to reach it from outside.
    ...(adapter.helperOnLoopback && { bindAddress: '127.0.0.1' }),
    ...workersConfig(s.resources, adapter, profile, `${codeDir}/${remote.entry}`, dir),
    ...elasticConfig(s, adapter, profile, `${codeDir}/${remote.entry}`, dir)
  };
  s.connectivity = config.connectivity === 'auto' ? undefined : config.connectivity;
  await link.writeFile(`${dir}/config.json`, JSON.stringify(config), 0o600);
  const script = adapter.renderScript({
    name: `jrc-${s.id}`,
    workdir: dir,
    stdoutPath: `${dir}/job.out`,
    stderrPath: `${dir}/job.err`,
    resources: s.resources,
    setup: profile.setup ?? [],
    // The container wrapper (if any) runs the helper, so the kernels it starts are inside too.
    command: `${profile.container ? profile.container + ' ' : ''}${shQuote(profile.python)} ${shQuote(helperPath)} serve --session-dir ${shQuote(dir)}`,
    // (inside a container it is the container's Python: not looked for outside)
    ...(!profile.container && { python: profile.python })
  });
  await link.writeFile(`${dir}/job.sh`, script, 0o700);
  // Without an answer the job may be queued all the same: say so, and keep its files.
  const unanswered = (why: string) =>
    new SchedulerUnavailableError(
      `${why.replace(/\.?$/, '.')} The job may have been queued all the same, named "jrc-${s.id}": ` +
        `look for it with your batch system and cancel it if you do not want it (its files stay in ${dir}).`
    );
  let result: ICommandResult;
  try {
    result = await link.exec(onLogin(profile, adapter.submitCommand(`${dir}/job.sh`)), { timeoutMs: 60_000 });
  } catch (err) {
    throw unanswered(`The submission got no answer: ${(err as Error).message}`);
  }
  let jobId: string;
  try {
    jobId = adapter.parseSubmit(result);
  } catch (err) {
    if (err instanceof SchedulerUnavailableError) {
      throw unanswered(err.message); // (adapters say who did not answer; this says what follows)
    }
    // Refused: nothing is queued; leave no directory behind either.
    await link.exec(`rm -rf ${shQuote(dir)}`).catch(() => undefined);
    throw err;
  }
  return jobId;
}

/** config.json's `idle` for a timeout in minutes (0: none). */
export function idleConfig(minutes: number): { idle?: { timeoutSeconds: number } } {
  return minutes > 0 ? { idle: { timeoutSeconds: minutes * 60 } } : {};
}
