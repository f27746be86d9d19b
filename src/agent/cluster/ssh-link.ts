/**
 * Cluster links over SSH: one ClusterConnection per cluster (see ../ssh/connection.ts),
 * its state changes published as `connection` events for the frontend.
 */
import type { AgentEvent, IClusterProfile } from '../../common/api';
import { ClusterConnection, type PromptFn } from '../ssh/connection';
import type { SignInGuard } from '../ssh/sign-in-guard';
import type { IClusterLink, LinkFactory } from './link';
import { NodePool } from './node-pool';

export function sshLinkFactory(options: {
  prompt: PromptFn;
  log: (msg: string) => void;
  emit: (e: AgentEvent) => void;
  /** Whether a person can answer prompts now (a JupyterLab is connected). */
  canAsk: () => boolean;
  /** Shared by every link: failed codes and passwords are counted per account. */
  signInGuard: SignInGuard;
}): LinkFactory {
  return async (profile: IClusterProfile): Promise<IClusterLink> => {
    const closeListeners: ((message: string) => void)[] = [];
    const conn = new ClusterConnection({
      target: profile.ssh,
      cluster: profile.name,
      prompt: options.prompt,
      canAsk: options.canAsk,
      signInGuard: options.signInGuard,
      logger: {
        info: m => options.log(m),
        warn: m => options.log(m),
        error: m => options.log(m)
      },
      onStateChange: (state, message) => {
        options.emit({ type: 'connection', cluster: profile.name, state, ...(message && { message }) });
        if (state === 'closed') {
          nodes.closeAll();
          closeListeners.splice(0).forEach(l => l(message ?? 'connection closed'));
        }
      }
    });
    // node-ssh: one connection per node over this one, closed after a minute unused.
    const nodes = new NodePool(
      node => conn.connectNode(node),
      60_000,
      m => options.log(m)
    );
    await conn.connect();
    return {
      exec: (command, opts) => conn.exec(command, opts),
      writeFile: (path, data, mode) => conn.writeFile(path, data, mode),
      readFile: (path, maxBytes) => conn.readFile(path, maxBytes),
      forwardOut: (host, port) => conn.forwardOut(host, port),
      shell: (rows, cols) => conn.shell(rows, cols),
      sftp: () => conn.sftp(),
      forwardOutStreamLocal: socketPath => conn.forwardOutStreamLocal(socketPath),
      nodeLink: node => nodes.get(node),
      onClose: listener => closeListeners.push(listener),
      close: () => {
        nodes.closeAll(true);
        void conn.close();
      }
    };
  };
}
