/**
 * A cluster's files as a Jupyter contents drive, over SFTP on the cluster's existing SSH
 * connection (no new login). Paths are relative to the user's home directory on the login
 * node, POSIX, without `.` or `..`. The answers are Jupyter contents models, so
 * JupyterLab's file browser, editors and modification-time conflict check work unchanged.
 *
 * Policies (docs/cluster-files.md):
 * - Every change is atomic (drive-sftp.ts `replaceWith`); a file keeps its mode; a new file
 *   gets 0644 narrowed to its folder's permissions (a 0700 folder gives 0600).
 * - Symbolic links are followed: listed as what they point to, and a save writes the
 *   target (the link stays a link).
 * - Uploads in chunks (JupyterLab sends 1 MiB pieces) are written into a private temporary
 *   file piece by piece, never held whole, and renamed into place with the last piece; an
 *   upload abandoned for 10 minutes is removed.
 * - Opening a file in an editor is capped (MAX_OPEN_BYTES); downloads stream.
 */
import { posix } from 'node:path';
import { Readable } from 'node:stream';

import type { Stats } from 'ssh2';

import type { IClusterLink } from './link';

import { DriveError, SftpOps, TEMP_PREFIX, sftpError } from './drive-sftp';

export { DriveError } from './drive-sftp';

/** What an editor may open (larger files are downloaded instead). */
export const MAX_OPEN_BYTES = 64 * 1024 * 1024;
/** An upload with no next piece for this long is removed. */
export const UPLOAD_ABANDONED_MS = 10 * 60_000;

export type ContentType = 'file' | 'notebook' | 'directory';
export type ContentFormat = 'text' | 'base64' | 'json' | null;

/** Jupyter's contents model (services' Contents.IModel). */
export interface IContentsModel {
  name: string;
  path: string;
  type: ContentType;
  format: ContentFormat;
  mimetype: string | null;
  content: unknown;
  size: number | null;
  writable: boolean;
  created: string;
  last_modified: string;
}

export interface IGetOptions {
  content: boolean;
  type?: ContentType;
  format?: 'text' | 'base64';
}

export interface ISaveModel {
  type?: unknown;
  format?: unknown;
  content?: unknown;
  chunk?: unknown;
}

const MIME: Record<string, string> = {
  '.ipynb': 'application/x-ipynb+json',
  '.json': 'application/json',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.svg': 'image/svg+xml',
  '.pdf': 'application/pdf',
  '.csv': 'text/csv',
  '.html': 'text/html',
  '.md': 'text/markdown',
  '.py': 'text/x-python',
  '.sh': 'text/x-sh'
};

/** Checks and splits a drive-relative path: POSIX segments, no `.`/`..`, no NUL. */
export function driveSegments(path: string): string[] {
  const parts = path.split('/').filter(p => p !== '');
  for (const part of parts) {
    if (part === '.' || part === '..' || part.includes('\0') || part.length > 255) {
      throw new DriveError(400, 'bad-path', `"${path}" is not a path in the cluster drive (no "." or ".." segments).`);
    }
  }
  return parts;
}

function isNotebookName(name: string): boolean {
  return name.endsWith('.ipynb');
}

/** An upload in pieces, between its first and its last. */
interface IUpload {
  temp: string;
  target: string;
  mode: number;
  nextChunk: number;
  offset: number;
  timer: NodeJS.Timeout;
}

export class ClusterDrive {
  private home?: Promise<string>;
  private readonly uploads = new Map<string, IUpload>();

  /** `sftp`: the cluster connection's SFTP session (connects, and may ask to sign in). */
  constructor(private readonly sftp: () => Promise<SftpOps>) {}

  /** Drive-relative path -> absolute path on the cluster. */
  private async absolute(path: string): Promise<{ abs: string; rel: string }> {
    const parts = driveSegments(path);
    const ops = await this.sftp();
    if (!this.home) {
      this.home = ops.realpath('.');
      this.home.catch(() => (this.home = undefined));
    }
    const home = await this.home;
    return { abs: posix.join(home, ...parts), rel: parts.join('/') };
  }

