/**
 * The Slurm adapter's own script and commands on the testbed's real Slurm (22.05), run on
 * the login node as alice through `testbed/testbed exec` (the agent runs them over SSH; the
 * shell and Slurm on the other end are the same). Needs `testbed/testbed start` and root.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';

import * as path from 'node:path';

import { SlurmAdapter } from '../../schedulers/slurm';
import { readRemoteFiles } from '../../sessions/remote-files';
import { makeSessionTls } from '../../tls/x509';
import { InvalidRequestError, type ICommandResult, type IJobStatus, type IJobSpec } from '../../schedulers/types';

const TESTBED = path.resolve(__dirname, '../../../../testbed/testbed');
const HELPER = path.resolve(__dirname, '../../../../jupyterlab_remote_cluster/remote/helper');
/** The cluster's python on the testbed (ipykernel, dask, distributed, jupyter_client). */
const PYTHON = '/opt/rc-testbed/python/bin/python';
const slurm = new SlurmAdapter();
const run = randomBytes(3).toString('hex');
const submitted: string[] = [];
let finishedJob: string | undefined;

function sh(args: string[], stdin?: string | Buffer): Promise<ICommandResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(TESTBED, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', d => (stdout += d));
    p.stderr.on('data', d => (stderr += d));
    p.on('error', reject);
    p.on('close', code => resolve({ code, stdout, stderr }));
    p.stdin.end(stdin ?? '');
  });
}

/** A command on the login node as alice, in her home (what an SSH exec would do). */
const onLogin = (command: string, stdin?: string | Buffer) =>
  sh(['exec', 'login', '--user', 'alice', '--', 'sh', '-c', command], stdin);

function sleep(ms: number): Promise<void> {
  return new Promise(r => setTimeout(r, ms));
}

async function status(ids: string[]): Promise<Map<string, IJobStatus>> {
  return slurm.parseStatus(ids, await onLogin(slurm.statusCommand(ids)));
}

/** Poll (every 0.5 s: a test, not a product) until `pred` holds for the job's status. */
async function waitFor(id: string, pred: (s: IJobStatus) => boolean, timeoutMs: number): Promise<IJobStatus[]> {
  const seen: IJobStatus[] = [];
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const st = (await status([id])).get(id)!;
    seen.push(st);
    if (pred(st)) {
      return seen;
    }
    if (Date.now() > deadline) {
      throw new Error(`job ${id}: timed out; statuses seen: ${JSON.stringify(seen.slice(-3))}`);
    }
    await sleep(500);
  }
}

/** Render a script with the adapter, write it to alice's home, submit it with the adapter's command. */
async function submit(tag: string, resources: IJobSpec['resources'], command: string, setup: string[] = []) {
  const name = `rcit-${run}-${tag}`;
  const dir = `/home/alice/rcit/${name}`;
  const script = slurm.renderScript({
    name,
    workdir: dir,
    stdoutPath: `${dir}/job.out`,
    stderrPath: `${dir}/job.err`,
    resources,
    setup,
    command
  });
  const w = await onLogin(`umask 077 && mkdir -p ${dir} && cat > ${dir}/job.sh`, script);
  expect(w.code).toBe(0);
  const result = await onLogin(slurm.submitCommand(`${dir}/job.sh`));
  return { name, dir, result };
}

async function jobsNamed(name: string): Promise<string> {
  const r = await onLogin(`squeue --noheader --states=all --user=alice --name=${name} --format=%i`);
  expect(r.code).toBe(0);
  return r.stdout.trim();
}

beforeAll(async () => {
  // Someone may be restarting the testbed (its lifecycle test): give it a minute.
  const deadline = Date.now() + 90_000;
  let last: ICommandResult;
  while ((last = await sh(['status'])).code !== 0) {
    if (Date.now() > deadline) {
      throw new Error(`the testbed is not running/healthy (testbed/testbed start):\n${last.stdout}${last.stderr}`);
    }
    await sleep(3000);
  }
}, 120_000);

afterAll(async () => {
  if (submitted.length) {
    await onLogin(`scancel ${submitted.join(' ')}`);
  }
  await onLogin(
    `rm -rf /home/alice/rcit/rcit-${run}-* /home/alice/rcit/helper-${run}; rmdir /home/alice/rcit 2>/dev/null || true`
  );
});

