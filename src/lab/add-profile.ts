/**
 * "Add a cluster from ~/.ssh/config": the agent lists the concrete Host aliases of the
 * user's ssh_config (GET api/v1/ssh-hosts); the user picks one, names the profile and
 * gives the scheduler and the cluster's Python. The profile refers to the alias only, so
 * User, Port, keys and ProxyJump keep coming from ssh_config. It is checked with the same
 * parser the agent uses and appended to the profiles setting; existing profiles are never
 * replaced, and a name already in use is refused with a message.
 */
import { Dialog, Notification, showDialog } from '@jupyterlab/apputils';
import type { ISettingRegistry } from '@jupyterlab/settingregistry';
import type { TranslationBundle } from '@jupyterlab/translation';
import type { CommandRegistry } from '@lumino/commands';
import { Widget } from '@lumino/widgets';

import { SCHEDULERS, type IClusterProfile, type IConfiguredHost } from '../common/api';
import { NAME_RE, parseProfile } from '../common/profile';
import { CommandIDs } from './commands';
import { appendError } from './format';
import { requestAPI } from './handler';
import { remoteClusterIcon } from './icons';
import { PROFILES_PLUGIN_ID } from './tokens';

/** One Host alias as the agent resolved it. */
export type ISshHost = IConfiguredHost;

export interface IAddProfileValues {
  host: string;
  name: string;
  scheduler: string;
  python: string;
}

/** A profile name derived from an alias (NAME_RE: letters, digits, `.`, `_`, `-`). */
export function suggestName(alias: string): string {
  const s = alias
    .replace(/[^A-Za-z0-9._-]+/g, '-')
    .replace(/^[^A-Za-z0-9]+/, '')
    .slice(0, 64);
  return NAME_RE.test(s) ? s : 'cluster';
}

/** How a host is shown in the list: alias, then where it really goes. */
export function describeHost(h: ISshHost, trans: TranslationBundle): string {
  const where = `${h.user}@${h.hostName}${h.port === 22 ? '' : `:${h.port}`}`;
  return h.proxyJump ? trans.__('%1 (%2 via %3)', h.alias, where, h.proxyJump) : trans.__('%1 (%2)', h.alias, where);
}

export class AddProfileForm extends Widget implements Dialog.IBodyWidget<IAddProfileValues> {
  readonly hostSelect: HTMLSelectElement;
  readonly nameInput: HTMLInputElement;
  readonly schedulerSelect: HTMLSelectElement;
  readonly pythonInput: HTMLInputElement;

  constructor(hosts: ISshHost[], trans: TranslationBundle, error?: string, values?: IAddProfileValues) {
    super({ node: document.createElement('form') });
    this.addClass('jp-RemoteCluster-addProfileForm');
    const node = this.node as HTMLFormElement;
    appendError(node, error);
    const field = (label: string, input: HTMLElement): void => {
      const l = document.createElement('label');
      l.className = 'jp-RemoteCluster-field';
      const span = document.createElement('span');
      span.textContent = label;
      l.append(span, input);
      node.appendChild(l);
    };

    this.hostSelect = document.createElement('select');
    this.hostSelect.className = 'jp-mod-styled';
    this.hostSelect.name = 'host';
    for (const h of hosts) {
      const o = document.createElement('option');
      o.value = h.alias;
      o.textContent = describeHost(h, trans);
      this.hostSelect.appendChild(o);
    }
    field(trans.__('SSH host (login node)'), this.hostSelect);

    this.nameInput = document.createElement('input');
    this.nameInput.className = 'jp-mod-styled';
    this.nameInput.name = 'name';
    this.nameInput.pattern = NAME_RE.source.slice(1, -1);
    field(trans.__('Profile name'), this.nameInput);

    this.schedulerSelect = document.createElement('select');
    this.schedulerSelect.className = 'jp-mod-styled';
    this.schedulerSelect.name = 'scheduler';
    for (const s of SCHEDULERS) {
      const o = document.createElement('option');
      o.value = s;
      o.textContent = s;
      this.schedulerSelect.appendChild(o);
    }
    field(trans.__('Scheduler'), this.schedulerSelect);

    this.pythonInput = document.createElement('input');
    this.pythonInput.className = 'jp-mod-styled';
    this.pythonInput.name = 'python';
    this.pythonInput.placeholder = 'python3';
    field(trans.__('Python on the cluster (with ipykernel)'), this.pythonInput);

    const first = hosts[0]?.alias ?? '';
    this.hostSelect.value = values?.host ?? first;
    this.nameInput.value = values?.name ?? suggestName(first);
    this.schedulerSelect.value = values?.scheduler ?? 'slurm';
    this.pythonInput.value = values?.python ?? 'python3';
    // The suggested name follows the chosen host until the user edits it.
    let nameEdited = values !== undefined;
    this.nameInput.addEventListener('input', () => (nameEdited = true));
    this.hostSelect.addEventListener('change', () => {
      if (!nameEdited) {
        this.nameInput.value = suggestName(this.hostSelect.value);
      }
    });
    node.addEventListener('submit', e => e.preventDefault());
  }