  private model(rel: string, st: Stats, type: ContentType): IContentsModel {
    const name = posix.basename(rel);
    const time = new Date(st.mtime * 1000).toISOString();
    return {
      name,
      path: rel,
      type,
      format: null,
      mimetype: type === 'directory' ? null : (MIME[posix.extname(name).toLowerCase()] ?? 'text/plain'),
      content: null,
      size: type === 'directory' ? null : st.size,
      // Advisory (SFTP cannot ask access(2)): the owner's write bit. A save says the truth.
      writable: (st.mode & 0o200) !== 0,
      created: time,
      last_modified: time
    };
  }

  private typeOf(name: string, st: Stats, asked?: ContentType): ContentType {
    if (st.isDirectory()) {
      return 'directory';
    }
    return asked === 'file' || !isNotebookName(name) ? 'file' : 'notebook';
  }

  async get(path: string, options: IGetOptions): Promise<IContentsModel> {
    const { abs, rel } = await this.absolute(path);
    const ops = await this.sftp();
    const st = await ops.stat(abs).catch(err => Promise.reject(sftpError(err, 'open', rel || '~')));
    const type = this.typeOf(posix.basename(abs), st, options.type);
    if (options.type === 'directory' && type !== 'directory') {
      throw new DriveError(400, 'not-a-directory', `${rel} is not a folder.`);
    }
    const model = this.model(rel, st, type);
    if (!options.content) {
      return model;
    }
    if (type === 'directory') {
      return { ...model, format: 'json', content: await this.list(ops, abs, rel) };
    }
    if (st.size > MAX_OPEN_BYTES) {
      throw new DriveError(
        413,
        'too-large',
        `${rel} is ${Math.round(st.size / 2 ** 20)} MiB: larger than the ${MAX_OPEN_BYTES / 2 ** 20} MiB an editor can open. Download it instead.`
      );
    }
    const bytes = await this.readAll(ops, abs, rel);
    if (type === 'notebook') {
      try {
        return { ...model, format: 'json', content: JSON.parse(bytes.toString('utf8')) };
      } catch {
        throw new DriveError(400, 'bad-notebook', `${rel} is not a notebook (its content is not JSON).`);
      }
    }
    const text = options.format === 'base64' ? undefined : utf8(bytes);
    if (options.format === 'text' && text === undefined) {
      throw new DriveError(400, 'not-text', `${rel} is not UTF-8 text; open it as a binary file.`);
    }
    return text === undefined
      ? {
          ...model,
          format: 'base64',
          mimetype: model.mimetype === 'text/plain' ? 'application/octet-stream' : model.mimetype,
          content: bytes.toString('base64')
        }
      : { ...model, format: 'text', content: text };
  }

  private async list(ops: SftpOps, abs: string, rel: string): Promise<IContentsModel[]> {
    const entries = await ops.readdir(abs).catch(err => Promise.reject(sftpError(err, 'list', rel || '~')));
    const models: IContentsModel[] = [];
    for (const e of entries) {
      // Hidden files are not listed (Jupyter's default), nor, above all, our temporaries.
      if (e.filename.startsWith('.') || e.filename.startsWith(TEMP_PREFIX)) {
        continue;
      }
      let st = e.attrs as unknown as Stats;
      const childRel = rel ? `${rel}/${e.filename}` : e.filename;
      if (st.isSymbolicLink()) {
        // Followed: shown as what it points to (a dangling link is left out).
        const target = await ops.statIfAny(posix.join(abs, e.filename)).catch(() => undefined);
        if (!target) {
          continue;
        }
        st = target;
      }
      models.push(this.model(childRel, st, this.typeOf(e.filename, st)));
    }
    return models;
  }

