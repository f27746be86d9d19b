/** What the sidebar and status bar count down from. */
import { nullTranslator } from '@jupyterlab/translation';

import type { ISession, IUsage } from '../../common/api';
import { describeAccounting, describeUsage, formatBytes, timeLeftNow } from '../format';

const base: ISession = {
  id: 'abc123',
  profile: 'p',
  cluster: 'p',
  resources: {},
  state: 'running',
  createdAt: '2026-12-06T10:00:00.000Z',
  updatedAt: '2026-12-06T10:00:00.000Z'
};

describe('walltime left', () => {
  it('counts down from the absolute end, whatever moved updatedAt since', () => {
    const now = Date.parse('2026-12-06T10:30:00.000Z');
    const s = { ...base, timeLeftSeconds: 3600, endsAt: '2026-12-06T11:00:00.000Z' };
    expect(timeLeftNow(s, now)).toBe(1800);
    // a kernel started at 10:29: updatedAt moved, the end did not
    expect(timeLeftNow({ ...s, updatedAt: '2026-12-06T10:29:00.000Z' }, now)).toBe(1800);
  });

  it('a session saved by an earlier release: seconds left as of updatedAt', () => {
    const now = Date.parse('2026-12-06T10:30:00.000Z');
    expect(timeLeftNow({ ...base, timeLeftSeconds: 3600 }, now)).toBe(1800);
    expect(timeLeftNow(base, now)).toBeUndefined();
  });
});

describe('the efficiency card', () => {
  const trans = nullTranslator.load('jupyterlab');
  const hour: IUsage = {
    since: 1_000_000,
    at: 1_003_600,
    cpuSeconds: 5400,
    peakCores: 2.6,
    rssBytes: 300 * 1024 ** 2,
    peakRssBytes: 1.5 * 1024 ** 3,
    cpus: 16
  };

  it('says what was used, of what was asked, and suggests fewer CPUs when most stayed idle', () => {
    expect(describeUsage(hour, trans)).toEqual({
      used: 'Used: 1h 30m of CPU time · at most 2.6 of 16 CPUs busy · memory 300 MB (peak 1.5 GB) · 9% of the CPU time asked for',
      suggestion: 'Asked for 16 CPUs, used at most 3: fewer would do next time.'
    });
  });

  it("shows the job's GPUs, and says when they were never busy", () => {
    const gpu = {
      count: 2,
      peakPercent: 97.4,
      meanPercent: 41.2,
      memPeakBytes: 30 * 1024 ** 3,
      memTotalBytes: 80 * 1024 ** 3
    };
    const busy = describeUsage({ ...hour, peakCores: 12, gpu }, trans);
    expect(busy.gpu).toBe('2 GPUs: at most 97% busy (mean 41%) · memory peak 30 GB of 80 GB');
    expect(busy.suggestion).toBeUndefined();
    const one = describeUsage({ ...hour, gpu: { ...gpu, count: 1, peakPercent: 2, meanPercent: 0.4 } }, trans);
    expect(one.gpu).toBe('GPU: at most 2% busy (mean 0%) · memory peak 30 GB of 80 GB');
    expect(one.suggestion).toBe(
      'Asked for 16 CPUs, used at most 3: fewer would do next time. The GPUs were never busy: a job without GPUs would do next time.'
    );
    expect(describeUsage(hour, trans).gpu).toBeUndefined();
  });

  it('no suggestion for a young session, one that used its CPUs, or where the CPUs are unknown', () => {
    expect(describeUsage({ ...hour, at: hour.since + 300 }, trans).suggestion).toBeUndefined();
    expect(describeUsage({ ...hour, peakCores: 12 }, trans).suggestion).toBeUndefined();
    const { cpus: _c, ...unknown } = hour;
    expect(describeUsage(unknown, trans)).toEqual({
      used: 'Used: 1h 30m of CPU time · at most 2.6 CPUs busy · memory 300 MB (peak 1.5 GB)'
    });
  });

  it('bytes as batch systems count them', () => {
    expect([formatBytes(512), formatBytes(1536), formatBytes(20 * 1024 ** 2), formatBytes(-1)]).toEqual([
      '512 B',
      '1.5 KB',
      '20 MB',
      '0 B'
    ]);
  });
});

describe("the batch system's accounting line", () => {
  const trans = nullTranslator.load('jupyterlab');

  it('says the figures the batch system gave, and only those', () => {
    expect(
      describeAccounting(
        {
          source: 'sacct',
          state: 'COMPLETED',
          exitCode: '0:0',
          elapsedSeconds: 185,
          cpuSeconds: 62.5,
          maxRssBytes: 1.2 * 1024 ** 3
        },
        trans
      )
    ).toBe(
      "The batch system's accounting (sacct): 1m 03s of CPU time · peak memory 1.2 GB · ran 3m 05s · COMPLETED (exit 0:0)"
    );
    expect(describeAccounting({ source: 'bjobs', state: 'DONE' }, trans)).toBe(
      "The batch system's accounting (bjobs): DONE"
    );
  });
});
