import { SettingRegistry, type ISettingRegistry } from '@jupyterlab/settingregistry';
import type { IDataConnector } from '@jupyterlab/statedb';
import { acceptDialog, dismissDialog, sleep, waitForDialog } from '@jupyterlab/testutils';
import { nullTranslator } from '@jupyterlab/translation';

import schema from '../../../schema/profiles.json';
import {
  AddProfileForm,
  addProfileFromSshConfig,
  appendProfile,
  profileEntry,
  suggestName,
  type ISshHost
} from '../add-profile';
import { PROFILES_PLUGIN_ID } from '../tokens';

const trans = nullTranslator.load('jupyterlab_remote_cluster');

const HOSTS: ISshHost[] = [
  {
    alias: 'hpc-login',
    hostName: 'login.hpc.example.org',
    user: 'me',
    port: 22,
    proxyJump: 'gw',
    file: '/home/me/.ssh/config'
  },
  { alias: 'lab_box', hostName: '10.0.0.5', user: 'me', port: 2222, file: '/home/me/.ssh/config.d/lab' }
];

/** The user's settings file in memory, behind the real SettingRegistry (schema validation included). */
class MemoryConnector implements IDataConnector<ISettingRegistry.IPlugin, string> {
  saves = 0;
  constructor(public raw: string) {}
  async fetch(id: string): Promise<ISettingRegistry.IPlugin | undefined> {
    return id === PROFILES_PLUGIN_ID
      ? {
          id,
          schema: schema as unknown as ISettingRegistry.ISchema,
          data: { composite: {}, user: {} },
          raw: this.raw,
          version: '4.0.0'
        }
      : undefined;
  }
  async list(): Promise<any> {
    return { ids: [], values: [] };
  }
  async save(_id: string, raw: string): Promise<void> {
    this.saves++;
    this.raw = raw;
  }
  async remove(): Promise<void> {
    return undefined;
  }
}

const existing = { name: 'hpc-login', ssh: { host: 'other' }, scheduler: 'pbs', python: '/opt/py/bin/python' };

async function registryWith(profiles: unknown[]): Promise<{ registry: SettingRegistry; connector: MemoryConnector }> {
  const connector = new MemoryConnector(JSON.stringify({ profiles }));
  return { registry: new SettingRegistry({ connector }), connector };
}

/** The profiles the registry wrote (it adds `//` comment lines from the schema). */
const saved = (c: MemoryConnector): unknown =>
  JSON.parse(
    c.raw
      .split('\n')
      .filter(l => !l.trim().startsWith('//'))
      .join('\n')
  ).profiles;

const setValue = (name: string, value: string): void => {
  const el = document.querySelector(`.jp-Dialog [name="${name}"]`) as HTMLInputElement | HTMLSelectElement;
  el.value = value;
  el.dispatchEvent(new Event(el instanceof HTMLSelectElement ? 'change' : 'input'));
};