describe('slurm adapter on the testbed', () => {
  it('runs a rendered script on node2 and follows it to running and ended', async () => {
    const { dir, result } = await submit(
      'hostname',
      { partition: 'big', walltime: '5', cpus: 1, memory: '200M' },
      "sh -c 'hostname; sleep 6'",
      ['echo "setup ran in $(pwd)" >&2']
    );
    const id = slurm.parseSubmit(result);
    submitted.push(id);
    expect(id).toMatch(/^\d+$/);

    const toRunning = await waitFor(id, s => s.phase !== 'pending', 60_000);
    const running = toRunning[toRunning.length - 1];
    expect(running).toMatchObject({ phase: 'running', nativeState: 'RUNNING', node: 'node2' });
    expect(running.timeLeftSeconds).toBeGreaterThan(200);
    expect(running.timeLeftSeconds).toBeLessThanOrEqual(300);
    expect(toRunning.every(s => s.phase === 'pending' || s.phase === 'running')).toBe(true);

    const toEnd = await waitFor(id, s => s.phase === 'ended', 60_000);
    expect(toEnd[toEnd.length - 1]).toMatchObject({ phase: 'ended', nativeState: 'COMPLETED', reason: 'completed' });
    expect(toEnd.some(s => s.phase === 'unknown')).toBe(false);

    const out = await onLogin(`cat ${dir}/job.out; cat ${dir}/job.err`);
    expect(out.stdout).toBe(`node2\nsetup ran in ${dir}\n`);
    finishedJob = id;
  }, 150_000);

  it('refuses an unknown partition with a clear error and queues nothing', async () => {
    await refused(
      'badpart',
      { partition: 'nosuch', walltime: '5' },
      'partition',
      /^Slurm refused the job: Invalid partition name specified/
    );
  }, 60_000);

  it('cancels a job, and one squeue call reports several jobs', async () => {
    const a = await submit('cancel', { partition: 'debug', walltime: '5' }, 'sleep 300');
    const idA = slurm.parseSubmit(a.result);
    submitted.push(idA);
    await waitFor(idA, s => s.phase === 'running', 60_000);

    const c = await onLogin(slurm.cancelCommand(idA));
    expect(c).toMatchObject({ code: 0, stderr: '' });
    const toEnd = await waitFor(idA, s => s.phase === 'ended', 30_000);
    expect(toEnd[toEnd.length - 1]).toMatchObject({ nativeState: 'CANCELLED', reason: 'cancelled' });

    // one call: the cancelled job, the finished one (first test), and an id Slurm never had
    const ids = [idA, ...(finishedJob ? [finishedJob] : []), '999999'];
    const both = await status(ids);
    expect(both.get(idA)).toMatchObject({ phase: 'ended', reason: 'cancelled' });
    if (finishedJob) {
      expect(both.get(finishedJob)).toMatchObject({ phase: 'ended', reason: 'completed' });
    }
    expect(both.get('999999')).toMatchObject({ phase: 'ended', reason: 'left the queue' });
  }, 120_000);
});

