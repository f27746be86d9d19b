import { ServerConnection } from '@jupyterlab/services';

import { RemoteClusterApiError, requestAPI } from '../handler';
import { describeHealth } from '../index';

function settingsReturning(status: number, body: string): ServerConnection.ISettings {
  const fetchImpl = jest.fn(async (input: RequestInfo) => {
    return new Response(body, { status, headers: { 'Content-Type': 'application/json' } });
  });
  return ServerConnection.makeSettings({
    baseUrl: 'http://localhost:8888/lab-base/',
    fetch: fetchImpl as any
  });
}

async function failure(promise: Promise<unknown>): Promise<RemoteClusterApiError> {
  try {
    await promise;
  } catch (e) {
    return e as RemoteClusterApiError;
  }
  throw new Error('expected the request to fail');
}

describe('requestAPI', () => {
  it('calls the namespaced route under the base URL and returns the JSON body', async () => {
    const settings = settingsReturning(200, '{"status":"ok"}');
    const data = await requestAPI<{ status: string }>('api/v1/health', {}, settings);
    expect(data.status).toBe('ok');
    const url = (settings.fetch as jest.Mock).mock.calls[0][0];
    const called = new URL(String(url.url ?? url));
    expect(called.origin + called.pathname).toBe('http://localhost:8888/lab-base/remote-cluster/api/v1/health');
  });

  it('turns an error answer into an error carrying its code and message', async () => {
    const settings = settingsReturning(
      503,
      '{"error":{"code":"agent-unavailable","message":"The agent failed to start."}}'
    );
    const err = await failure(requestAPI('api/v1/health', {}, settings));
    expect(err).toBeInstanceOf(RemoteClusterApiError);
    expect(err.status).toBe(503);
    expect(err.code).toBe('agent-unavailable');
    expect(err.message).toBe('The agent failed to start.');
  });

  it('survives a non-JSON error page', async () => {
    const settings = settingsReturning(502, '<html>Bad gateway</html>');
    const err = await failure(requestAPI('api/v1/health', {}, settings));
    expect(err.code).toBe('http-502');
  });
});

describe('describeHealth', () => {
  it('names the agent version, pid and crypto backend', () => {
    const lines = describeHealth({
      status: 'ok',
      agentVersion: '0.1.0',
      nodeVersion: 'v24.0.0',
      pid: 42,
      uptimeSeconds: 3,
      ssh: { library: 'ssh2', version: '1.17.0', nativeCrypto: false, certificates: true }
    });
    expect(lines[0]).toContain('0.1.0');
    expect(lines[0]).toContain('42');
    expect(lines[1]).toContain('pure JS');
    expect(lines[1]).toMatch(/crypto, OpenSSH certificates\)\.$/);
  });
});
