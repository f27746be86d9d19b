/**
 * Names shared by the frontend, the agent and the Python server extension: the URL
 * namespace, kernelspec names and the provisioner. Python has the same values in
 * jupyterlab_remote_cluster/routes.py; tests/test_contracts.py checks them against this file.
 */

/** URL namespace (relative to the Jupyter base URL) of every route of this project. */
export const URL_NAMESPACE = 'remote-cluster';

/** Every kernelspec this project writes is named with this prefix (and carries its marker). */
export const KERNEL_NAME_PREFIX = 'remote-cluster-';

/** The kernelspec of a running session: prefix + this + the session id. */
export const SESSION_KERNEL_INFIX = 'session-';

/** Metadata key marking a kernelspec as ours: only marked directories are ever touched. */
export const KERNELSPEC_MARKER = 'jupyterlab_remote_cluster';

/** The jupyter_client kernel provisioner (an entry point in pyproject.toml). */
export const PROVISIONER_NAME = 'remote-cluster-provisioner';

/** The kernelspec of a profile: starts a new job with the profile's defaults. */
export function profileKernelName(profile: string): string {
  return `${KERNEL_NAME_PREFIX}${profile.toLowerCase().replace(/[^a-z0-9._-]/g, '-')}`;
}

/** Between a session's kernelspec name and the name of another kernel of the job's environment. */
export const REMOTE_KERNEL_SEPARATOR = '--';

/** The remote kernel of a stable kernelspec that is the session's own Python. */
export const DEFAULT_REMOTE_KERNEL = 'python3';

/**
 * A stable kernelspec (what a notebook is saved with): `profile`'s kernel `remote` of its
 * job environment (default: its Python), started in a running session of the profile or
 * a new one; the same name whatever the job.
 */
export function stableKernelName(profile: string, remote: string = DEFAULT_REMOTE_KERNEL): string {
  return `${profileKernelName(profile)}${REMOTE_KERNEL_SEPARATOR}${remote.toLowerCase()}`;
}

/**
 * The kernelspec of a running session (attaches to its allocation): its default Python,
 * or `remote`, another kernelspec of the job's environment (R, bash...).
 */
export function sessionKernelName(sessionId: string, remote?: string): string {
  const base = `${KERNEL_NAME_PREFIX}${SESSION_KERNEL_INFIX}${sessionId}`;
  return remote ? `${base}${REMOTE_KERNEL_SEPARATOR}${remote.toLowerCase()}` : base;
}

/**
 * The public prefix of what a session serves (its Dask dashboard runs under it): the
 * session's proxy key is the capability in it (docs/security.md, "The browser side").
 */
export function proxiedPrefix(baseUrl: string, key: string): string {
  return `${baseUrl.replace(/\/$/, '')}/${URL_NAMESPACE}/proxied/${key}`;
}

/** A cluster's files in JupyterLab: the contents drive `cluster-<profile>` (paths `cluster-<profile>:<path>`). */
export const CLUSTER_DRIVE_PREFIX = 'cluster-';

export function clusterDriveName(profile: string): string {
  return `${CLUSTER_DRIVE_PREFIX}${profile}`;
}
