import * as fs from 'node:fs';
import * as path from 'node:path';

import type { JupyterFrontEnd } from '@jupyterlab/application';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { IFileBrowserFactory } from '@jupyterlab/filebrowser';
import { ILauncher, LauncherModel } from '@jupyterlab/launcher';
import { INotebookTracker } from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { IRunningSessionManagers } from '@jupyterlab/running';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStatusBar } from '@jupyterlab/statusbar';
import { ITranslator, nullTranslator } from '@jupyterlab/translation';
import { CommandRegistry } from '@lumino/commands';
import { Signal } from '@lumino/signaling';

import plugins, { IRemoteClusterModel, PROFILES_PLUGIN_ID } from '../index';
import { CommandIDs } from '../commands';

const LAB = path.resolve(__dirname, '..');
const PACKAGE = path.resolve(LAB, '..', '..', 'package.json');

/** Every .ts file of src/lab outside the tests. */
function sources(dir = LAB): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap(e => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      return e.name === '__tests__' ? [] : sources(p);
    }
    return e.name.endsWith('.ts') ? [p] : [];
  });
}

describe('the frontend plugins', () => {
  it('are the expected ones, each with a description', () => {
    expect(plugins.map(p => p.id).sort()).toEqual(
      [
        'jupyterlab-remote-cluster:add-profile',
        'jupyterlab-remote-cluster:dashboard',
        'jupyterlab-remote-cluster:drive',
        'jupyterlab-remote-cluster:earlier-output',
        'jupyterlab-remote-cluster:launcher-cards',
        'jupyterlab-remote-cluster:model',
        'jupyterlab-remote-cluster:profiles',
        'jupyterlab-remote-cluster:prompts',
        'jupyterlab-remote-cluster:running',
        'jupyterlab-remote-cluster:sessions',
        'jupyterlab-remote-cluster:terminals'
      ].sort()
    );
    for (const p of plugins) {
      expect(p.description).toBeTruthy();
      expect(p.autoStart).toBe(true);
    }
  });

  it('keep the settings plugin id that user settings and the agent are keyed by', () => {
    expect(PROFILES_PLUGIN_ID).toBe('jupyterlab-remote-cluster:profiles');
    const { name, jupyterlab } = JSON.parse(fs.readFileSync(PACKAGE, 'utf8'));
    const schema = path.resolve(path.dirname(PACKAGE), jupyterlab.schemaDir, 'profiles.json');
    expect(`${name}:${path.basename(schema, '.json')}`).toBe(PROFILES_PLUGIN_ID);
    expect(fs.existsSync(schema)).toBe(true);
  });

  it('have exactly one provider of IRemoteClusterModel, which the others can require', () => {
    expect(plugins.filter(p => p.provides === IRemoteClusterModel).map(p => p.id)).toEqual([
      'jupyterlab-remote-cluster:model'
    ]);
    for (const p of plugins) {
      for (const t of [...(p.requires ?? []), ...(p.optional ?? [])]) {
        if (t.name.startsWith('jupyterlab-remote-cluster:')) {
          expect(t).toBe(IRemoteClusterModel);
        }
      }
    }
  });

  it('name command ids only in commands.ts', () => {
    const own = Object.values(CommandIDs);
    expect(new Set(own).size).toBe(own.length);
    const offenders = sources()
      .filter(f => path.basename(f) !== 'commands.ts')
      .filter(f => /['"`](remote-cluster|notebook|settingeditor):[a-z]/.test(fs.readFileSync(f, 'utf8')))
      .map(f => path.relative(LAB, f));
    expect(offenders).toEqual([]);
  });

  it('register every command of CommandIDs when activated together', async () => {
    const commands = new CommandRegistry();
    const shell = { add: jest.fn(), activateById: jest.fn() };
    const app = {
      commands,
      shell,
      serviceManager: { kernelspecs: { refreshSpecs: async () => undefined }, contents: { addDrive: jest.fn() } },
      started: new Promise<void>(() => undefined) // never: the model stays offline
    } as unknown as JupyterFrontEnd;
    const registry = {
      load: () => Promise.reject(new Error('no settings in this test'))
    } as unknown as ISettingRegistry;
    const running = { add: jest.fn() };
    const statusBar = { registerStatusItem: jest.fn() };
    const provided = new Map<unknown, unknown>([
      [ITranslator, nullTranslator],
      [ISettingRegistry, registry],
      [INotebookTracker, { widgetAdded: new Signal(commands) }],
      [IRenderMimeRegistry, {}],
      [IRunningSessionManagers, running],
      [IStatusBar, statusBar],
      [ILauncher, new LauncherModel()],
      [IFileBrowserFactory, { createFileBrowser: jest.fn() }],
      [IDocumentManager, {}]
    ]);
    const error = jest.spyOn(console, 'error').mockImplementation(() => undefined);
    try {
      // Providers first, as JupyterLab orders them.
      const ordered = [...plugins].sort((a, b) => Number(!!b.provides) - Number(!!a.provides));
      for (const p of ordered) {
        const args = [...(p.requires ?? []), ...(p.optional ?? [])].map(t => provided.get(t) ?? null);
        expect((p.requires ?? []).every(t => provided.has(t))).toBe(true);
        const value = await p.activate(app, ...args);
        if (p.provides) {
          provided.set(p.provides, value);
        }
      }
    } finally {
      error.mockRestore();
    }
    const ours = commands.listCommands().filter(id => id.startsWith('remote-cluster:'));
    expect(ours.sort()).toEqual(Object.values(CommandIDs).sort());
    // The sessions sidebar, in the left area as before.
    expect(shell.add).toHaveBeenCalledWith(expect.objectContaining({ id: 'jp-remote-cluster-sessions' }), 'left', {
      rank: 850
    });
    // A "Remote clusters" section in the Running panel, and the status bar's item.
    expect(running.add).toHaveBeenCalledWith(expect.objectContaining({ name: 'Remote clusters' }));
    expect(statusBar.registerStatusItem).toHaveBeenCalledWith(
      'jupyterlab-remote-cluster:running',
      expect.objectContaining({ align: 'left' })
    );
  });
});