describe('add a profile from ssh_config', () => {
  it('suggests profile names that the profile parser accepts', () => {
    expect(suggestName('hpc-login')).toBe('hpc-login');
    expect(suggestName('my host@x')).toBe('my-host-x');
    expect(suggestName('_x')).toBe('x');
    expect(suggestName('%%%')).toBe('cluster');
  });

  it('shows each host with where it really goes; the suggested name follows the host until edited', () => {
    const form = new AddProfileForm(HOSTS, trans);
    const options = [...form.hostSelect.options].map(o => [o.value, o.textContent]);
    expect(options).toEqual([
      ['hpc-login', 'hpc-login (me@login.hpc.example.org via gw)'],
      ['lab_box', 'lab_box (me@10.0.0.5:2222)']
    ]);
    expect(form.getValue()).toEqual({ host: 'hpc-login', name: 'hpc-login', scheduler: 'slurm', python: 'python3' });
    form.hostSelect.value = 'lab_box';
    form.hostSelect.dispatchEvent(new Event('change'));
    expect(form.nameInput.value).toBe('lab_box');
    form.nameInput.value = 'mine';
    form.nameInput.dispatchEvent(new Event('input'));
    form.hostSelect.value = 'hpc-login';
    form.hostSelect.dispatchEvent(new Event('change'));
    expect(form.getValue().name).toBe('mine');
    expect([...form.schedulerSelect.options].map(o => o.value)).toEqual([
      'slurm',
      'pbs',
      'torque',
      'sge',
      'lsf',
      'htcondor',
      'ssh'
    ]);
  });

  it('appends a valid profile and keeps the existing ones; refuses a duplicate or invalid one, writing nothing', async () => {
    const { registry, connector } = await registryWith([existing]);
    const settings = await registry.load(PROFILES_PLUGIN_ID);

    const added = await appendProfile(
      settings,
      profileEntry({ host: 'lab_box', name: 'lab', scheduler: 'slurm', python: '' })
    );
    expect(added).toMatchObject({
      name: 'lab',
      ssh: { host: 'lab_box' },
      scheduler: 'slurm',
      python: 'python3',
      idleTimeout: 60
    });
    expect(saved(connector)).toEqual([
      existing,
      // made in the UI: idle sessions are released after an hour (existing profiles are not touched)
      { name: 'lab', ssh: { host: 'lab_box' }, scheduler: 'slurm', python: 'python3', idleTimeout: 60 }
    ]);
    const saves = connector.saves;
    const before = connector.raw;

    await expect(
      appendProfile(
        settings,
        profileEntry({ host: 'hpc-login', name: 'hpc-login', scheduler: 'slurm', python: 'python3' })
      )
    ).rejects.toThrow('A profile named "hpc-login" already exists; choose another name.');
    await expect(
      appendProfile(
        settings,
        profileEntry({ host: 'hpc-login', name: 'bad name', scheduler: 'slurm', python: 'python3' })
      )
    ).rejects.toThrow(/name/);
    await expect(
      appendProfile(settings, profileEntry({ host: 'hpc-login', name: 'x', scheduler: 'cron', python: 'python3' }))
    ).rejects.toThrow('profile "x": scheduler "cron" is not supported');
    await expect(
      appendProfile(
        settings,
        profileEntry({ host: 'hpc-login', name: 'y', scheduler: 'slurm', python: 'python3; rm -rf ~' })
      )
    ).rejects.toThrow(/profile "y"/);
    expect(connector.saves).toBe(saves);
    expect(connector.raw).toBe(before);
  });

  it('runs the dialog: a refused name brings the dialog back with the reason, then the profile is added', async () => {
    const { registry, connector } = await registryWith([existing]);
    const fetchHosts = jest.fn(async () => ({ file: '/home/me/.ssh/config', hosts: HOSTS }));
    const flow = addProfileFromSshConfig(registry, trans, fetchHosts);

    // First try: the suggested name is taken.
    await waitForDialog(document.body, 2000);
    expect(document.querySelector('.jp-Dialog .jp-RemoteCluster-addProfileForm')).not.toBeNull();
    setValue('scheduler', 'pbs');
    await acceptDialog();
    // Second try: the reason is shown, the values are kept.
    await sleep(50);
    await waitForDialog(document.body, 2000);
    expect(document.querySelector('.jp-Dialog [role="alert"]')?.textContent).toBe(
      'A profile named "hpc-login" already exists; choose another name.'
    );
    expect((document.querySelector('.jp-Dialog [name="scheduler"]') as HTMLSelectElement).value).toBe('pbs');
    setValue('name', 'hpc2');
    setValue('python', '/opt/conda/bin/python');
    await acceptDialog();

    const profile = await flow;
    expect(profile).toMatchObject({
      name: 'hpc2',
      ssh: { host: 'hpc-login' },
      scheduler: 'pbs',
      python: '/opt/conda/bin/python'
    });
    expect(saved(connector)).toEqual([
      existing,
      { name: 'hpc2', ssh: { host: 'hpc-login' }, scheduler: 'pbs', python: '/opt/conda/bin/python', idleTimeout: 60 }
    ]);
    expect(fetchHosts).toHaveBeenCalledTimes(1);
  });

  it('cancel adds nothing; an empty ssh_config says so', async () => {
    const { registry, connector } = await registryWith([]);
    const cancelled = addProfileFromSshConfig(registry, trans, async () => ({ file: '/h/.ssh/config', hosts: HOSTS }));
    await waitForDialog(document.body, 2000);
    await dismissDialog();
    await expect(cancelled).resolves.toBeUndefined();
    expect(connector.saves).toBe(0);

    const none = addProfileFromSshConfig(registry, trans, async () => ({ file: '/h/.ssh/config', hosts: [] }));
    await waitForDialog(document.body, 2000);
    expect(document.querySelector('.jp-Dialog-body')?.textContent).toContain('/h/.ssh/config has no Host entries');
    await acceptDialog();
    await expect(none).resolves.toBeUndefined();
    expect(connector.saves).toBe(0);
  });
});
