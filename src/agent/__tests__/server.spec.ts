import { promises as fs } from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';

import { startAgentServer, type IAgentServer } from '../server';
import { SessionManager } from '../sessions/manager';
import { PromptBroker } from '../sessions/prompts';
import { CountingLink } from './helpers/counting-link';
import { HPC_PROFILE } from './helpers/profile';
import { slurmManager } from './helpers/slurm-manager';

/** One request to the agent's socket (JSON `body` if given); status and JSON answer. */
function get(
  socketPath: string,
  urlPath: string,
  method = 'GET',
  body?: unknown
): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, path: urlPath, method }, res => {
      let data = '';
      res.on('data', chunk => (data += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(data) }));
    });
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
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

  it('lists the Host aliases of ~/.ssh/config (with Include) to create a profile from', async () => {
    const home = path.join(dir, 'home');
    await fs.mkdir(path.join(home, '.ssh', 'conf.d'), { recursive: true });
    await fs.writeFile(
      path.join(home, '.ssh', 'config'),
      'Include conf.d/*\nHost gw\n  HostName gw.example.org\n  User me\nHost *.internal !secret\n  User other\n'
    );
    await fs.writeFile(
      path.join(home, '.ssh', 'conf.d', 'cluster'),
      'Host cluster login.internal\n  HostName 10.1.2.3\n  Port 2200\n  ProxyJump gw\n'
    );
    const oldHome = process.env.HOME;
    process.env.HOME = home;
    try {
      server = await startAgentServer({ socketPath });
      const { status, body } = await get(socketPath, '/api/v1/ssh-hosts');
      expect(status).toBe(200);
      expect(body.file).toBe(path.join(home, '.ssh', 'config'));
      expect(body.hosts.map((h: any) => [h.alias, h.hostName, h.user, h.port, h.proxyJump])).toEqual([
        ['cluster', '10.1.2.3', os.userInfo().username, 2200, 'gw'],
        ['login.internal', '10.1.2.3', 'other', 2200, 'gw'],
        ['gw', 'gw.example.org', 'me', 22, undefined]
      ]);
      expect((await get(socketPath, '/api/v1/ssh-hosts', 'POST')).status).toBe(405);
      // No config at all: an empty list, not an error.
      await fs.rm(path.join(home, '.ssh'), { recursive: true });
      expect((await get(socketPath, '/api/v1/ssh-hosts')).body.hosts).toEqual([]);
    } finally {
      process.env.HOME = oldHome;
    }
  });
});

describe('agent API errors say what happened (404 gone, 409 not now, 400 bad request)', () => {
  let dir: string;
  let socketPath: string;
  let server: IAgentServer | undefined;
  let sessions: SessionManager;

  const call = (urlPath: string, method: string, body?: unknown) => get(socketPath, urlPath, method, body);

  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'jrc-agent-'));
    await fs.chmod(dir, 0o700);
    socketPath = path.join(dir, 'agent.sock');
    await fs.writeFile(path.join(dir, 'helper.py'), '# helper\n');
    const link = new CountingLink();
    sessions = slurmManager(dir, link);
    const prompts = new PromptBroker(
      () => undefined,
      () => false
    );
    const profiles = async () => ({ profiles: [HPC_PROFILE], errors: [], file: '' });
    server = await startAgentServer({ socketPath, services: { sessions, prompts, profiles, baseUrl: '/' } });
  });

  afterEach(async () => {
    await server?.close();
    await sessions.shutdown();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('a session or kernel that does not exist is 404; a session not running is 409', async () => {
    const ports = { shell_port: 40001, iopub_port: 40002, stdin_port: 40003, control_port: 40004, hb_port: 40005 };
    const gone = await call('/api/v1/sessions/abcdef/kernels', 'POST', { kernelId: 'k1', adoptPorts: ports });
    expect([gone.status, gone.body.error.code]).toEqual([404, 'not-found']);
    const noKernel = await call('/api/v1/kernels/k1/signal', 'POST', { signal: 'SIGINT' });
    expect([noKernel.status, noKernel.body.error.code]).toEqual([404, 'not-found']);

    const queued = await call('/api/v1/sessions', 'POST', { profile: 'hpc' });
    expect(queued.status).toBe(201);
    const early = await call(`/api/v1/sessions/${queued.body.id}/kernels`, 'POST', {});
    expect([early.status, early.body.error.code]).toEqual([409, 'conflict']);
    expect(early.body.error.message).toBe(`Session ${queued.body.id} is queued, not running.`);
    const adopt = await call(`/api/v1/sessions/${queued.body.id}/kernels`, 'POST', {
      kernelId: 'k1',
      adoptPorts: ports
    });
    expect([adopt.status, adopt.body.error.code]).toEqual([409, 'conflict']);

    // verbs are paths: a query flag is refused, never read as a plain shutdown
    const flag = await call('/api/v1/kernels/k1?restart=1', 'DELETE');
    expect([flag.status, flag.body.error.message]).toEqual([
      400,
      'DELETE /api/v1/kernels/k1 takes no query; restart and detach are POST /api/v1/kernels/k1/<verb>.'
    ]);

    // a request that is wrong stays 400
    const bad = await call('/api/v1/sessions', 'POST', { profile: 'hpc', resources: { extraDirectives: ['-x'] } });
    expect([bad.status, bad.body.error.code]).toEqual([400, 'invalid']);
  });
});
