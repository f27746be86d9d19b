/**
 * Profiles come from JupyterLab's user settings file, so the Settings Editor, the
 * agent and headless kernel users (nbclient, papermill) see the same profiles.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';

import JSON5 from 'json5';

import type { IClusterProfile } from '../common/api';
import { parseProfiles } from '../common/profile';

export const SETTINGS_PLUGIN_FILE = path.join('jupyterlab-remote-cluster', 'profiles.jupyterlab-settings');

export interface IProfilesResult {
  profiles: IClusterProfile[];
  errors: string[];
  file: string;
}

export async function readProfiles(settingsDir: string): Promise<IProfilesResult> {
  const file = path.join(settingsDir, SETTINGS_PLUGIN_FILE);
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      return { profiles: [], errors: [], file };
    }
    return { profiles: [], errors: [`Cannot read ${file}: ${(e as Error).message}`], file };
  }
  let raw: unknown;
  try {
    raw = JSON5.parse(text);
  } catch (e) {
    return { profiles: [], errors: [`${file} is not valid JSON: ${(e as Error).message}`], file };
  }
  return { ...parseProfiles(raw), file };
}