  private async readAll(ops: SftpOps, abs: string, rel: string): Promise<Buffer> {
    const chunks: Buffer[] = [];
    try {
      for await (const c of ops.read(abs)) {
        chunks.push(c as Buffer);
      }
    } catch (err) {
      throw sftpError(err, 'read', rel);
    }
    return Buffer.concat(chunks);
  }

  /** A file's bytes, streamed (downloads). */
  async download(path: string): Promise<{ name: string; size: number; stream: Readable }> {
    const { abs, rel } = await this.absolute(path);
    const ops = await this.sftp();
    const st = await ops.stat(abs).catch(err => Promise.reject(sftpError(err, 'download', rel)));
    if (st.isDirectory()) {
      throw new DriveError(400, 'is-a-directory', `${rel} is a folder; download its files one by one.`);
    }
    return { name: posix.basename(abs), size: st.size, stream: ops.read(abs) };
  }

  /** Where a save of `abs` writes (a link's target) and the mode the file gets. */
  private async saveTarget(ops: SftpOps, abs: string): Promise<{ target: string; mode: number; exists: boolean }> {
    const link = await ops.lstat(abs).catch(() => undefined);
    const target = link?.isSymbolicLink() ? await ops.realpath(abs) : abs;
    const st = await ops.statIfAny(target);
    if (st?.isDirectory()) {
      throw new DriveError(409, 'is-a-directory', `${posix.basename(abs)} is a folder.`);
    }
    if (st) {
      return { target, mode: st.mode & 0o7777, exists: true };
    }
    const dir = await ops.stat(posix.dirname(target));
    return { target, mode: 0o644 & (dir.mode & 0o777), exists: false };
  }

  async save(path: string, body: ISaveModel): Promise<IContentsModel> {
    const { abs, rel } = await this.absolute(path);
    if (!rel) {
      throw new DriveError(400, 'bad-path', 'The drive root (your home folder) cannot be saved over.');
    }
    const ops = await this.sftp();
    if (body.type === 'directory') {
      await ops.mkdir(abs).catch(err => Promise.reject(sftpError(err, 'create the folder', rel)));
      return this.get(rel, { content: false });
    }
    const chunk = body.chunk === undefined ? undefined : Number(body.chunk);
    if (chunk !== undefined && (!Number.isInteger(chunk) || chunk === 0 || chunk < -1)) {
      throw new DriveError(
        400,
        'bad-chunk',
        `"chunk" is 1, 2, … or -1 for the last piece (got ${String(body.chunk)}).`
      );
    }
    const bytes = encode(body, rel);
    try {
      if (chunk === undefined) {
        const { target, mode } = await this.saveTarget(ops, abs);
        await ops.replaceWith(target, Readable.from([bytes]), mode);
      } else if (chunk !== -1) {
        // not in place yet: what has arrived (JupyterLab shows the upload's progress)
        const received = await this.savePiece(ops, abs, rel, chunk, bytes);
        const now = new Date().toISOString();
        return {
          ...this.model(rel, { mode: 0o600, mtime: 0 } as Stats, 'file'),
          size: received,
          created: now,
          last_modified: now
        };
      } else {
        await this.savePiece(ops, abs, rel, chunk, bytes);
      }
    } catch (err) {
      throw err instanceof DriveError ? err : sftpError(err, 'save', rel);
    }
    return this.get(rel, { content: false, type: body.type === 'file' ? 'file' : undefined });
  }

