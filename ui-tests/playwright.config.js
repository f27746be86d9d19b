/**
 * Galata (Playwright) configuration: Debian's chromium, never a downloaded browser,
 * with the flags that keep it from calling out (../shared/notes/testbed.md).
 */
const baseConfig = require('@jupyterlab/galata/lib/playwright-config');

module.exports = {
  ...baseConfig,
  testDir: './tests',
  outputDir: './test-results',
  reporter: [['list'], ['html', { open: 'never', outputFolder: 'playwright-report' }]],
  // One browser, one worker: the machine has two cores and the tests share one server.
  workers: 1,
  retries: 0,
  use: {
    ...baseConfig.use,
    baseURL: 'http://127.0.0.1:8899',
    screenshot: 'on',
    trace: 'retain-on-failure',
    video: 'off',
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run'
      ]
    }
  },
  webServer: {
    command: 'bash ../scripts/galata-server.sh',
    url: 'http://127.0.0.1:8899/lab',
    timeout: 120 * 1000,
    reuseExistingServer: !process.env.CI
  }
};
