/** What the sidebar and status bar count down from. */
import type { ISession } from '../../common/api';
import { timeLeftNow } from '../format';

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
