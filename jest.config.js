/**
 * Two Jest projects: the frontend (src/lab, jsdom, JupyterLab's test utilities) and the
 * agent (src/agent, plain Node). Run both with `npx jest`, one with `--selectProjects`.
 */
const jestJupyterLab = require('@jupyterlab/testutils/lib/jest-config');

const esModules = [
  '@codemirror',
  '@jupyter/ydoc',
  '@jupyter/react-components',
  '@jupyter/web-components',
  '@microsoft',
  '@xterm',
  'color',
  'color-convert',
  'color-name',
  'color-string',
  '@jupyterlab/',
  'exenv-es6',
  'lib0',
  'marked',
  'nanoid',
  'vscode-ws-jsonrpc',
  'y-protocols',
  'y-websocket',
  'yjs'
].join('|');

// Options Jest accepts only at the top level, not per project.
const { coverageReporters, reporters, testTimeout, ...labBase } = jestJupyterLab(__dirname);

module.exports = {
  reporters: ['default'],
  // Agent tests open sockets and, later, SSH connections through the testbed.
  testTimeout: 30000,
  projects: [
    {
      ...labBase,
      displayName: 'lab',
      modulePathIgnorePatterns: ['<rootDir>/.venv/', '<rootDir>/jupyterlab_remote_cluster/'],
      testRegex: 'src/lab/__tests__/.*\\.spec\\.tsx?$',
      transformIgnorePatterns: [`/node_modules/(?!${esModules}).+`]
    },
    {
      displayName: 'agent',
      modulePathIgnorePatterns: ['<rootDir>/.venv/', '<rootDir>/jupyterlab_remote_cluster/'],
      testEnvironment: 'node',
      testRegex: 'src/agent/__tests__/.*\\.spec\\.ts$',
      testPathIgnorePatterns: ['/node_modules/', '/integration/'],
      transform: {
        '^.+\\.ts$': ['ts-jest', { tsconfig: './tsconfig.test.json' }],
        '\\.svg$': '@jupyterlab/testing/lib/jest-raw-loader.js'
      }
    },
    {
      // Against the running testbed (real sshd, Slurm, kernels): `testbed/testbed start` first.
      displayName: 'agent-integration',
      modulePathIgnorePatterns: ['<rootDir>/.venv/', '<rootDir>/jupyterlab_remote_cluster/'],
      testEnvironment: 'node',
      testRegex: 'src/agent/__tests__/integration/.*\\.spec\\.ts$',
      transform: {
        '^.+\\.ts$': ['ts-jest', { tsconfig: './tsconfig.test.json' }]
      }
    }
  ]
};
