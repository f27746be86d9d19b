/** Command ids and constants, namespaced like JupyterLab's own. */
export namespace CommandIDs {
  export const showStatus = 'remote-cluster:show-status';
  export const submit = 'remote-cluster:submit';
  export const addProfile = 'remote-cluster:add-profile';
  export const openNotebook = 'remote-cluster:open-notebook';
  export const openDashboard = 'remote-cluster:open-dashboard';
  export const cancelSession = 'remote-cluster:cancel-session';
  export const removeSession = 'remote-cluster:remove-session';
  export const attachKernel = 'remote-cluster:attach-kernel';
  export const signIn = 'remote-cluster:sign-in';
}

/** Launcher category shared by every tile of this extension. */
export const LAUNCHER_CATEGORY = 'Remote cluster';

export const PROFILES_PLUGIN_ID = 'jupyterlab-remote-cluster:profiles';
