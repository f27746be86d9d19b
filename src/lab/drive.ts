/**
 * The cluster drive: a `Contents.IDrive` per profile whose files are the cluster user's
 * home directory, served by the agent over SFTP (`api/v1/profiles/<P>/files/...`).
 * Registered as `cluster-<profile>`, so JupyterLab's file browser, editors and notebooks
 * use paths such as `cluster-hpc:project/run.py`. Constructing one opens no connection:
 * the agent reaches the cluster at the first request.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection, type Contents } from '@jupyterlab/services';
import { nullTranslator, type ITranslator, type TranslationBundle } from '@jupyterlab/translation';
import { Signal, type ISignal } from '@lumino/signaling';

import { URL_NAMESPACE } from '../common/api';
import { clusterDriveName } from '../common/routes';
import { RemoteClusterApiError, requestAPI } from './handler';

/** The drive name of a profile (the prefix of its paths: `cluster-hpc:dir/file`). */
export { clusterDriveName };

/** A drive-relative POSIX path, each segment URL-encoded ('' and '/' are the home directory). */
export function encodeDrivePath(path: string): string {
  return path
    .split('/')
    .filter(s => s.length > 0)
    .map(encodeURIComponent)
    .join('/');
}

/**
 * An error of the agent as JupyterLab's contents clients expect it: a ResponseError whose
 * `response.status` they test (404 before a save-as, 409 on rename, 403 for checkpoints
 * of a read-only file), with the server's one-line message and code.
 */
export class ClusterDriveError extends ServerConnection.ResponseError {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string
  ) {
    super(new Response(null, { status, statusText: code.replace(/[^\x20-\x7e]/g, '') }), message);
    this.name = 'ClusterDriveError';
  }
}

export class ClusterDrive implements Contents.IDrive {
  readonly name: string;
  readonly profile: string;
  /** The profile's title (its name when it has none), for captions. */
  readonly title: string;
  readonly serverSettings: ServerConnection.ISettings;
  private readonly _fileChanged = new Signal<this, Contents.IChangedArgs>(this);
  private readonly _trans: TranslationBundle;
  private _isDisposed = false;

  constructor(options: ClusterDrive.IOptions) {
    this.profile = options.profile;
    this.name = clusterDriveName(options.profile);
    this.title = options.title || options.profile;
    this.serverSettings = options.serverSettings ?? ServerConnection.makeSettings();
    this._trans = (options.translator ?? nullTranslator).load('jupyterlab_remote_cluster');
  }

  /** A file was created, saved, renamed or deleted (drive-relative paths). */
  get fileChanged(): ISignal<this, Contents.IChangedArgs> {
    return this._fileChanged;
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._isDisposed = true;
    Signal.clearData(this);
  }

  async get(localPath: string, options?: Contents.IFetchOptions): Promise<Contents.IModel> {
    // as the default drive: without options, the content (the server's default)
    const query: Record<string, string> = { content: !options || options.content ? '1' : '0' };
    if (options?.type) {
      query.type = options.type;
    }
    if (options?.format && options.type !== 'notebook') {
      query.format = options.format;
    }
    if (options?.hash) {
      query.hash = '1';
    }
    return this.call<Contents.IModel>(this.url('files', localPath) + URLExt.objectToQueryString(query));
  }

  /** The server extension's streamed GET of the file (cookie authenticated: nothing secret in it). */
  async getDownloadUrl(localPath: string): Promise<string> {
    const path = this.encode(localPath);
    return URLExt.join(
      this.serverSettings.baseUrl,
      URL_NAMESPACE,
      'files',
      encodeURIComponent(this.profile),
      ...(path ? [path] : [])
    );
  }

  async newUntitled(options: Contents.ICreateOptions = {}): Promise<Contents.IModel> {
    const body: { type?: Contents.ContentType; ext?: string } = { type: options.type ?? 'file' };
    if (options.ext) {
      body.ext = options.ext.startsWith('.') ? options.ext : `.${options.ext}`;
    }
    const model = await this.call<Contents.IModel>(this.url('files', options.path ?? ''), {
      method: 'POST',
      body: JSON.stringify(body)
    });
    this._fileChanged.emit({ type: 'new', oldValue: null, newValue: model });
    return model;
  }

