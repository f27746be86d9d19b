/**
 * What the session manager needs from a cluster connection. The SSH implementation is
 * in ../ssh/; tests may provide another (e.g. a real local shell).
 */
import type { Duplex } from 'node:stream';

import type { SFTPWrapper } from 'ssh2';

import type { IClusterProfile } from '../../common/api';
import type { ICommandResult } from '../schedulers/types';

/** An interactive shell's channel: its bytes both ways, and its pty's size. */
export interface IShellChannel extends Duplex {
  setWindow(rows: number, cols: number, height: number, width: number): void;
}

export interface IClusterLink {
  exec(command: string, options?: { stdin?: string; timeoutMs?: number }): Promise<ICommandResult>;
  writeFile(path: string, data: string | Buffer, mode: number): Promise<void>;
  /** A file's content; refused when it is larger than `maxBytes` (default 1 MiB). */
  readFile(path: string, maxBytes?: number): Promise<Buffer>;
  /** A stream to host:port as seen from the login node (direct-tcpip). */
  forwardOut(host: string, port: number): Promise<Duplex>;
  /** An interactive shell on the login node, on a pty (a login-node terminal). */
  shell?(rows: number, cols: number): Promise<IShellChannel>;
  /** The connection's SFTP session (the cluster drive), opened on first use. */
  sftp?(): Promise<SFTPWrapper>;
  /** A stream to a Unix socket on the login node (streamlocal; connectivity `reverse`). */
  forwardOutStreamLocal?(socketPath: string): Promise<Duplex>;
  /**
   * The SSH connection to a compute node, through this link (connectivity `node-ssh`):
   * one per node, shared, closed when unused; made again after this link reconnects.
   */
  nodeLink?(node: string): Promise<INodeLink>;
  /** Called with a message when the link drops. */
  onClose(listener: (message: string) => void): void;
  close(): void;
}

/** What is reachable once logged in to a compute node itself. */
export interface INodeLink {
  /** host:port as seen from the node (e.g. 127.0.0.1:dashboard). */
  forwardOut(host: string, port: number): Promise<Duplex>;
  /** A Unix socket on the node (kernels, the helper's control socket). */
  forwardOutStreamLocal(socketPath: string): Promise<Duplex>;
}

export type LinkFactory = (profile: IClusterProfile) => Promise<IClusterLink>;