  /** One piece of a chunked upload (JupyterLab: 1, 2, …, -1 for the last). */
  /** The bytes received so far. */
  private async savePiece(ops: SftpOps, abs: string, rel: string, chunk: number, bytes: Buffer): Promise<number> {
    let up = this.uploads.get(abs);
    if (chunk === 1) {
      if (up) {
        this.abandon(abs, up); // started again: the earlier attempt goes
      }
      const { target, mode } = await this.saveTarget(ops, abs);
      const temp = SftpOps.tempPath(posix.dirname(target), posix.basename(target));
      up = { temp, target, mode, nextChunk: 1, offset: 0, timer: this.abandonTimer(abs) };
      this.uploads.set(abs, up);
    }
    if (!up || (chunk !== -1 && chunk !== up.nextChunk)) {
      throw new DriveError(
        409,
        'upload-interrupted',
        `The upload of ${rel} was interrupted (piece ${chunk} came without the ones before); upload it again.`
      );
    }
    up.timer.refresh();
    try {
      await ops.writeInto(up.temp, Readable.from([bytes]), {
        create: up.offset === 0 && chunk === 1,
        offset: up.offset
      });
      up.offset += bytes.length;
      up.nextChunk += 1;
      if (chunk === -1) {
        clearTimeout(up.timer);
        this.uploads.delete(abs);
        await ops.chmod(up.temp, up.mode);
        await ops.replace(up.temp, up.target);
      }
      return up.offset;
    } catch (err) {
      this.abandon(abs, up);
      throw err;
    }
  }

  private abandonTimer(abs: string): NodeJS.Timeout {
    const t = setTimeout(() => {
      const up = this.uploads.get(abs);
      if (up) {
        this.abandon(abs, up);
      }
    }, UPLOAD_ABANDONED_MS);
    t.unref();
    return t;
  }

  private abandon(abs: string, up: IUpload): void {
    clearTimeout(up.timer);
    this.uploads.delete(abs);
    void this.sftp()
      .then(ops => ops.unlinkQuietly(up.temp))
      .catch(() => undefined);
  }

  /** A new untitled file, notebook or folder in `dir` (Jupyter's names). */
  async newUntitled(dir: string, body: { type?: unknown; ext?: unknown }): Promise<IContentsModel> {
    const { abs, rel } = await this.absolute(dir);
    const type: ContentType = body.type === 'directory' || body.type === 'notebook' ? body.type : 'file';
    const ext = typeof body.ext === 'string' && /^\.[A-Za-z0-9_.+-]{1,16}$/.test(body.ext) ? body.ext : '.txt';
    const ops = await this.sftp();
    for (let i = 0; i < 1000; i++) {
      const n = i === 0 ? '' : type === 'directory' ? ` ${i}` : String(i);
      const name =
        type === 'directory'
          ? `Untitled Folder${n}`
          : type === 'notebook'
            ? `Untitled${n}.ipynb`
            : `untitled${n}${ext}`;
      const target = posix.join(abs, name);
      const childRel = rel ? `${rel}/${name}` : name;
      try {
        if (type === 'directory') {
          await ops.mkdir(target);
        } else {
          const content = type === 'notebook' ? Buffer.from(EMPTY_NOTEBOOK) : Buffer.alloc(0);
          const { mode } = await this.saveTarget(ops, target);
          await ops.writeInto(target, Readable.from([content]), { create: true });
          await ops.chmod(target, mode);
        }
        return this.get(childRel, { content: false });
      } catch (err) {
        if (await ops.statIfAny(target).catch(() => undefined)) {
          continue; // taken (also by someone else meanwhile): the next number
        }
        throw err instanceof DriveError ? err : sftpError(err, 'create a file in', rel || '~');
      }
    }
    throw new DriveError(409, 'exists', `Too many untitled files in ${rel || '~'}.`);
  }