  getValue(): IAddProfileValues {
    return {
      host: this.hostSelect.value,
      name: this.nameInput.value.trim(),
      scheduler: this.schedulerSelect.value,
      python: this.pythonInput.value.trim()
    };
  }
}

/** Minutes without use after which a profile made here lets its sessions be ended (docs/allocation.md). */
export const NEW_PROFILE_IDLE_TIMEOUT = 60;

/**
 * The settings entry for the values: the alias only, the rest stays in ssh_config. A new
 * profile releases idle allocations; existing ones are not touched (absent: the site's
 * default, off unless the administrators set one).
 */
export function profileEntry(v: IAddProfileValues): Record<string, unknown> {
  return {
    name: v.name,
    ssh: { host: v.host },
    scheduler: v.scheduler,
    python: v.python || 'python3',
    idleTimeout: NEW_PROFILE_IDLE_TIMEOUT
  };
}

/**
 * Checks the entry and appends it to the profiles setting. Throws (changing nothing)
 * on an invalid entry or a name already in use.
 */
export async function appendProfile(
  settings: ISettingRegistry.ISettings,
  entry: Record<string, unknown>
): Promise<IClusterProfile> {
  const current = settings.get('profiles');
  // The user's own list; with none yet, start from what is in effect (e.g. an admin's defaults).
  const list = (
    Array.isArray(current.user) ? current.user : Array.isArray(current.composite) ? current.composite : []
  ) as unknown[];
  const profile = parseProfile(entry, list.length);
  const names = new Set(
    [...list, ...(Array.isArray(current.composite) ? current.composite : [])].map(p =>
      p && typeof p === 'object' ? (p as { name?: unknown }).name : undefined
    )
  );
  if (names.has(profile.name)) {
    throw new Error(`A profile named "${profile.name}" already exists; choose another name.`);
  }
  await settings.set('profiles', [...list, entry] as Parameters<ISettingRegistry.ISettings['set']>[1]);
  return profile;
}

/** The whole flow: list hosts, ask, validate, append; the dialog comes back with the reason. */
export async function addProfileFromSshConfig(
  registry: ISettingRegistry,
  trans: TranslationBundle,
  fetchHosts: () => Promise<{ file: string; hosts: ISshHost[] }> = () => requestAPI('api/v1/ssh-hosts')
): Promise<IClusterProfile | undefined> {
  let listing: { file: string; hosts: ISshHost[] };
  try {
    listing = await fetchHosts();
  } catch (e) {
    Notification.error(trans.__('Could not read your ssh_config: %1', (e as Error).message));
    return undefined;
  }
  if (listing.hosts.length === 0) {
    await showDialog({
      title: trans.__('No hosts in ssh_config'),
      body: trans.__(
        '%1 has no Host entries without wildcards. Add one, or create the profile in the Settings Editor.',
        listing.file
      ),
      buttons: [Dialog.okButton({ label: trans.__('Close') })]
    });
    return undefined;
  }
  const settings = await registry.load(PROFILES_PLUGIN_ID);
  let error: string | undefined;
  let values: IAddProfileValues | undefined;
  for (;;) {
    const result = await showDialog({
      title: trans.__('Add a cluster from ssh_config'),
      body: new AddProfileForm(listing.hosts, trans, error, values),
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: trans.__('Add profile') })],
      focusNodeSelector: 'input[name="name"]'
    });
    if (!result.button.accept || !result.value) {
      return undefined;
    }
    values = result.value;
    try {
      const profile = await appendProfile(settings, profileEntry(values));
      Notification.success(trans.__('Profile "%1" added; it is in the Launcher.', profile.name), { autoClose: 5000 });
      return profile;
    } catch (e) {
      error = (e as Error).message;
    }
  }
}

/** The command; the add-profile plugin registers it and shows it next to "Add a cluster". */
export function registerAddFromSshConfig(
  commands: CommandRegistry,
  registry: ISettingRegistry,
  trans: TranslationBundle
): void {
  commands.addCommand(CommandIDs.addFromSshConfig, {
    label: args =>
      args['isPalette'] ? trans.__('Add a remote cluster profile from ~/.ssh/config') : trans.__('Add from ssh_config'),
    caption: trans.__('Create a cluster profile from a Host entry of your ~/.ssh/config'),
    icon: args => (args['isPalette'] ? undefined : remoteClusterIcon),
    execute: () => addProfileFromSshConfig(registry, trans)
  });
}
