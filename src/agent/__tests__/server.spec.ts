import { promises as fs } from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';

import { startAgentServer, type IAgentServer } from '../server';

function get(socketPath: string, urlPath: string, method = 'GET'): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, path: urlPath, method }, res => {
      let data = '';
      res.on('data', chunk => (data += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(data) }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('agent server', () => {
  let dir: string;
  let socketPath: string;
  let server: IAgentServer | undefined;

  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'jrc-agent-'));
    await fs.chmod(dir, 0o700);
    socketPath = path.join(dir, 'agent.sock');
  });

  afterEach(async () => {
    await server?.close();
    server = undefined;
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('serves its health on a socket only the user can open', async () => {
    server = await startAgentServer({ socketPath });
    const stat = await fs.stat(socketPath);
    expect(stat.isSocket()).toBe(true);
    expect(stat.mode & 0o777).toBe(0o600);

    const { status, body } = await get(socketPath, '/api/v1/health');
    expect(status).toBe(200);
    expect(body.status).toBe('ok');
    expect(body.pid).toBe(process.pid);
    expect(body.ssh.library).toBe('ssh2');
    expect(body.ssh.version).toMatch(/^1\.\d+\.\d+$/);
  });

  it('answers unknown routes and wrong methods with a JSON error', async () => {
    server = await startAgentServer({ socketPath });
    const missing = await get(socketPath, '/api/nope');
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe('not-found');
    const wrong = await get(socketPath, '/api/v1/health', 'DELETE');
    expect(wrong.status).toBe(405);
    expect(wrong.body.error.message).toContain('DELETE');
  });

  it('refuses a socket directory that other users can enter', async () => {
    await fs.chmod(dir, 0o755);
    await expect(startAgentServer({ socketPath })).rejects.toThrow(/mode 0700/);
  });

  it('refuses to take over a live agent, but replaces a stale socket', async () => {
    server = await startAgentServer({ socketPath });
    await expect(startAgentServer({ socketPath })).rejects.toThrow(/already listening/);
    await server.close();
    server = undefined;
    // A socket file left behind by a crashed agent: nobody answers on it.
    const stale = http.createServer();
    await new Promise<void>(resolve => stale.listen(socketPath, resolve));
    const fd = await fs.open(socketPath, 'r').catch(() => undefined);
    await fd?.close();
    (stale as any)._handle.close(); // close without unlinking, as a crash would
    server = await startAgentServer({ socketPath });
    expect((await get(socketPath, '/api/v1/health')).status).toBe(200);
  });

  it('refuses to replace a file that is not a socket', async () => {
    await fs.writeFile(socketPath, 'precious');
    await expect(startAgentServer({ socketPath })).rejects.toThrow(/not a socket/);
    expect(await fs.readFile(socketPath, 'utf8')).toBe('precious');
  });
});
