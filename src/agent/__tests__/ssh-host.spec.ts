/**
 * The plain-SSH-host adapter: its commands run for real here (sh, setsid, ps, /proc,
 * timeout on this Linux machine), with a temporary HOME; only the SSH hop is left out
 * (the session manager runs the same strings over SSH).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { RECORD_DIR, SshHostAdapter, STATUS_END } from '../schedulers/ssh-host';
import { SchedulerUnavailableError, type ICommandResult, type IJobStatus } from '../schedulers/types';
import { refusal, spec } from './helpers/adapters';

const host = execFileSync('uname', ['-n'], { encoding: 'utf8' }).trim();
const adapter = new SshHostAdapter({ killGraceSeconds: 2 });

let home: string;
let jobs: string[] = [];

beforeEach(() => {
  home = mkdtempSync(path.join(os.tmpdir(), 'jrc-ssh-host-'));
  jobs = [];
});

afterEach(() => {
  // never leave a test's job behind, whatever the test did
  for (const id of jobs) {
    run(adapter.cancelCommand(id));
  }
  rmSync(home, { recursive: true, force: true });
});

/** Run a command as the session manager would on the host: `sh -c`, with our HOME. */
function run(command: string, timeoutMs = 30_000): ICommandResult {
  const r = spawnSync('sh', ['-c', command], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home },
    encoding: 'utf8',
    timeout: timeoutMs
  });
  return { code: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/** Write the job script for `command` and submit it; returns the job id and the session dir. */
function submit(command: string, walltime?: string): { id: string; dir: string; ms: number } {
  const dir = mkdtempSync(path.join(home, 'session-'));
  const script = adapter.renderScript(
    spec({
      workdir: dir,
      stdoutPath: `${dir}/job.out`,
      stderrPath: `${dir}/job.err`,
      resources: walltime ? { walltime } : {},
      setup: ['export JRC_TEST_SETUP=from-setup'],
      command
    })
  );
  writeFileSync(`${dir}/job.sh`, script, { mode: 0o700 });
  const t = Date.now();
  const id = adapter.parseSubmit(run(adapter.submitCommand(`${dir}/job.sh`)));
  jobs.push(id);
  return { id, dir, ms: Date.now() - t };
}

function status(ids: string[]): Map<string, IJobStatus> {
  return adapter.parseStatus(ids, run(adapter.statusCommand(ids)));
}

async function until<T>(what: () => T, ok: (v: T) => boolean, ms = 15_000): Promise<T> {
  const end = Date.now() + ms;
  let v = what();
  while (!ok(v) && Date.now() < end) {
    await new Promise(r => setTimeout(r, 200));
    v = what();
  }
  return v;
}

const pidOf = (id: string) => Number(id.split(':')[1]);
const alive = (pid: number) => existsSync(`/proc/${pid}`) && !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
const ps = (pid: number, field: string) =>
  execFileSync('ps', ['-o', `${field}=`, '-p', String(pid)], { encoding: 'utf8' }).trim();

describe('ssh-host: resources', () => {
  it.each([
    ['partition', { partition: 'debug' }],
    ['account', { account: 'proj' }],
    ['qos', { qos: 'short' }],
    ['reservation', { reservation: 'r1' }],
    ['constraint', { constraint: 'bigmem' }],
    ['cpus', { cpus: 4 }],
    ['memory', { memory: '4G' }],
    ['memoryPerCpu', { memoryPerCpu: '1G' }],
    ['gpus', { gpus: 1 }],
    ['extraDirectives', { extraDirectives: ['--exclusive'] }]
  ])('refuses %s, naming the field', (field, resources) => {
    const err = refusal(() => adapter.validate(resources));
    expect(err.field).toBe(field);
    expect(err.message).toMatch(/plain SSH host/);
    expect(() => adapter.renderScript(spec({ resources }))).toThrow(/plain SSH host/);
  });

  it('accepts a walltime, no GPUs and empty lists; refuses a bad walltime', () => {
    expect(() => adapter.validate({ walltime: '01:00:00', gpus: 0, extraDirectives: [] })).not.toThrow();
    expect(refusal(() => adapter.validate({ walltime: 'soon' })).field).toBe('walltime');
  });

  it('enforces the walltime with timeout, and runs without one when none is given', () => {
    const timed = adapter.renderScript(spec({ resources: { walltime: '2:00:00' } }));
    expect(timed).toMatch(/^# jrc-walltime-seconds: 7200$/m);
    expect(timed).toMatch(/^exec timeout --foreground --kill-after=30 7200 \/opt\/py\/bin\/python /m);
    const open = adapter.renderScript(spec());
    expect(open).not.toMatch(/timeout|jrc-walltime/);
    expect(open).toMatch(/^exec \/opt\/py\/bin\/python /m);
    expect(open).toMatch(/^exec >>\/home\/alice\/.+\/job\.out 2>>\/home\/alice\/.+\/job\.err <\/dev\/null$/m);
  });

  it('refuses setup lines that would fake the walltime marker, and bad ids', () => {
    expect(refusal(() => adapter.renderScript(spec({ setup: ['# jrc-walltime-seconds: 1'] }))).field).toBe('setup');
    for (const id of ['123', 'h:1', 'h;rm:1:2', 'h:1:2 x']) {
      expect(refusal(() => adapter.statusCommand([id])).field).toBe('jobId');
      expect(refusal(() => adapter.cancelCommand(id)).field).toBe('jobId');
    }
  });
});

describe('ssh-host: real processes', () => {
  it('starts the script detached in its own session, reports it running, and cancels every process of it', async () => {
    // the "helper" starts a child in a session of its own, as the helper does for kernels
    const { id, dir, ms } = submit(
      'sh -c \'echo "id=$JRC_SSH_JOB_ID setup=$JRC_TEST_SETUP cwd=$(pwd)"; setsid sleep 300 & echo "kid=$!"; exec sleep 300\'',
      '1:00:00'
    );
    // the submit command returned at once: nothing of the job kept its output open
    expect(ms).toBeLessThan(5_000);
    const [h, pidText, start] = id.split(':');
    expect(h).toBe(host);
    const pid = Number(pidText);
    expect(alive(pid)).toBe(true);
    // own session and process group, no terminal
    expect(ps(pid, 'sid')).toBe(String(pid));
    expect(ps(pid, 'pgid')).toBe(String(pid));
    expect(ps(pid, 'tty')).toBe('?');
    expect(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')[19]).toBe(start);

    const out = await until(
      () => (existsSync(`${dir}/job.out`) ? readFileSync(`${dir}/job.out`, 'utf8') : ''),
      t => /kid=\d+/.test(t)
    );
    expect(out).toContain(`id=${id} setup=from-setup cwd=${dir}`);
    const kid = Number(/kid=(\d+)/.exec(out)![1]);
    expect(ps(kid, 'sid')).toBe(String(kid)); // escaped the job's session
    // stdin of the job is /dev/null
    const jobShell = Number(
      execFileSync('ps', ['-o', 'pid=', '--ppid', String(pid)], { encoding: 'utf8' })
        .trim()
        .split(/\s+/)[0]
    );
    expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8')).toContain('jrc-ssh-job');
    for (const p of [pid, jobShell]) {
      expect(execFileSync('readlink', [`/proc/${p}/fd/0`], { encoding: 'utf8' }).trim()).toBe('/dev/null');
    }
    expect(execFileSync('readlink', [`/proc/${jobShell}/fd/1`], { encoding: 'utf8' }).trim()).toBe(`${dir}/job.out`);

    const running = status([id]).get(id)!;
    expect(running).toMatchObject({ phase: 'running', node: host });
    expect(running.timeLeftSeconds).toBeGreaterThan(3590);
    expect(running.timeLeftSeconds).toBeLessThanOrEqual(3600);

    const cancel = run(adapter.cancelCommand(id));
    expect(cancel).toMatchObject({ code: 0 });
    for (const p of [pid, kid, jobShell]) {
      expect(alive(p)).toBe(false);
    }
    expect(status([id]).get(id)).toMatchObject({ phase: 'ended', reason: 'cancelled' });
    // cancelling again is a no-op
    expect(run(adapter.cancelCommand(id)).code).toBe(0);
  });

  it('kills what ignores SIGTERM after the grace period', async () => {
    const { id } = submit('sh -c \'trap "" TERM; while :; do sleep 1; done\'');
    const pid = pidOf(id);
    const t = Date.now();
    expect(run(adapter.cancelCommand(id)).code).toBe(0);
    expect(Date.now() - t).toBeGreaterThanOrEqual(1_900);
    expect(alive(pid)).toBe(false);
    expect(status([id]).get(id)).toMatchObject({ phase: 'ended', reason: 'cancelled' });
  });

  it('reports how a job ended by itself: completed, failed, walltime reached', async () => {
    const done = submit("sh -c 'exit 0'").id;
    const failed = submit("sh -c 'echo broken >&2; exit 3'").id;
    const timed = submit('sleep 60', '0:02').id;
    const ended = await until(
      () => status([done, failed, timed]),
      m => [...m.values()].every(s => s.phase === 'ended')
    );
    expect(ended.get(done)).toMatchObject({ phase: 'ended', reason: 'completed' });
    expect(ended.get(failed)).toMatchObject({
      phase: 'ended',
      reason: 'failed (the job exited with code 3)',
      nativeReason: 'exit=3'
    });
    expect(ended.get(timed)).toMatchObject({ phase: 'ended', reason: 'walltime reached' });
    expect(alive(pidOf(timed))).toBe(false);
  }, 20_000);

  it('one status command answers for every id; a recycled pid is ended, another host is unknown', () => {
    const { id } = submit('sleep 300');
    const [, pid, start] = id.split(':');
    const recycled = `${host}:${pid}:${Number(start) + 1}`; // same pid, another process
    const vanished = `${host}:4194303:1`;
    const elsewhere = `other-host.example:${pid}:${start}`;
    const command = adapter.statusCommand([id, recycled, vanished, elsewhere]);
    const result = run(command);
    expect(result.stdout.trim().split('\n').pop()).toBe(STATUS_END);
    const m = adapter.parseStatus([id, recycled, vanished, elsewhere], result);
    expect(m.get(id)?.phase).toBe('running');
    expect(m.get(recycled)).toMatchObject({
      phase: 'ended',
      reason: 'the process is gone (killed, or the host restarted)'
    });
    expect(m.get(vanished)?.phase).toBe('ended');
    expect(m.get(elsewhere)).toMatchObject({ phase: 'unknown' });
    expect(m.get(elsewhere)?.reason).toContain(`reached ${host}`);
    // cancel refuses another host's job instead of killing a local pid
    const other = run(adapter.cancelCommand(elsewhere));
    expect(other.code).toBe(1);
    expect(other.stderr).toContain('runs on other-host.example');
    expect(alive(Number(pid))).toBe(true);
  });

  it('keeps one record per job in the remote home', () => {
    const { id } = submit("sh -c 'exit 0'", '10');
    const record = path.join(home, RECORD_DIR, id);
    expect(readFileSync(record, 'utf8')).toMatch(/^walltime=600\n/);
  });
});

describe('ssh-host: outputs that are not answers', () => {
  const ids = [`${host}:1:1`];
  it('a cut-off or failed status command makes every job unknown, never ended', () => {
    expect(adapter.parseStatus(ids, { code: 0, stdout: `${ids[0]} ended\n`, stderr: '' }).get(ids[0])?.phase).toBe(
      'unknown'
    );
    expect(adapter.parseStatus(ids, { code: null, stdout: '', stderr: '' }).get(ids[0])?.phase).toBe('unknown');
    expect(
      adapter.parseStatus(ids, { code: 255, stdout: '', stderr: 'Connection closed' }).get(ids[0])?.reason
    ).toContain('Connection closed');
  });

  it('a submission that printed no id is an error; one that did not finish is "unavailable"', () => {
    expect(() =>
      adapter.parseSubmit({
        code: 2,
        stdout: '',
        stderr: 'setsid not found: plain SSH hosts need Linux with util-linux\n'
      })
    ).toThrow(/setsid not found/);
    expect(() => adapter.parseSubmit({ code: null, stdout: '', stderr: '' })).toThrow(SchedulerUnavailableError);
  });

  it('a host name that would make an unparsable id is refused before the job starts', () => {
    const bin = mkdtempSync(path.join(home, 'bin-'));
    writeFileSync(path.join(bin, 'uname'), "#!/bin/sh\necho 'my host'\n", { mode: 0o755 });
    const dir = mkdtempSync(path.join(home, 'session-'));
    writeFileSync(
      `${dir}/job.sh`,
      adapter.renderScript(
        spec({ workdir: dir, stdoutPath: `${dir}/job.out`, stderrPath: `${dir}/job.err`, command: 'touch ran' })
      )
    );
    const r = spawnSync('sh', ['-c', adapter.submitCommand(`${dir}/job.sh`)], {
      env: { PATH: `${bin}:${process.env.PATH}`, HOME: home },
      encoding: 'utf8',
      timeout: 30_000
    });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('the job did not start: unsupported host name: my host');
    expect(existsSync(`${dir}/ran`)).toBe(false);
  });

  it('a missing script is reported by the real submit command', () => {
    const r = run(adapter.submitCommand(`${home}/nope/job.sh`));
    expect(r.code).toBe(2);
    expect(() => adapter.parseSubmit(r)).toThrow(/cannot read the job script .*nope\/job\.sh/);
  });
});
