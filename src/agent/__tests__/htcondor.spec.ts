/**
 * The HTCondor adapter against the samples in fixtures/htcondor/ (sources and what was
 * composed in fixtures/htcondor/README.md), and its commands against a real /bin/sh with
 * stand-in condor_submit / condor_q / condor_history programs.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import type { IResources } from '../../common/api';
import { ATTRIBUTES, HtcondorAdapter, memoryMegabytes, parseAds, remoteNode } from '../schedulers/htcondor';
import { InvalidRequestError, SchedulerUnavailableError, type ICommandResult } from '../schedulers/types';
import { runWithFake } from './helpers/fake-command';
import { readFixture, refusal, scriptTail, SETUP, spec } from './helpers/adapters';

interface IFixture extends ICommandResult {
  description: string;
  source: string;
  adapted: string;
  command: string;
  jobIds: string[];
}

function fixture(name: string): IFixture {
  return readFixture<IFixture>('htcondor', name);
}

const condor = new HtcondorAdapter();

describe('htcondor: validate', () => {
  it('accepts a full, valid request', () => {
    expect(() =>
      condor.validate({
        account: 'group_physics',
        walltime: '1-12:00:00',
        cpus: 8,
        memory: '32G',
        gpus: 2,
        extraDirectives: [
          'requirements = (OpSysMajorVer == 9) && (Machine != "bad.example.org")',
          '+ProjectName = "lab"',
          'request_disk = 10G'
        ]
      })
    ).not.toThrow();
    expect(() => condor.validate({})).not.toThrow();
  });

  it.each<[keyof IResources, unknown]>([
    ['partition', 'normal'], // HTCondor has no queues
    ['account', 'grp\nqueue 100'],
    ['account', '$(Cluster)'],
    ['walltime', 'abc'],
    ['walltime', '0'],
    ['cpus', 0],
    ['cpus', '4; id'],
    ['memory', '4GB'],
    ['memory', '0'],
    ['gpus', -1],
    ['gpus', 65]
  ])('refuses %s = %j, naming the field and the value', (field, value) => {
    const err = refusal(() => condor.validate({ [field]: value } as IResources));
    expect(err.field).toBe(field);
    expect(err.message).toContain(JSON.stringify(value).slice(0, 20));
  });

  it.each([
    'requirements = x\nqueue 1000',
    'requirements = $ENV(HOME)',
    'arguments = $(Process)',
    'requirements = a \\',
    'queue = 5',
    'Queue = 5',
    'include = /etc/passwd',
    'include : /tmp/evil.sub',
    'include command : id',
    'if true',
    'executable = /bin/sh',
    'arguments = -c id',
    'universe = local',
    'output = /tmp/x',
    'log = /tmp/x',
    'initialdir = /',
    'periodic_remove = false',
    'request_cpus = 64',
    'request_memory = 1T',
    '+MaxRuntime = 999999',
    'accounting_group = other',
    'requirements',
    'requirements =',
    '= 5',
    ''
  ])('refuses the extra directive %j', d => {
    const err = refusal(() => condor.validate({ extraDirectives: [d] }));
    expect(err.field).toBe('extraDirectives');
  });

  it('refuses extraDirectives that is not a list, and request_gpus tricks together with gpus', () => {
    expect(refusal(() => condor.validate({ extraDirectives: 'x = 1' as unknown as string[] })).field).toBe(
      'extraDirectives'
    );
    expect(() => condor.validate({ extraDirectives: ['require_gpus = Capability >= 8.0'] })).not.toThrow();
    expect(
      refusal(() => condor.validate({ gpus: 1, extraDirectives: ['require_gpus = Capability >= 8.0'] })).field
    ).toBe('extraDirectives');
  });

  it('converts memory to megabytes', () => {
    expect(memoryMegabytes('4G')).toBe(4096);
    expect(memoryMegabytes('500M')).toBe(500);
    expect(memoryMegabytes('500')).toBe(500);
    expect(memoryMegabytes('1025K')).toBe(2);
    expect(memoryMegabytes('1T')).toBe(1048576);
  });
});

describe('htcondor: renderScript', () => {
  it('writes the submit description as #CONDOR lines, then setup lines and exec of the command', () => {
    const script = condor.renderScript(
      spec({
        resources: {
          account: 'group_physics',
          walltime: '2:00:00',
          cpus: 4,
          memory: '8G',
          gpus: 1,
          extraDirectives: ['requirements = (OpSysMajorVer == 9)', '+ProjectName = "lab"']
        },
        setup: SETUP
      })
    );
    expect(script).toBe(
      [
        '#!/bin/sh',
        '# jupyterlab-remote-cluster session (generated; edits are overwritten)',
        '# submit description (condor_submit reads the #CONDOR lines; executable = this script):',
        '#CONDOR universe = vanilla',
        '#CONDOR batch_name = jrc-ab12cd',
        '#CONDOR initialdir = /home/alice/.jupyter-remote-cluster/sessions/ab12cd',
        '#CONDOR output = /home/alice/.jupyter-remote-cluster/sessions/ab12cd/job.out',
        '#CONDOR error = /home/alice/.jupyter-remote-cluster/sessions/ab12cd/job.err',
        '#CONDOR accounting_group = group_physics',
        '#CONDOR request_cpus = 4',
        '#CONDOR request_memory = 8192',
        '#CONDOR request_gpus = 1',
        '#CONDOR +MaxRuntime = 7200',
        '#CONDOR periodic_remove = (JobStatus == 2) && (time() - JobCurrentStartDate > 7200)',
        '#CONDOR requirements = (OpSysMajorVer == 9)',
        '#CONDOR +ProjectName = "lab"',
        '#CONDOR queue 1',
        '',
        ...scriptTail('HTCondor')
      ].join('\n')
    );
  });

  it('leaves out what is not set', () => {
    const script = condor.renderScript(spec({ resources: { gpus: 0 } }));
    expect(script).not.toMatch(/request_|MaxRuntime|periodic_remove|accounting_group/);
    expect(script).toContain('#CONDOR queue 1\n');
  });

  it('validates the resources and every value it writes', () => {
    expect(refusal(() => condor.renderScript(spec({ resources: { cpus: 0 } }))).field).toBe('cpus');
    expect(refusal(() => condor.renderScript(spec({ name: '$(Cluster)' }))).field).toBe('name');
    expect(refusal(() => condor.renderScript(spec({ workdir: 'relative/dir' }))).field).toBe('workdir');
    expect(refusal(() => condor.renderScript(spec({ stdoutPath: '/home/a b/out' }))).field).toBe('stdoutPath');
    expect(refusal(() => condor.renderScript(spec({ stderrPath: '/x\n#CONDOR queue 100' }))).field).toBe('stderrPath');
    expect(refusal(() => condor.renderScript(spec({ command: 'python helper.py\n#CONDOR queue 9' }))).field).toBe(
      'command'
    );
    // submitCommand feeds every #CONDOR line to condor_submit
    expect(refusal(() => condor.renderScript(spec({ setup: ['#CONDOR queue 100'] }))).field).toBe('setup');
    expect(refusal(() => condor.renderScript(spec({ setup: [' # condor x'] }))).field).toBe('setup');
  });
});

/** Run `command` in /bin/sh with `programs` (name → sh body) first on PATH. */
function runSh(command: string, programs: Record<string, string>): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'jrc-condor-'));
  try {
    for (const [name, body] of Object.entries(programs)) {
      writeFileSync(path.join(dir, name), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
    }
    return execFileSync('/bin/sh', ['-c', command], {
      env: { PATH: `${dir}:/usr/bin:/bin` },
      encoding: 'utf8',
      cwd: dir
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
const PRINT_ARGS = 'for a in "$@"; do printf \'[%s]\\n\' "$a"; done';

describe('htcondor: commands', () => {
  it('pipes the #CONDOR lines to condor_submit and names the script as the executable', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'jrc-condor-script-'));
    try {
      const p = path.join(dir, 'job.sh');
      writeFileSync(p, condor.renderScript(spec({ resources: { cpus: 2 }, setup: ['echo "#CONDOR queue 5"'] })));
      const out = runSh(condor.submitCommand(p), { condor_submit: `${PRINT_ARGS}; echo ---; cat` });
      expect(out).toBe(
        [
          '[-append]',
          `[executable = ${p}]`,
          '[-]',
          '---',
          'universe = vanilla',
          'batch_name = jrc-ab12cd',
          'initialdir = /home/alice/.jupyter-remote-cluster/sessions/ab12cd',
          'output = /home/alice/.jupyter-remote-cluster/sessions/ab12cd/job.out',
          'error = /home/alice/.jupyter-remote-cluster/sessions/ab12cd/job.err',
          'request_cpus = 2',
          'queue 1',
          ''
        ].join('\n')
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(condor.submitCommand('rcfix/ok.sh')).toBe(
      "sed -n 's/^#CONDOR //p' rcfix/ok.sh | condor_submit -append 'executable = rcfix/ok.sh' -"
    );
  });

  it('refuses script paths the submit language would misread', () => {
    for (const bad of ['/home/a b/job.sh', '/x/$(Cluster).sh', "/x/it's.sh", '/x\n/y', '-rf', '']) {
      expect(() => condor.submitCommand(bad)).toThrow(InvalidRequestError);
    }
  });

  const QUEUE_OK =
    'printf \'[\\n{\\n  "ClusterId": 5,\\n  "ProcId": 0,\\n  "JobStatus": 2\\n}\\n]\\n\'; echo "ARGS:$*" >&2';
  it('asks condor_q once, and condor_history only when condor_q missed a job', () => {
    const attrs = ATTRIBUTES.join(',');
    // every job in the queue: no condor_history
    let out = runSh(condor.statusCommand(['5.0']), { condor_q: QUEUE_OK, condor_history: 'echo HISTORY-CALLED' });
    expect(out).toContain('@@jrc condor_q exit 0@@');
    expect(out).not.toContain('HISTORY');
    // one missing: condor_history with a constraint on exactly the ids, -limit = number of ids
    out = runSh(condor.statusCommand(['5.0', '6.1', '5.0']), {
      condor_q: `${QUEUE_OK}; ${PRINT_ARGS} >&2`,
      condor_history: PRINT_ARGS
    });
    expect(out).toBe(
      [
        '[',
        '{',
        '  "ClusterId": 5,',
        '  "ProcId": 0,',
        '  "JobStatus": 2',
        '}',
        ']',
        '@@jrc condor_q exit 0@@',
        '[-json]',
        '[-limit]',
        '[2]',
        '[-attributes]',
        `[${attrs}]`,
        '[-constraint]',
        '[(ClusterId == 5 && ProcId == 0) || (ClusterId == 6 && ProcId == 1)]',
        '@@jrc condor_history exit 0@@',
        ''
      ].join('\n')
    );
    // condor_q failing: its exit code is reported, condor_history is not run
    out = runSh(condor.statusCommand(['5.0']), {
      condor_q: 'echo "-- Failed to fetch ads from: <1.2.3.4:9618> : s" >&2; exit 1',
      condor_history: 'echo HISTORY-CALLED'
    });
    expect(out).toBe('\n@@jrc condor_q exit 1@@\n');
  });

  it('passes the attributes and ids to condor_q as separate words', () => {
    const out = runSh(condor.statusCommand(['5.0', '6.1']), { condor_q: PRINT_ARGS, condor_history: 'true' });
    expect(
      out.startsWith(
        ['[-json]', '[-attributes]', `[${ATTRIBUTES.join(',')}]`, '[5.0]', '[6.1]', '@@jrc condor_q exit 0@@'].join(
          '\n'
        )
      )
    ).toBe(true);
  });

  it('refuses job ids that are not cluster.proc', () => {
    for (const bad of ['', '123', 'abc', '1.0;reboot', '1.0 2.0', '$(id)', '-1.0', '1.0.0']) {
      expect(() => condor.statusCommand(['1.0', bad])).toThrow(InvalidRequestError);
      expect(() => condor.cancelCommand(bad)).toThrow(InvalidRequestError);
    }
    expect(() => condor.statusCommand([])).toThrow(InvalidRequestError);
    expect(runWithFake(condor.cancelCommand('123.0'), 'condor_rm', 'Job 123.0 marked for removal', 0)).toMatchObject({
      code: 0
    });
    expect(runWithFake(condor.cancelCommand('123.0'), 'condor_rm', '', 0).stdout).toContain('args: 123.0');
    const gone = "Couldn't find/remove all jobs matching constraint (ClusterId == 123 && ProcId == 0)";
    expect(runWithFake(condor.cancelCommand('123.0'), 'condor_rm', gone, 1).code).toBe(0);
    const down = runWithFake(condor.cancelCommand('123.0'), 'condor_rm', 'Failed to connect to local queue manager', 1);
    expect(down.code).toBe(1);
    expect(down.stderr).toContain('queue manager');
  });
});

describe('htcondor: parseSubmit', () => {
  it('returns cluster.0', () => {
    expect(condor.parseSubmit(fixture('condor_submit-ok'))).toBe('31.0');
    expect(condor.parseSubmit({ code: 0, stdout: '123.0 - 123.0\n', stderr: '' })).toBe('123.0'); // -terse
    expect(() => condor.parseSubmit({ code: 0, stdout: 'Submitting job(s).\n', stderr: '' })).toThrow('no job id');
  });

  it("a refusal is an InvalidRequestError with condor_submit's words", () => {
    const err = refusal(() => condor.parseSubmit(fixture('condor_submit-parse-error')));
    expect(err.message).toBe(
      'HTCondor refused the job: Parse error in expression: (RequestMemory = 3000 = None; ^^^; Error in submit file)'
    );
    expect(err.field).toBe('memory');
    // the offending command names the field, not words inside its expression
    const req = refusal(() =>
      condor.parseSubmit({
        code: 1,
        stdout: 'Submitting job(s)\n',
        stderr:
          '\nERROR: Parse error in expression: \n\trequirements = (TARGET.Memory >\n\t^^^\n\nError in submit file\n'
      })
    );
    expect(req.field).toBe('extraDirectives');
  });

  it('a schedd that does not answer is unavailable, not a refusal', () => {
    expect(() => condor.parseSubmit(fixture('condor_submit-no-schedd'))).toThrow(SchedulerUnavailableError);
    expect(() => condor.parseSubmit({ code: null, stdout: '', stderr: '' })).toThrow(SchedulerUnavailableError);
  });
});

describe('htcondor: parseStatus', () => {
  const parse = (name: string) => {
    const fx = fixture(name);
    const m = condor.parseStatus(fx.jobIds, fx);
    expect([...m.keys()]).toEqual(fx.jobIds);
    return m;
  };

  it('2 Running → running: node from RemoteHost, time left from MaxRuntime', () => {
    expect(parse('status-running').get('10526.0')).toEqual({
      jobId: '10526.0',
      phase: 'running',
      nativeState: 'Running',
      node: 'apl01.ib0.cm.linea.gov.br',
      timeLeftSeconds: 1200
    });
  });

  it('1 Idle → pending with the rejection reason', () => {
    expect(parse('status-idle').get('200.0')).toEqual({
      jobId: '200.0',
      phase: 'pending',
      nativeState: 'Idle',
      reason: 'waiting for a matching machine (no match found)',
      nativeReason: 'no match found'
    });
  });

  it('5 Held → pending and blocked, except while input is being spooled', () => {
    const m = parse('status-held');
    expect(m.get('104098.5')).toEqual({
      jobId: '104098.5',
      phase: 'pending',
      nativeState: 'Held',
      reason: 'held: Input data are being spooled (it will not start until released)',
      nativeReason: 'Input data are being spooled'
    });
    expect(m.get('104098.6')).toMatchObject({
      phase: 'pending',
      nativeState: 'Held',
      blocked: true,
      nativeReason: 'Policy'
    });
  });

  it('jobs that left the queue: from condor_history, or ended "left the queue"', () => {
    const m = parse('status-mixed-history');
    expect(m.get('123.2')).toMatchObject({ phase: 'running', node: 'wn042.example.org' });
    expect(m.get('123.0')).toEqual({ jobId: '123.0', phase: 'ended', nativeState: 'Completed', reason: 'completed' });
    expect(m.get('123.1')).toMatchObject({ phase: 'ended', nativeState: 'Removed', reason: 'walltime reached' });
    expect(m.get('333.3')).toEqual({ jobId: '333.3', phase: 'ended', nativeState: '', reason: 'left the queue' });
  });

  it('schedd unreachable → unknown for every job, never ended', () => {
    const m = parse('status-schedd-down');
    expect([...m.values()].map(s => s.phase)).toEqual(['unknown', 'unknown']);
    expect(m.get('123.0')!.reason).toMatch(/^HTCondor schedd not reachable: -- Failed to fetch ads from/);
  });

  it('unknown when the command was killed, condor_q failed, or printed something unexpected', () => {
    const phase = (r: ICommandResult) => condor.parseStatus(['5.0'], r).get('5.0')!.phase;
    expect(phase({ code: null, stdout: '', stderr: '' })).toBe('unknown');
    expect(phase({ code: 127, stdout: '', stderr: 'sh: condor_q: not found' })).toBe('unknown');
    expect(phase({ code: 0, stdout: '@@jrc condor_q exit 127@@\n', stderr: 'sh: 1: condor_q: not found' })).toBe(
      'unknown'
    );
    expect(phase({ code: 0, stdout: 'Welcome!\n@@jrc condor_q exit 0@@\n', stderr: '' })).toBe('unknown');
    // condor_q fine but listed nothing, and condor_history failed: the job left the queue, details unknown
    expect(
      condor
        .parseStatus(['5.0'], {
          code: 0,
          stdout: '@@jrc condor_q exit 0@@\nERROR: history file not found\n@@jrc condor_history exit 1@@\n',
          stderr: ''
        })
        .get('5.0')
    ).toMatchObject({ phase: 'ended', reason: 'left the queue' });
  });

  const one = (ad: Record<string, unknown>) =>
    condor
      .parseStatus(['7.0'], {
        code: 0,
        stdout: `${JSON.stringify([{ ClusterId: 7, ProcId: 0, ...ad }])}\n@@jrc condor_q exit 0@@\n`,
        stderr: ''
      })
      .get('7.0')!;
  it.each<[Record<string, unknown>, string, string, string | undefined]>([
    [{ JobStatus: 0 }, 'pending', 'Unexpanded', 'waiting for a matching machine'],
    [{ JobStatus: 3 }, 'ended', 'Removed', 'cancelled'],
    [{ JobStatus: 3, RemoveReason: 'via condor_rm (by user alice)' }, 'ended', 'Removed', 'cancelled'],
    [{ JobStatus: 4, ExitCode: 3 }, 'ended', 'Completed', 'failed (exit code 3)'],
    [{ JobStatus: 4, ExitBySignal: true, ExitSignal: 9 }, 'ended', 'Completed', 'killed by signal 9'],
    [{ JobStatus: 5 }, 'pending', 'Held', 'held (it will not start until released)'],
    [{ JobStatus: 6, RemoteHost: 'slot1@n1' }, 'running', 'TransferringOutput', 'transferring output'],
    [{ JobStatus: 7, RemoteHost: 'slot1@n1' }, 'running', 'Suspended', 'suspended by HTCondor'],
    [{ JobStatus: 9 }, 'unknown', '9', 'unrecognised HTCondor JobStatus 9']
  ])('%j → %s', (ad, phase, state, reason) => {
    const st = one(ad);
    expect(st.phase).toBe(phase);
    expect(st.nativeState).toBe(state);
    expect(st.reason).toBe(reason);
    if (phase === 'running') {
      expect(st.node).toBe('n1');
      expect(st.timeLeftSeconds).toBeUndefined(); // no MaxRuntime
    }
  });
});

describe('htcondor: helpers', () => {
  it('takes the node from RemoteHost', () => {
    expect(remoteNode('slot1@node.example.org')).toBe('node.example.org');
    expect(remoteNode('slot1_3@wn042')).toBe('wn042');
    expect(remoteNode('node7')).toBe('node7');
    expect(remoteNode('')).toBeUndefined();
    expect(remoteNode(undefined)).toBeUndefined();
  });

  it('reads -json output, including the empty output of a query that matched nothing', () => {
    expect(parseAds('')).toEqual([]);
    expect(parseAds('[\n{\n  "ClusterId": 1\n}\n]\n')).toEqual([{ ClusterId: 1 }]);
    expect(parseAds('nonsense')).toBeUndefined();
    expect(parseAds('[ broken')).toBeUndefined();
  });
});
