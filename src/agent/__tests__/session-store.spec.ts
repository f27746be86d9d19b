import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { SESSIONS_FILE_VERSION, SessionStore, type IStoredSession } from '../sessions/store';

interface IRec extends IStoredSession {
  clusterKey: string;
  profile: string;
}

const NOW = Date.parse('2026-12-05T12:00:00Z');
const DAY = 86_400_000;

function rec(id: string, state: string, daysAgo: number): IRec {
  return {
    id,
    state,
    updatedAt: new Date(NOW - daysAgo * DAY).toISOString(),
    clusterKey: 'alice@login:22',
    profile: 'hpc'
  };
}

describe('SessionStore (sessions.json)', () => {
  let dir: string;
  let file: string;

  beforeEach(async () => {
    dir = path.join(await fs.mkdtemp(path.join(os.tmpdir(), 'jrc-store-')), 'state');
    file = path.join(dir, 'sessions.json');
  });

  afterEach(async () => {
    await fs.rm(path.dirname(dir), { recursive: true, force: true });
  });

  const store = (days = 30, sessions = 200) => new SessionStore<IRec>(dir, { days, sessions }, () => NOW);
  const asideFiles = async () => (await fs.readdir(dir)).filter(f => f.startsWith('sessions.json.corrupt-'));

  it('starts empty without a file, and writes a versioned, private one', async () => {
    const s = store();
    expect(await s.load()).toEqual({ records: [] });
    await s.save([rec('aaaaaa', 'running', 0)]);
    expect(JSON.parse(await fs.readFile(file, 'utf8'))).toEqual({
      version: SESSIONS_FILE_VERSION,
      sessions: [rec('aaaaaa', 'running', 0)]
    });
    expect((await fs.stat(file)).mode & 0o777).toBe(0o600);
    expect((await fs.stat(dir)).mode & 0o777).toBe(0o700);
    expect(await s.load()).toEqual({ records: [rec('aaaaaa', 'running', 0)] });
  });

  it('reads the bare list of an earlier release', async () => {
    await fs.mkdir(dir, { recursive: true });
    await fs.writeFile(file, JSON.stringify([rec('aaaaaa', 'queued', 1)]));
    expect(await store().load()).toEqual({ records: [rec('aaaaaa', 'queued', 1)] });
  });

  it.each([
    ['truncated JSON', '{"version": 1, "sessions": [{"id": "aa', 'not valid JSON'],
    ['another document', '{"hello": "world"}', 'not a sessions file'],
    ['a newer format', JSON.stringify({ version: SESSIONS_FILE_VERSION + 1, sessions: [] }), 'newer release']
  ])('keeps a file it cannot use aside (%s), says where, and never writes over it', async (_, text, why) => {
    await fs.mkdir(dir, { recursive: true });
    await fs.writeFile(file, text);
    const s = store();
    const { records, problem } = await s.load();
    expect(records).toEqual([]);
    expect(problem).toContain(why);
    const aside = await asideFiles();
    expect(aside).toEqual(['sessions.json.corrupt-2026-12-05T12-00-00-000Z']);
    expect(problem).toContain(path.join(dir, aside[0]));
    expect(await fs.readFile(path.join(dir, aside[0]), 'utf8')).toBe(text);
    await s.save([rec('bbbbbb', 'running', 0)]);
    expect(await fs.readFile(path.join(dir, aside[0]), 'utf8')).toBe(text);
  });

  it('keeps the usable entries of a damaged file, and a copy of the whole file', async () => {
    const text = JSON.stringify({ version: 1, sessions: [rec('aaaaaa', 'running', 0), { id: '../etc' }, 42] });
    await fs.mkdir(dir, { recursive: true });
    await fs.writeFile(file, text);
    const { records, problem } = await store().load();
    expect(records).toEqual([rec('aaaaaa', 'running', 0)]);
    expect(problem).toContain('2 of its 3 entries are not sessions');
    expect(await fs.readFile(path.join(dir, (await asideFiles())[0]), 'utf8')).toBe(text);
  });

  it('refuses to go on over a sessions file it cannot read at all', async () => {
    await fs.mkdir(file, { recursive: true }); // a directory where the file should be
    await expect(store().load()).rejects.toThrow(`Cannot read ${file}`);
  });

  it('keeps every session that has not ended, and ended ones by age and count', () => {
    const records = [
      rec('000001', 'running', 400),
      rec('000002', 'queued', 90),
      rec('000003', 'ended', 1),
      rec('000004', 'ended', 2),
      rec('000005', 'ended', 3),
      rec('000006', 'ended', 31)
    ];
    const ids = (rs: IRec[]) => rs.map(r => r.id);
    expect(ids(store(30, 200).retained(records))).toEqual(['000001', '000002', '000003', '000004', '000005']);
    expect(ids(store(30, 2).retained(records))).toEqual(['000001', '000002', '000003', '000004']);
    expect(ids(store(2.5, 200).retained(records))).toEqual(['000001', '000002', '000003', '000004']);
    expect(ids(store(0, 0).retained(records))).toEqual(['000001', '000002']);
  });
});