/** Submit, expect Slurm's refusal as an InvalidRequestError for `field`, and nothing queued. */
async function refused(
  tag: string,
  resources: IJobSpec['resources'],
  field: string | undefined,
  message: RegExp
): Promise<void> {
  const { name, result } = await submit(tag, resources, 'true');
  let err: unknown;
  try {
    submitted.push(slurm.parseSubmit(result));
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(InvalidRequestError);
  expect((err as InvalidRequestError).field).toBe(field);
  expect((err as InvalidRequestError).message).toMatch(message);
  expect(await jobsNamed(name)).toBe('');
}

describe('slurm resources on the testbed (node2: Features=bigmem, Gres=gpu:1)', () => {
  it.each<[string, IJobSpec['resources']]>([
    ['constraint', { partition: 'debug', constraint: 'bigmem', walltime: '5' }],
    ['gpu', { partition: 'debug', gpus: 1, walltime: '5' }],
    ['mempercpu', { partition: 'debug', constraint: 'bigmem', memoryPerCpu: '100M', cpus: 2, walltime: '5' }]
  ])(
    '%s: the job lands on node2 and gets what it asked for',
    async (tag, resources) => {
      const { result } = await submit(tag, resources, 'sh -c \'hostname; echo "gpus=$CUDA_VISIBLE_DEVICES"; sleep 3\'');
      const id = slurm.parseSubmit(result);
      submitted.push(id);
      const seen = await waitFor(id, s => s.phase !== 'pending', 60_000);
      expect(seen[seen.length - 1]).toMatchObject({ phase: 'running', node: 'node2' });
      const job = await onLogin(`scontrol show job ${id}`);
      if (tag === 'constraint') {
        expect(job.stdout).toMatch(/Features=bigmem /);
      } else if (tag === 'gpu') {
        expect(job.stdout).toMatch(/TresPerNode=(gres:)?gpu:1/);
      } else {
        expect(job.stdout).toMatch(/MinMemoryCPU=100M /);
      }
    },
    90_000
  );

  it("refuses a node feature no node has, with Slurm's message, and queues nothing", async () => {
    await refused(
      'badfeature',
      { partition: 'debug', constraint: 'nosuch', walltime: '5' },
      'constraint',
      /^Slurm refused the job: Invalid feature specification\.$/
    );
  }, 60_000);

  it("refuses an unknown reservation, with Slurm's message, and queues nothing", async () => {
    await refused(
      'badresv',
      { reservation: 'nosuch', walltime: '5' },
      'reservation',
      /^Slurm refused the job: Requested reservation is invalid\.$/
    );
  }, 60_000);

  it('more GPUs than any node has: refused by sbatch, or failed at once (BadConstraints), never left pending', async () => {
    // 22.05 does either, depending on whether its scheduler looks at the job during the submit
    const { result } = await submit('badgpu', { partition: 'debug', gpus: 2, walltime: '5' }, 'true');
    let id: string | undefined;
    try {
      id = slurm.parseSubmit(result);
      submitted.push(id);
    } catch (e) {
      expect(e).toBeInstanceOf(InvalidRequestError);
      expect((e as Error).message).toMatch(
        /Requested node configuration is not available\. No node of the partition has/
      );
      return;
    }
    const seen = await waitFor(id, s => s.phase === 'ended' || s.blocked === true, 15_000);
    expect(seen[seen.length - 1]).toMatchObject({
      nativeReason: 'BadConstraints',
      reason: expect.stringMatching(/no node satisfies/)
    });
  }, 60_000);

  it('memory and memory per CPU together never reach Slurm', async () => {
    expect(() => slurm.validate({ memory: '1G', memoryPerCpu: '100M' })).toThrow(
      /either memory \(per node\) or memoryPerCpu/
    );
  });

  it('a walltime over the partition limit (EnforcePartLimits=NO) is reported blocked at once', async () => {
    const { result } = await submit('overlimit', { partition: 'debug', walltime: '9-00:00:00' }, 'true');
    const id = slurm.parseSubmit(result);
    submitted.push(id);
    const seen = await waitFor(id, s => s.blocked === true, 30_000);
    // 22.05 says PartitionTimeLimit, or PartitionConfig when its main scheduler looks at the
    // job at submit time (both seen here); both are "blocked": the manager cancels the job
    expect(seen[seen.length - 1]).toMatchObject({
      phase: 'pending',
      nativeReason: expect.stringMatching(/^Partition(TimeLimit|Config)$/)
    });
    expect((await onLogin(slurm.cancelCommand(id))).code).toBe(0);
  }, 60_000);

  it('the first status query of a cluster learns its version; --me works on 22.05', async () => {
    const cluster = new SlurmAdapter().forCluster('testbed');
    const { result } = await submit('probe', { walltime: '5' }, 'sleep 20');
    const id = cluster.parseSubmit(result);
    submitted.push(id);
    const first = await onLogin(cluster.statusCommand([id]));
    expect(first.stdout).toMatch(/^slurm(-wlm)? 22\.05\./);
    expect(cluster.parseStatus([id], first).get(id)!.phase).not.toBe('unknown');
    expect(cluster.features).toMatchObject({ version: [22, 5] });
    expect(cluster.statusFormat).toBe('text'); // 22.05's --json ignores --jobs and --me
    const next = cluster.statusCommand([id]);
    expect(next).not.toContain('--version');
    expect(next).toContain(' --me ');
    const st = cluster.parseStatus([id], await onLogin(next)).get(id)!;
    expect(['pending', 'running']).toContain(st.phase);
  }, 60_000);
});

/**
 * On the login node: TLS to the helper's relay with the session's certificate, then CONNECT
 * and one HTTP request through it, as the agent's direct-tcpip channels go. Prints
 * {"status", "body"} per request of argv[5] (a JSON list).
 */
const RELAY_CLIENT = String.raw`
import json, socket, ssl, sys
host, port, tls_dir, name = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(cafile=tls_dir + "/ca.pem")
ctx.load_cert_chain(tls_dir + "/cert.pem", tls_dir + "/key.pem")
out = []
for req in json.loads(sys.argv[5]):
    t = ctx.wrap_socket(socket.create_connection((host, port), timeout=60), server_hostname=name)
    t.sendall(("CONNECT %s HTTP/1.1\r\nAuthorization: Bearer %s\r\n\r\n" % (req["target"], req["relayToken"])).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += t.recv(1)
    if b" 200 " not in head.split(b"\r\n")[0]:
        out.append({"relay": head.split(b" ")[1].decode()})
        continue
    body = json.dumps(req["body"]).encode() if "body" in req else b""
    auth = "Authorization: Bearer %s\r\n" % req["token"] if req.get("token") else ""
    t.sendall(("%s %s HTTP/1.1\r\nHost: x\r\n%sContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
               % (req["method"], req["path"], auth, len(body))).encode() + body)
    data = b""
    while True:
        chunk = t.recv(65536)
        if not chunk:
            break
        data += chunk
    status = int(data.split(b" ", 2)[1])
    out.append({"status": status, "body": data.split(b"\r\n\r\n", 1)[1].decode("utf-8", "replace")[:4000]})
print(json.dumps(out))
`;

describe('the remote helper in a real Slurm job', () => {
  it('starts on node2, serves kernels and Dask to the login node through its relay, and stops on scancel', async () => {
    const name = `rcit-${run}-helper`;
    const root = `/home/alice/rcit/helper-${run}`;
    const dir = `${root}/session`;
    const code = `${root}/code`;
    const token = randomBytes(24).toString('hex');
    const tls = makeSessionTls(run);
    const config = {
      sessionId: run,
      token,
      tls: { ca: tls.caCert, cert: tls.cert, key: tls.key },
      python: PYTHON,
      dask: true,
      proxyBase: `/remote-cluster/sessions/${run}/proxy`
    };
    // what the agent does over SFTP: private directories, the helper's zipapp and its
    // companions, config.json 0600; and the agent's side of the TLS for the client below
    const remote = await readRemoteFiles(HELPER);
    expect(
      (await onLogin(`umask 077 && mkdir -p ${dir} ${code} ${root}/client-tls && chmod 700 ${root} ${dir}`)).code
    ).toBe(0);
    for (const f of remote.files) {
      expect((await onLogin(`umask 077 && cat > ${code}/${f.name}`, f.data)).code).toBe(0);
    }
    for (const [f, pem] of Object.entries({
      'ca.pem': tls.caCert,
      'cert.pem': tls.cert,
      'key.pem': tls.key,
      'config.json': ''
    })) {
      const to = f === 'config.json' ? `${dir}/config.json` : `${root}/client-tls/${f}`;
      expect((await onLogin(`umask 077 && cat > ${to}`, f === 'config.json' ? JSON.stringify(config) : pem)).code).toBe(
        0
      );
    }
    const script = slurm.renderScript({
      name,
      workdir: dir,
      stdoutPath: `${dir}/job.out`,
      stderrPath: `${dir}/job.err`,
      resources: { partition: 'big', walltime: '5', cpus: 2, memory: '1G' },
      setup: [],
      command: `${PYTHON} ${code}/${remote.entry} serve --session-dir ${dir}`
    });
    expect((await onLogin(`cat > ${dir}/job.sh`, script)).code).toBe(0);
    const id = slurm.parseSubmit(await onLogin(slurm.submitCommand(`${dir}/job.sh`)));
    submitted.push(id);

    // the helper's state file (the agent reads it over SFTP) says when it is ready
    let state: any;
    const deadline = Date.now() + 60_000;
    for (;;) {
      const r = await onLogin(`cat ${dir}/state.json 2>/dev/null`);
      state = r.stdout ? JSON.parse(r.stdout) : undefined;
      if (
        (state?.status === 'ready' && state?.dask?.status !== 'starting') ||
        state?.status === 'failed' ||
        Date.now() > deadline
      ) {
        break;
      }
      await sleep(500);
    }
    expect(state).toMatchObject({ version: 2, status: 'ready', host: 'node2', sessionId: run });
    expect(state.dask).toMatchObject({ status: 'running', workerThreads: 2, tls: true }); // SLURM_CPUS_ON_NODE
    expect(state.httpPorts).toEqual([
      { port: 0, name: 'dask-dashboard', path: `/remote-cluster/sessions/${run}/proxy/0/status` }
    ]);
    expect((await status([id])).get(id)).toMatchObject({ phase: 'running', node: 'node2' });

    // from the login node, through the relay, as the agent's direct-tcpip channels connect
    const requests = [
      { target: 'control', relayToken: token, method: 'GET', path: '/health' }, // no token on the control channel
      { target: 'control', relayToken: 'x'.repeat(48), method: 'GET', path: '/health', token }, // wrong token at the relay
      { target: 'control', relayToken: token, method: 'POST', path: '/kernels', token, body: { kernelId: 'k1' } },
      { target: 'http/0', relayToken: token, method: 'GET', path: state.httpPorts[0].path }
    ];
    const relayed = await onLogin(
      `${PYTHON} - node2 ${state.relayPort} ${root}/client-tls jrc-${run} '${JSON.stringify(requests)}'`,
      RELAY_CLIENT
    );
    expect(relayed.stderr).toBe('');
    const [noAuth, wrongToken, created, dashboard] = JSON.parse(relayed.stdout);
    expect(noAuth.status).toBe(401);
    expect(wrongToken).toEqual({ relay: '401' });
    expect(created.status).toBe(201);
    expect(created.body).not.toContain(token);
    expect(JSON.parse(created.body)).toMatchObject({ kernelId: 'k1', transport: 'ipc' });
    expect(dashboard.status).toBe(200);

    // the kernel runs code on node2 in the job, with Dask over the session's TLS (a client
    // on the node, over the kernel's Unix sockets: the agent's part is in the pytest suite)
    const client = [
      'import json',
      'from jupyter_client import BlockingKernelClient',
      'kc = BlockingKernelClient()',
      `kc.load_connection_file(${JSON.stringify(`${dir}/kernels/k1/connection.json`)})`,
      'kc.start_channels(); kc.wait_for_ready(timeout=30)',
      'out = []',
      "code = 'import socket, distributed; c = distributed.Client(); print(socket.gethostname(), c.submit(sum, [1, 2, 3]).result(), c.scheduler.address[:6])'",
      "r = kc.execute_interactive(code, timeout=60, output_hook=lambda m: out.append(m['content'].get('text', '')))",
      "print(r['content']['status'], ''.join(out).strip())"
    ].join('\n');
    const ran = await sh(['exec', 'node2', '--user', 'alice', '--', PYTHON, '-'], client);
    expect(ran.stdout.trim()).toBe('ok node2 6 tls://');
    const mode = await onLogin(`stat -c %a ${dir}/kernels/k1/connection.json`);
    expect(mode.stdout.trim()).toBe('600');

    // scancel: SIGTERM to the helper, which stops kernels and Dask and says so
    expect((await onLogin(slurm.cancelCommand(id))).code).toBe(0);
    await waitFor(id, s => s.phase === 'ended', 30_000);
    const final = JSON.parse((await onLogin(`cat ${dir}/state.json`)).stdout);
    expect(final).toMatchObject({ status: 'stopping', kernels: { k1: { alive: false } } });
    expect(final.reason).toContain('SIGTERM');
    // nothing of the session is left on the node (the helper, kernel, scheduler, worker)
    const ps = `ssh -o BatchMode=yes node2 "ps -u alice -o pid=,etimes=,args= | grep -F '${dir}' | grep -v grep || true"`;
    let left = '';
    for (let i = 0; i < 40; i++) {
      left = (await onLogin(ps)).stdout.trim();
      if (!left) {
        break;
      }
      await sleep(250);
    }
    expect(left).toBe('');
  }, 150_000);
});
