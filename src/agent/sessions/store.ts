/**
 * `sessions.json`: the agent's record of its sessions across restarts (so it can poll,
 * reconnect and cancel them, and Relaunch reads the ended ones). Versioned; ended sessions
 * are pruned by a retention rule; a file it cannot read is kept aside, never silently
 * replaced, and the reason is reported so the UI can show it.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';

/** Bump when the record shape changes incompatibly (older agents refuse newer files). */
export const SESSIONS_FILE_VERSION = 1;

/** Bounded read: the file holds at most a few thousand small records. */
const MAX_FILE_BYTES = 16 * 1024 * 1024;

export interface IRetention {
  /** Ended sessions are kept this many days after they ended. */
  days: number;
  /** ... and at most this many of them (the most recent). */
  sessions: number;
}

export const DEFAULT_RETENTION: IRetention = { days: 30, sessions: 200 };

/** The fields every record must have to be used (the rest is the manager's). */
export interface IStoredSession {
  id: string;
  state: string;
  updatedAt: string;
}

export interface ILoadResult<T> {
  records: T[];
  /** Set when the file could not be used as it was: what happened and where it was kept. */
  problem?: string;
}

function isRecord(v: unknown): v is IStoredSession {
  const r = v as Record<string, unknown>;
  return (
    typeof v === 'object' &&
    v !== null &&
    typeof r.id === 'string' &&
    /^[0-9a-f]{6,32}$/.test(r.id) &&
    typeof r.state === 'string' &&
    typeof r.updatedAt === 'string' &&
    typeof r.clusterKey === 'string' &&
    typeof r.profile === 'string'
  );
}

export class SessionStore<T extends IStoredSession> {
  private writing = Promise.resolve();

  constructor(
    private readonly dir: string,
    private readonly retention: IRetention = DEFAULT_RETENTION,
    private readonly now: () => number = Date.now
  ) {}

  get file(): string {
    return path.join(this.dir, 'sessions.json');
  }

  /**
   * The stored sessions. A missing file is an empty list; anything else that is not a
   * valid file of this version (unparsable, a newer version, unusable entries) is renamed
   * to `sessions.json.corrupt-<time>` first, and `problem` says so.
   */
  async load(): Promise<ILoadResult<T>> {
    let text: string;
    try {
      const handle = await fs.open(this.file, 'r');
      try {
        const { size } = await handle.stat();
        if (size > MAX_FILE_BYTES) {
          return this.keepAside(`it is ${size} bytes, more than a sessions file can be`);
        }
        text = await handle.readFile('utf8');
      } finally {
        await handle.close();
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        return { records: [] };
      }
      // Unreadable (permissions, a directory): nothing can be saved over it either.
      throw new Error(`Cannot read ${this.file}: ${(err as Error).message}`);
    }
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch (err) {
      return this.keepAside(`it is not valid JSON (${(err as Error).message})`);
    }
    // A bare list: written before the file was versioned.
    const doc = Array.isArray(data) ? { version: 0, sessions: data } : (data as Record<string, unknown>);
    if (typeof doc !== 'object' || doc === null || !Array.isArray(doc.sessions) || typeof doc.version !== 'number') {
      return this.keepAside('it is not a sessions file ({"version", "sessions"} expected)');
    }
    if (doc.version > SESSIONS_FILE_VERSION) {
      return this.keepAside(`it was written by a newer release of jupyterlab-remote-cluster (format ${doc.version})`);
    }
    const records = (doc.sessions as unknown[]).filter(isRecord) as T[];
    const dropped = doc.sessions.length - records.length;
    if (dropped > 0) {
      return this.keepAside(`${dropped} of its ${doc.sessions.length} entries are not sessions`, records);
    }
    return { records };
  }

  /** The records the retention rule keeps: every session not ended, the recent ended ones. */
  retained(records: T[]): T[] {
    const cutoff = this.now() - this.retention.days * 86_400_000;
    const ended = records
      .filter(r => r.state === 'ended')
      .sort((a, b) => b.updatedAt.localeCompare(a.updatedAt))
      .filter(r => Date.parse(r.updatedAt) >= cutoff)
      .slice(0, Math.max(0, this.retention.sessions));
    const keep = new Set(ended.map(r => r.id));
    return records.filter(r => r.state !== 'ended' || keep.has(r.id));
  }

  /** Write atomically (a 0600 file in a 0700 directory), after any earlier write. */
  save(records: T[]): Promise<void> {
    const doc = { version: SESSIONS_FILE_VERSION, sessions: records };
    this.writing = this.writing.then(async () => {
      await fs.mkdir(this.dir, { recursive: true, mode: 0o700 });
      const tmp = `${this.file}.tmp`;
      await fs.writeFile(tmp, JSON.stringify(doc, null, 1), { mode: 0o600 });
      await fs.rename(tmp, this.file);
    });
    const done = this.writing;
    this.writing = done.catch(() => undefined);
    return done;
  }

  private async keepAside(why: string, records: T[] = []): Promise<ILoadResult<T>> {
    const stamp = new Date(this.now()).toISOString().replace(/[:.]/g, '-');
    const aside = `${this.file}.corrupt-${stamp}`;
    await fs.rename(this.file, aside);
    const lost = records.length ? 'The readable sessions were kept.' : 'Sessions recorded there are not shown.';
    return {
      records,
      problem:
        `The sessions file could not be used: ${why}. It was kept as ${aside}. ${lost} ` +
        'Jobs it recorded may still be running on the cluster (check with the scheduler, e.g. squeue --me).'
    };
  }
}