  /** A copy of file `from` in folder `toDir`, named as Jupyter does (`name-Copy1.ext`). */
  async copy(from: string, toDir: string): Promise<IContentsModel> {
    const src = await this.absolute(from);
    const dst = await this.absolute(toDir);
    const ops = await this.sftp();
    const st = await ops.stat(src.abs).catch(err => Promise.reject(sftpError(err, 'copy', src.rel)));
    if (st.isDirectory()) {
      throw new DriveError(400, 'is-a-directory', `${src.rel} is a folder; only files are copied.`);
    }
    const ext = posix.extname(src.abs);
    const base = posix.basename(src.abs, ext);
    for (let i = 1; i < 1000; i++) {
      const name = `${base}-Copy${i}${ext}`;
      if (await ops.statIfAny(posix.join(dst.abs, name))) {
        continue;
      }
      const target = posix.join(dst.abs, name);
      await this.copyFile(ops, src.abs, target, st.mode & 0o7777, src.rel);
      return this.get(dst.rel ? `${dst.rel}/${name}` : name, { content: false });
    }
    throw new DriveError(409, 'exists', `Too many copies of ${src.rel}.`);
  }

  private async copyFile(ops: SftpOps, from: string, to: string, mode: number, shown: string): Promise<void> {
    await ops.replaceWith(to, ops.read(from), mode).catch(err => Promise.reject(sftpError(err, 'copy', shown)));
  }

  async rename(from: string, to: string): Promise<IContentsModel> {
    const src = await this.absolute(from);
    const dst = await this.absolute(to);
    if (!src.rel || !dst.rel) {
      throw new DriveError(400, 'bad-path', 'The drive root (your home folder) cannot be renamed.');
    }
    const ops = await this.sftp();
    if (await ops.statIfAny(dst.abs)) {
      throw new DriveError(409, 'exists', `${dst.rel} exists already; nothing was renamed.`);
    }
    await ops.rename(src.abs, dst.abs).catch(err => Promise.reject(sftpError(err, 'rename', src.rel)));
    return this.get(dst.rel, { content: false });
  }

  async delete(path: string): Promise<void> {
    const { abs, rel } = await this.absolute(path);
    if (!rel) {
      throw new DriveError(400, 'bad-path', 'The drive root (your home folder) cannot be deleted.');
    }
    const ops = await this.sftp();
    const st = await ops.lstat(abs).catch(err => Promise.reject(sftpError(err, 'delete', rel)));
    if (st.isDirectory()) {
      const entries = await ops.readdir(abs).catch(err => Promise.reject(sftpError(err, 'delete', rel)));
      if (entries.some(e => e.filename !== '.ipynb_checkpoints')) {
        throw new DriveError(409, 'not-empty', `${rel} is not empty; delete what is in it first.`);
      }
      await this.deleteCheckpointsDir(ops, abs);
      await ops.rmdir(abs).catch(err => Promise.reject(sftpError(err, 'delete', rel)));
      return;
    }
    await ops.unlink(abs).catch(err => Promise.reject(sftpError(err, 'delete', rel)));
  }

  private async deleteCheckpointsDir(ops: SftpOps, dirAbs: string): Promise<void> {
    const dir = posix.join(dirAbs, '.ipynb_checkpoints');
    const entries = await ops.readdir(dir).catch(() => undefined);
    if (entries) {
      await Promise.all(entries.map(e => ops.unlinkQuietly(posix.join(dir, e.filename))));
      await ops.rmdir(dir).catch(() => undefined);
    }
  }

  // Checkpoints where Jupyter keeps them: `.ipynb_checkpoints/<name>-checkpoint<ext>`.
  private async checkpointPath(path: string): Promise<{ file: string; checkpoint: string; rel: string }> {
    const { abs, rel } = await this.absolute(path);
    const ext = posix.extname(abs);
    const dir = posix.join(posix.dirname(abs), '.ipynb_checkpoints');
    return { file: abs, rel, checkpoint: posix.join(dir, `${posix.basename(abs, ext)}-checkpoint${ext}`) };
  }

  async listCheckpoints(path: string): Promise<{ id: string; last_modified: string }[]> {
    const { checkpoint } = await this.checkpointPath(path);
    const st = await (await this.sftp()).statIfAny(checkpoint).catch(() => undefined);
    return st ? [{ id: 'checkpoint', last_modified: new Date(st.mtime * 1000).toISOString() }] : [];
  }

