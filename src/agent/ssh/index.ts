/** The agent's SSH layer: one ClusterConnection per cluster (see README.md here). */
export { ClusterConnection } from './connection';
export { NodeConnection } from './node-connection';
export {
  SshConnectionError,
  type ConnectionState,
  type IClusterConnectionOptions,
  type IConnectionLogger,
  type IExecOptions,
  type IExecResult,
  type IHopInfo,
  type PromptFn
} from './types';
export {
  appendKnownHost,
  checkHostKey,
  fingerprintSha256,
  type HostKeyStatus,
  type IHostKeyCheck
} from './known-hosts';
export { resolveChain, resolveHost, type IResolvedHost, type IResolveOptions } from './ssh-config';