  async delete(localPath: string): Promise<void> {
    await this.call(this.url('files', localPath), { method: 'DELETE' });
    this._fileChanged.emit({ type: 'delete', oldValue: { path: localPath }, newValue: null });
  }

  async rename(oldLocalPath: string, newLocalPath: string): Promise<Contents.IModel> {
    const model = await this.call<Contents.IModel>(this.url('files', oldLocalPath), {
      method: 'PATCH',
      body: JSON.stringify({ path: newLocalPath })
    });
    this._fileChanged.emit({ type: 'rename', oldValue: { path: oldLocalPath }, newValue: model });
    return model;
  }

  /**
   * Saves the model's type, format and content; `chunk` (1..n, -1 for the last) is passed
   * on as the file browser sends it for large uploads.
   */
  async save(
    localPath: string,
    options: Partial<Contents.IModel> & Contents.IContentProvisionOptions = {}
  ): Promise<Contents.IModel> {
    const { type, format, content, chunk } = options;
    const model = await this.call<Contents.IModel>(this.url('files', localPath), {
      method: 'PUT',
      body: JSON.stringify({ type, format, content, chunk })
    });
    this._fileChanged.emit({ type: 'save', oldValue: null, newValue: model });
    return model;
  }

  async copy(localPath: string, toLocalDir: string): Promise<Contents.IModel> {
    const model = await this.call<Contents.IModel>(this.url('files', toLocalDir), {
      method: 'POST',
      body: JSON.stringify({ copy_from: localPath })
    });
    this._fileChanged.emit({ type: 'new', oldValue: null, newValue: model });
    return model;
  }

  async createCheckpoint(localPath: string): Promise<Contents.ICheckpointModel> {
    return this.call<Contents.ICheckpointModel>(this.url('checkpoints', localPath), { method: 'POST' });
  }

  async listCheckpoints(localPath: string): Promise<Contents.ICheckpointModel[]> {
    const list = await this.call<Contents.ICheckpointModel[]>(this.url('checkpoints', localPath));
    if (!Array.isArray(list)) {
      throw new Error(this._trans.__('The checkpoints of %1 could not be read.', localPath));
    }
    return list;
  }

  async restoreCheckpoint(localPath: string, checkpointID: string): Promise<void> {
    const query = URLExt.objectToQueryString({ restore: checkpointID });
    await this.call(this.url('checkpoints', localPath) + query, { method: 'POST' });
  }

  async deleteCheckpoint(localPath: string, checkpointID: string): Promise<void> {
    const query = URLExt.objectToQueryString({ id: checkpointID });
    await this.call(this.url('checkpoints', localPath) + query, { method: 'DELETE' });
  }

  /** `api/v1/profiles/<P>/<kind>/<path>`, every segment encoded. */
  private url(kind: 'files' | 'checkpoints', localPath: string): string {
    return `api/v1/profiles/${encodeURIComponent(this.profile)}/${kind}/${this.encode(localPath)}`;
  }

  /**
   * The path's segments encoded; a "." or ".." segment is refused here, since the URL
   * would resolve it (even encoded) into another route of the agent.
   */
  private encode(path: string): string {
    if (path.split('/').some(s => s === '.' || s === '..')) {
      throw new ClusterDriveError(
        400,
        'bad-path',
        this._trans.__('"%1": a path on the cluster drive cannot name "." or "..".', path)
      );
    }
    return encodeDrivePath(path);
  }

  /** The agent's answer, or its error as a ClusterDriveError (its message for the user). */
  private async call<T>(endPoint: string, init: RequestInit = {}): Promise<T> {
    try {
      return await requestAPI<T>(endPoint, init, this.serverSettings);
    } catch (err) {
      if (err instanceof RemoteClusterApiError && err.status >= 200 && err.status <= 599) {
        throw new ClusterDriveError(err.status, err.code, err.message);
      }
      throw err; // (the Jupyter server could not be reached: no status to give)
    }
  }
}

export namespace ClusterDrive {
  export interface IOptions {
    /** The cluster profile whose home directory the drive shows. */
    profile: string;
    /** The profile's title, for captions (default: its name). */
    title?: string;
    serverSettings?: ServerConnection.ISettings;
    translator?: ITranslator;
  }
}