  async createCheckpoint(path: string): Promise<{ id: string; last_modified: string }> {
    const { file, checkpoint, rel } = await this.checkpointPath(path);
    const ops = await this.sftp();
    const st = await ops.stat(file).catch(err => Promise.reject(sftpError(err, 'checkpoint', rel)));
    await ops.mkdir(posix.dirname(checkpoint)).catch(async err => {
      // (there already, or not allowed: a read-only folder gets no checkpoint, a 403 JupyterLab expects)
      if (!(await ops.statIfAny(posix.dirname(checkpoint)).catch(() => undefined))?.isDirectory()) {
        throw sftpError(err, 'checkpoint', rel);
      }
    });
    await this.copyFile(ops, file, checkpoint, st.mode & 0o7777, rel);
    return (await this.listCheckpoints(path))[0];
  }

  async restoreCheckpoint(path: string, id: string): Promise<void> {
    const { file, checkpoint, rel } = await this.checkpointPath(this.checkpointId(path, id));
    const ops = await this.sftp();
    const { mode } = await this.saveTarget(ops, file);
    await this.copyFile(ops, checkpoint, file, mode, rel);
  }

  async deleteCheckpoint(path: string, id: string): Promise<void> {
    const { checkpoint, rel } = await this.checkpointPath(this.checkpointId(path, id));
    await (
      await this.sftp()
    )
      .unlink(checkpoint)
      .catch(err => Promise.reject(sftpError(err, 'delete the checkpoint of', rel)));
  }

  private checkpointId(path: string, id: string): string {
    if (id !== 'checkpoint') {
      throw new DriveError(404, 'not-found', `No checkpoint "${id}" of ${path}.`);
    }
    return path;
  }

  /** Ends the uploads in progress (their temporaries are removed). */
  dispose(): void {
    for (const [abs, up] of [...this.uploads]) {
      this.abandon(abs, up);
    }
  }
}

const EMPTY_NOTEBOOK = JSON.stringify({ cells: [], metadata: {}, nbformat: 4, nbformat_minor: 5 }, null, 1) + '\n';

/** The bytes a save model stands for (Jupyter's formats: json, text, base64). */
function encode(body: ISaveModel, rel: string): Buffer {
  const { format, content } = body;
  if (body.type === 'notebook' || format === 'json') {
    if (content === null || typeof content !== 'object') {
      throw new DriveError(400, 'bad-content', `The notebook saved as ${rel} has no content.`);
    }
    return Buffer.from(JSON.stringify(content, null, 1) + '\n', 'utf8');
  }
  if (typeof content !== 'string') {
    throw new DriveError(400, 'bad-content', `The file saved as ${rel} has no content (a string is expected).`);
  }
  if (format === 'base64') {
    return Buffer.from(content, 'base64');
  }
  if (format === 'text' || format === undefined) {
    return Buffer.from(content, 'utf8');
  }
  throw new DriveError(400, 'bad-format', `Unknown format "${String(format)}" (text, base64 or json).`);
}

/** The text of `bytes` when they are UTF-8, else undefined. */
function utf8(bytes: Buffer): string | undefined {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return undefined;
  }
}

/** One drive per cluster profile, on that cluster's link (made on first use). */
export class ClusterDrives {
  private readonly drives = new Map<string, ClusterDrive>();

  constructor(private readonly link: (profile: string) => Promise<IClusterLink>) {}

  of(profile: string): ClusterDrive {
    let drive = this.drives.get(profile);
    if (!drive) {
      drive = new ClusterDrive(async () => {
        const link = await this.link(profile);
        if (!link.sftp) {
          throw new DriveError(501, 'no-sftp', `The connection to ${profile} offers no file access.`);
        }
        return new SftpOps(await link.sftp());
      });
      this.drives.set(profile, drive);
    }
    return drive;
  }

  dispose(): void {
    this.drives.forEach(d => d.dispose());
    this.drives.clear();
  }
}
