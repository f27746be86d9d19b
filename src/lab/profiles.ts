/**
 * The cluster profiles as the agent lists them (`GET api/v1/profiles`), and the dialog
 * of commands that act on one profile when none is given (login-node terminal, files).
 */
import { InputDialog } from '@jupyterlab/apputils';

import { requestAPI } from './handler';

/** What the commands need of a profile. */
export interface IProfileChoice {
  name: string;
  title?: string;
}

/** The profiles of the settings, as the agent read them. */
export async function listProfiles(): Promise<IProfileChoice[]> {
  const { profiles } = await requestAPI<{ profiles: IProfileChoice[] }>('api/v1/profiles');
  return profiles;
}

/** `Title (name)`, or the name alone when the profile has no other title. */
export function profileLabel(p: IProfileChoice): string {
  return p.title && p.title !== p.name ? `${p.title} (${p.name})` : p.name;
}

/**
 * The profile the user picks in a dialog titled `title`: none asked when there is at
 * most one; undefined when there is none or the user cancels.
 */
export async function pickProfile(title: string): Promise<string | undefined> {
  const profiles = await listProfiles();
  if (profiles.length <= 1) {
    return profiles[0]?.name;
  }
  const r = await InputDialog.getItem({ title, items: profiles.map(profileLabel) });
  return r.button.accept ? profiles.find(p => profileLabel(p) === r.value)?.name : undefined;
}
