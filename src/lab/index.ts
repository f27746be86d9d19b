/**
 * The frontend's plugins. Other extensions can use `IRemoteClusterModel` (the agent's
 * sessions, cluster links and prompts) and run the commands in `CommandIDs`.
 */
import type { JupyterFrontEndPlugin } from '@jupyterlab/application';

import { addProfilePlugin } from './plugins/add-profile';
import { dashboardPlugin } from './plugins/dashboard';
import { drivePlugin } from './plugins/drive';
import { earlierOutputPlugin } from './plugins/earlier-output';
import { launcherPlugin } from './plugins/launcher';
import { launcherCardsPlugin } from './plugins/launcher-cards';
import { modelPlugin } from './plugins/model';
import { promptsPlugin } from './plugins/prompts';
import { runningPlugin } from './plugins/running';
import { sessionsPlugin } from './plugins/sessions';
import { terminalsPlugin } from './plugins/terminals';

export { CommandIDs, LabCommandIDs } from './commands';
export { describeHealth } from './plugins/model';
export {
  IRemoteClusterModel,
  LAUNCHER_CATEGORY,
  PROFILES_PLUGIN_ID,
  type ConnectionState,
  type IClusterConnectionState
} from './tokens';

const plugins: JupyterFrontEndPlugin<unknown>[] = [
  modelPlugin,
  sessionsPlugin,
  launcherPlugin,
  launcherCardsPlugin,
  dashboardPlugin,
  promptsPlugin,
  addProfilePlugin,
  earlierOutputPlugin,
  runningPlugin,
  terminalsPlugin,
  drivePlugin
];

export default plugins;
