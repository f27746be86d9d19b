/**
 * What the session manager needs from a cluster connection. The SSH implementation is
 * in ../ssh/; tests may provide another (e.g. a real local shell).
 */
import type { Duplex } from 'node:stream';

import type { IClusterProfile } from '../../common/api';
import type { ICommandResult } from '../schedulers/types';

export interface IClusterLink {
  exec(command: string, options?: { stdin?: string; timeoutMs?: number }): Promise<ICommandResult>;
  writeFile(path: string, data: string | Buffer, mode: number): Promise<void>;
  readFile(path: string): Promise<Buffer>;
  /** A stream to host:port as seen from the login node (direct-tcpip). */
  forwardOut(host: string, port: number): Promise<Duplex>;
  /** Called with a message when the link drops. */
  onClose(listener: (message: string) => void): void;
  close(): void;
}

export type LinkFactory = (profile: IClusterProfile) => Promise<IClusterLink>;
