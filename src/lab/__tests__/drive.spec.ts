/**
 * The cluster drive (drive.ts) against a scripted server: the route and method of each
 * operation (path segments encoded), the body of saves (a large upload's `chunk` passed
 * on), the fileChanged signal the file browser refreshes on, the agent's errors as
 * JupyterLab's clients expect them; and the plugin (plugins/drive.ts): a drive per
 * profile without a request, a file browser per profile in the left area.
 */
import type { JupyterFrontEnd } from '@jupyterlab/application';
import type { IFileBrowserFactory } from '@jupyterlab/filebrowser';
import { ContentsManager, ServerConnection, type Contents } from '@jupyterlab/services';
import type { ISettingRegistry } from '@jupyterlab/settingregistry';
import { nullTranslator } from '@jupyterlab/translation';
import { Toolbar } from '@jupyterlab/ui-components';
import { CommandRegistry } from '@lumino/commands';
import { Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import { CommandIDs } from '../commands';
import { ClusterDrive, clusterDriveName } from '../drive';
import { remoteClusterIcon } from '../icons';
import { RemoteClusterModel } from '../model';
import { clusterFilesWidgetId, drivePlugin } from '../plugins/drive';

const BASE = 'http://localhost:8888/lab-base/';
const API = '/lab-base/remote-cluster/api/v1/profiles/hpc';

interface ICall {
  method: string;
  path: string;
  query: URLSearchParams;
  body: any;
}

/** A server answering every request with the next of `answers` (status, JSON body), recording each. */
function server(...answers: [number, unknown?][]) {
  const calls: ICall[] = [];
  const fetchImpl = jest.fn(async (req: Request) => {
    const url = new URL(req.url);
    const text = await req.text();
    calls.push({
      method: req.method,
      path: url.pathname,
      query: url.searchParams,
      body: text ? JSON.parse(text) : null
    });
    const [status, body] = answers.shift() ?? [500, { error: { code: 'unscripted', message: 'no answer scripted' } }];
    return new Response(body === undefined ? null : JSON.stringify(body), { status });
  });
  const serverSettings = ServerConnection.makeSettings({ baseUrl: BASE, fetch: fetchImpl as any });
  const drive = new ClusterDrive({ profile: 'hpc', title: 'HPC', serverSettings });
  const changes: Contents.IChangedArgs[] = [];
  drive.fileChanged.connect((_, c) => void changes.push(c));
  return { drive, calls, changes, serverSettings, fetchImpl };
}

function fileModel(path: string, over: Partial<Contents.IModel> = {}): Contents.IModel {
  return {
    name: path.split('/').pop()!,
    path,
    type: 'file',
    format: null,
    mimetype: 'text/plain',
    content: null,
    size: 3,
    writable: true,
    created: '2026-12-06T10:00:00Z',
    last_modified: '2026-12-06T10:05:00.123456Z',
    ...over
  } as Contents.IModel;
}

async function failure(promise: Promise<unknown>): Promise<any> {
  try {
    await promise;
  } catch (e) {
    return e;
  }
  throw new Error('expected the operation to fail');
}

describe('ClusterDrive', () => {
  it('is named after its profile and calls nothing when constructed', () => {
    const { drive, fetchImpl } = server();
    expect(clusterDriveName('hpc')).toBe('cluster-hpc');
    expect(drive.name).toBe('cluster-hpc');
    expect(fetchImpl).not.toHaveBeenCalled();
  });

  it('gets a file with its options, each path segment encoded, and returns the model as the server sent it', async () => {
    const model = fileModel('my dir/a#b.txt', {
      content: 'hi\n',
      format: 'text',
      hash: 'abc',
      hash_algorithm: 'sha256'
    });
    const { drive, calls } = server([200, model]);
    const got = await drive.get('my dir/a#b.txt', { type: 'file', format: 'text', content: true, hash: true });
    expect(got).toEqual(model);
    expect(calls).toHaveLength(1);
    expect(calls[0].method).toBe('GET');
    expect(calls[0].path).toBe(`${API}/files/my%20dir/a%23b.txt`);
    expect(calls[0].query.get('content')).toBe('1');
    expect(calls[0].query.get('type')).toBe('file');
    expect(calls[0].query.get('format')).toBe('text');
    expect(calls[0].query.get('hash')).toBe('1');
  });

  it('asks content=0 for {content: false} (the conflict check), the home directory as "", no format for notebooks', async () => {
    const home = { ...fileModel(''), name: '', type: 'directory', content: [fileModel('x.py')] };
    const { drive, calls } = server([200, fileModel('nb.ipynb')], [200, home], [200, fileModel('nb.ipynb')]);
    await drive.get('nb.ipynb', { content: false });
    expect(calls[0].path).toBe(`${API}/files/nb.ipynb`);
    expect(calls[0].query.get('content')).toBe('0');
    expect(calls[0].query.has('hash')).toBe(false);

    expect(await drive.get('', { type: 'directory', content: true })).toEqual(home);
    expect(calls[1].path).toBe(`${API}/files/`);
    expect(calls[1].query.get('type')).toBe('directory');

    await drive.get('nb.ipynb', { type: 'notebook', format: 'json', content: true });
    expect(calls[2].query.get('type')).toBe('notebook');
    expect(calls[2].query.has('format')).toBe(false);
  });

  it('saves with PUT and the save model, and says so on fileChanged', async () => {
    const saved = fileModel('dir/notes.txt');
    const { drive, calls, changes } = server([200, saved]);
    const got = await drive.save('dir/notes.txt', {
      type: 'file',
      format: 'text',
      content: 'hello',
      path: 'dir/notes.txt',
      contentProviderId: 'rtc'
    } as Partial<Contents.IModel>);
    expect(got).toEqual(saved);
    expect(calls[0].method).toBe('PUT');
    expect(calls[0].path).toBe(`${API}/files/dir/notes.txt`);
    expect(calls[0].body).toEqual({ type: 'file', format: 'text', content: 'hello' });
    expect(changes).toEqual([{ type: 'save', oldValue: null, newValue: saved }]);
  });

  it("passes a large upload's chunk numbers on as the file browser sends them (1..n, then -1)", async () => {
    const { drive, calls, changes } = server([200, fileModel('big.bin')], [200, fileModel('big.bin')]);
    await drive.save('big.bin', { type: 'file', format: 'base64', content: 'QUFB', chunk: 1 });
    await drive.save('big.bin', { type: 'file', format: 'base64', content: 'QkJC', chunk: -1 });
    expect(calls.map(c => c.body)).toEqual([
      { type: 'file', format: 'base64', content: 'QUFB', chunk: 1 },
      { type: 'file', format: 'base64', content: 'QkJC', chunk: -1 }
    ]);
    expect(changes.map(c => c.type)).toEqual(['save', 'save']);
  });

  it('creates an untitled file or folder and copies with POST on the directory', async () => {
    const created = fileModel('my dir/untitled.txt');
    const copy = fileModel('my dir/a-Copy1.txt');
    const { drive, calls, changes } = server([201, created], [201, copy]);
    expect(await drive.newUntitled({ path: 'my dir', type: 'file', ext: 'txt' })).toEqual(created);
    expect(calls[0].method).toBe('POST');
    expect(calls[0].path).toBe(`${API}/files/my%20dir`);
    expect(calls[0].body).toEqual({ type: 'file', ext: '.txt' });

    expect(await drive.copy('a.txt', 'my dir')).toEqual(copy);
    expect(calls[1].method).toBe('POST');
    expect(calls[1].path).toBe(`${API}/files/my%20dir`);
    expect(calls[1].body).toEqual({ copy_from: 'a.txt' });
    expect(changes).toEqual([
      { type: 'new', oldValue: null, newValue: created },
      { type: 'new', oldValue: null, newValue: copy }
    ]);
  });

  it('renames with PATCH {path} and deletes with DELETE, each on fileChanged', async () => {
    const renamed = fileModel('b c.txt');
    const { drive, calls, changes } = server([200, renamed], [204]);
    expect(await drive.rename('a#1.txt', 'b c.txt')).toEqual(renamed);
    expect(calls[0].method).toBe('PATCH');
    expect(calls[0].path).toBe(`${API}/files/a%231.txt`);
    expect(calls[0].body).toEqual({ path: 'b c.txt' });

    await drive.delete('old dir');
    expect(calls[1].method).toBe('DELETE');
    expect(calls[1].path).toBe(`${API}/files/old%20dir`);
    expect(changes).toEqual([
      { type: 'rename', oldValue: { path: 'a#1.txt' }, newValue: renamed },
      { type: 'delete', oldValue: { path: 'old dir' }, newValue: null }
    ]);
  });

  it('lists, creates, restores (?restore=<id>) and deletes (?id=<id>) checkpoints on the checkpoints route', async () => {
    const cp = { id: 'checkpoint', last_modified: '2026-12-06T10:00:00Z' };
    const { drive, calls, changes } = server([200, [cp]], [201, cp], [204], [204]);
    expect(await drive.listCheckpoints('a b.ipynb')).toEqual([cp]);
    expect(await drive.createCheckpoint('a b.ipynb')).toEqual(cp);
    await drive.restoreCheckpoint('a b.ipynb', 'checkpoint');
    await drive.deleteCheckpoint('a b.ipynb', 'checkpoint');
    const restore = (c: ICall) => [c.query.get('restore'), c.query.get('id')];
    expect(calls.map(c => [c.method, c.path, ...restore(c)])).toEqual([
      ['GET', `${API}/checkpoints/a%20b.ipynb`, null, null],
      ['POST', `${API}/checkpoints/a%20b.ipynb`, null, null],
      ['POST', `${API}/checkpoints/a%20b.ipynb`, 'checkpoint', null],
      ['DELETE', `${API}/checkpoints/a%20b.ipynb`, null, 'checkpoint']
    ]);
    expect(changes).toEqual([]);
  });

  it("fails with the server's message and its status where JupyterLab looks for it (409: overwrite?), nothing changed", async () => {
    const message = 'b.txt exists already in your home directory.';
    const { drive, changes } = server(
      [409, { error: { code: 'exists', message } }],
      [404, { error: { code: 'not-found', message: 'x.txt: no such file.' } }]
    );
    const err = await failure(drive.rename('a.txt', 'b.txt'));
    expect(err).toBeInstanceOf(ServerConnection.ResponseError);
    expect(err.message).toBe(message);
    expect(err.response.status).toBe(409);
    expect(err.code).toBe('exists');
    expect(err.traceback).toBe('');
    expect(changes).toEqual([]);
    // save-as first looks for the new path: a 404 that says "free"
    const missing = await failure(drive.get('x.txt', { content: false }));
    expect(missing.response.status).toBe(404);
    expect(missing.message).toBe('x.txt: no such file.');
  });

  it('refuses "." and ".." segments, which the URL would resolve into another route of the agent', async () => {
    const { drive, fetchImpl } = server();
    for (const attempt of [
      drive.get('../../sessions/ab12cd'),
      drive.delete('x/../../../sessions/ab12cd'),
      drive.deleteCheckpoint('../a.ipynb', 'checkpoint'),
      drive.getDownloadUrl('./a')
    ]) {
      const err = await failure(attempt);
      expect(err.response.status).toBe(400);
      expect(err.message).toContain('cannot name "." or ".."');
    }
    expect(fetchImpl).not.toHaveBeenCalled();
  });

  it('downloads through the server extension, with nothing secret in the URL', async () => {
    document.cookie = '_xsrf=secret-xsrf';
    try {
      const { drive } = server();
      const url = await drive.getDownloadUrl('my dir/a#b c.txt');
      expect(url).toBe(`${BASE}remote-cluster/files/hpc/my%20dir/a%23b%20c.txt`);
      expect(url).not.toContain('secret');
    } finally {
      document.cookie = '_xsrf=; expires=Thu, 01 Jan 1970 00:00:00 GMT';
    }
  });

  it("serves the contents manager's `cluster-hpc:` paths (global paths in its models and fileChanged)", async () => {
    const { drive, calls, serverSettings } = server(
      [200, { ...fileModel('d'), type: 'directory', content: [fileModel('d/x.py')] }],
      [200, fileModel('d/y.py')]
    );
    const contents = new ContentsManager({ serverSettings });
    contents.addDrive(drive);
    const changes: Contents.IChangedArgs[] = [];
    contents.fileChanged.connect((_, c) => void changes.push(c));
    const listing = await contents.get('cluster-hpc:d', { content: true });
    expect(calls[0].path).toBe(`${API}/files/d`);
    expect(listing.path).toBe('cluster-hpc:d');
    expect((listing.content as Contents.IModel[]).map(m => m.path)).toEqual(['cluster-hpc:d/x.py']);
    await contents.rename('cluster-hpc:d/x.py', 'cluster-hpc:d/y.py');
    expect(calls[1].body).toEqual({ path: 'd/y.py' });
    expect(changes).toEqual([
      {
        type: 'rename',
        oldValue: { path: 'cluster-hpc:d/x.py' },
        newValue: expect.objectContaining({ path: 'cluster-hpc:d/y.py' })
      }
    ]);
    contents.dispose();
  });
});

/** What the plugin uses of a FileBrowser. */
class FakeBrowser extends Widget {
  toolbar = new Toolbar();
  model = {
    connectionFailure: new Signal<unknown, Error>(this),
    refreshed: new Signal<unknown, void>(this),
    refresh: jest.fn(async () => undefined),
    allowFileUploads: true
  };
  createNewDirectory = jest.fn();
  constructor(id: string) {
    super();
    this.id = id;
  }
}

describe('the drive plugin', () => {
  async function activate(profiles: unknown[]) {
    const commands = new CommandRegistry();
    const shell = { add: jest.fn(), activateById: jest.fn() };
    const addDrive = jest.fn();
    const fetchImpl = jest.fn();
    const serverSettings = ServerConnection.makeSettings({ baseUrl: BASE, fetch: fetchImpl as any });
    const app = {
      commands,
      shell,
      serviceManager: { serverSettings, contents: { addDrive } }
    } as unknown as JupyterFrontEnd;
    const createFileBrowser = jest.fn((id: string) => new FakeBrowser(id));
    const factory = { createFileBrowser } as unknown as IFileBrowserFactory;
    const settings = { composite: { profiles }, changed: new Signal<unknown, void>({}) };
    const registry = { load: async () => settings } as unknown as ISettingRegistry;
    const model = new RemoteClusterModel();
    await drivePlugin.activate(app, model, nullTranslator, factory, {}, null, null, registry);
    return { commands, shell, addDrive, fetchImpl, createFileBrowser, settings, model };
  }
  const hpc = { name: 'hpc', title: 'Big HPC', ssh: { host: 'login' } };

  it("registers each profile's drive, without a request, and the drives of profiles added later", async () => {
    const { addDrive, fetchImpl, settings } = await activate([hpc]);
    expect(addDrive.mock.calls.map(([d]) => [d.name, (d as ClusterDrive).title])).toEqual([['cluster-hpc', 'Big HPC']]);
    expect(fetchImpl).not.toHaveBeenCalled();
    settings.composite.profiles = [hpc, { name: 'lab', ssh: { host: 'box' } }];
    settings.changed.emit();
    expect(addDrive.mock.calls.map(([d]) => d.name)).toEqual(['cluster-hpc', 'cluster-lab']);
  });

  it("opens a file browser on the profile's drive in the left area, once, and activates it", async () => {
    const { commands, shell, createFileBrowser, addDrive, fetchImpl } = await activate([hpc]);
    expect(clusterFilesWidgetId('hpc')).toBe('remote-cluster-files-hpc');
    await commands.execute(CommandIDs.openClusterFiles, { profile: 'hpc' });
    expect(createFileBrowser).toHaveBeenCalledWith('remote-cluster-files-hpc', {
      driveName: 'cluster-hpc',
      restore: true
    });
    const browser: FakeBrowser = createFileBrowser.mock.results[0].value;
    expect(shell.add).toHaveBeenCalledWith(browser, 'left', expect.anything());
    expect(browser.hasClass('jp-RemoteCluster-files')).toBe(true);
    expect(browser.title.icon).toBe(remoteClusterIcon);
    expect(browser.title.caption).toBe('Files on Big HPC (cluster home over SFTP)');
    expect(shell.activateById).toHaveBeenCalledWith('remote-cluster-files-hpc');

    await commands.execute(CommandIDs.openClusterFiles, { profile: 'hpc' });
    expect(createFileBrowser).toHaveBeenCalledTimes(1);
    expect(shell.activateById).toHaveBeenCalledTimes(2);
    expect(addDrive).toHaveBeenCalledTimes(1);
    // restored after a reload: there, not brought to the front
    await commands.execute(CommandIDs.openClusterFiles, { profile: 'other', activate: false });
    expect(createFileBrowser).toHaveBeenLastCalledWith('remote-cluster-files-other', {
      driveName: 'cluster-other',
      restore: true
    });
    expect(shell.activateById).toHaveBeenCalledTimes(2);
    expect(fetchImpl).not.toHaveBeenCalled();
  });

  it('says once why a listing failed, again after one succeeded; refreshes when the cluster is connected again', async () => {
    const { commands, createFileBrowser, model } = await activate([hpc]);
    await commands.execute(CommandIDs.openClusterFiles, { profile: 'hpc' });
    const browser: FakeBrowser = createFileBrowser.mock.results[0].value;
    const { Notification } = await import('@jupyterlab/apputils');
    const shown = jest.spyOn(Notification, 'error').mockImplementation(() => '');
    try {
      const down = new Error('The link to hpc is down: sign in again.');
      browser.model.connectionFailure.emit(down);
      browser.model.connectionFailure.emit(down);
      expect(shown.mock.calls.map(c => c[0])).toEqual(['Files on Big HPC: The link to hpc is down: sign in again.']);
      browser.model.refreshed.emit();
      browser.model.connectionFailure.emit(down);
      expect(shown).toHaveBeenCalledTimes(2);
    } finally {
      shown.mockRestore();
    }
    model.handle({ type: 'connection', cluster: 'hpc', state: 'connected' });
    expect(browser.model.refresh).toHaveBeenCalledTimes(1);
  });
});
