/**
 * Every command id the frontend uses, in one place: the extension's own commands
 * (`CommandIDs`, namespaced like JupyterLab's) and the JupyterLab commands it runs.
 */
export namespace CommandIDs {
  /** Palette: the agent's health in a dialog. */
  export const showStatus = 'remote-cluster:show-status';
  /** Launcher tile and palette entry per profile; args: `profile`, `isPalette`. */
  export const submit = 'remote-cluster:submit';
  /** Opens the Settings Editor on the profiles; args: `isPalette`. */
  export const addProfile = 'remote-cluster:add-profile';
  /** A profile from a Host entry of ~/.ssh/config; args: `isPalette`. */
  export const addFromSshConfig = 'remote-cluster:add-from-ssh-config';
  /** Shows the "Remote sessions" sidebar (the Running panel's and status bar's click). */
  export const showSessions = 'remote-cluster:show-sessions';
  /** The sessions' actions; args: `session` (and `kernel` for attachKernel). */
  export const openNotebook = 'remote-cluster:open-notebook';
  export const openDashboard = 'remote-cluster:open-dashboard';
  /** A shell in a running job (args: session?, terminal?: one that runs already). */
  export const openTerminal = 'remote-cluster:open-terminal';
  /** A shell on a cluster's login node (args: profile?, terminal?: one that runs already). */
  export const openLoginTerminal = 'remote-cluster:open-login-terminal';
  /** A file browser on a cluster's home directory over SFTP (args: profile?, activate?: false when restored). */
  export const openClusterFiles = 'remote-cluster:open-cluster-files';
  /** Reopens a terminal panel after a reload (args: command, and that command's args). */
  export const reopenTerminal = 'remote-cluster:reopen-terminal';
  /** A web server of a session, by its port number (args: session?, port?). */
  export const openWebPort = 'remote-cluster:open-web-port';
  export const cancelSession = 'remote-cluster:cancel-session';
  export const removeSession = 'remote-cluster:remove-session';
  export const attachKernel = 'remote-cluster:attach-kernel';
  /** Dask worker jobs joining the session's scheduler; args: `session`, `count` (absent: asks). */
  export const addWorkers = 'remote-cluster:add-workers';
  /** The allocation's hours (docs/allocation.md); args: `session` (extend: `minutes`, absent: asks). */
  export const continueSession = 'remote-cluster:continue-session';
  export const continueSessionWith = 'remote-cluster:continue-session-with';
  export const extendSession = 'remote-cluster:extend-session';
  export const saveAndStop = 'remote-cluster:save-and-stop';
  export const relaunchSession = 'remote-cluster:relaunch-session';
  /** Idle reclaim (docs/allocation.md, "Idle sessions"): the user keeps an idle session; args: `session`. */
  export const keepSession = 'remote-cluster:keep-session';
  /** The ends of the session's log files on the cluster (session-log.ts); args: `session`. */
  export const showLog = 'remote-cluster:show-log';
  /** The output of cells this page did not run (earlier-output.ts); args: `kernel`. */
  export const showEarlierOutput = 'remote-cluster:show-earlier-output';
  /** Starts the login of a cluster waiting for sign-in; args: `cluster` (default: the first). */
  export const signIn = 'remote-cluster:sign-in';
}

/** JupyterLab's own commands that the frontend executes. */
export namespace LabCommandIDs {
  export const openSettingEditor = 'settingeditor:open';
  export const createNotebook = 'notebook:create-new';
  export const newUntitled = 'docmanager:new-untitled';
  export const openDocument = 'docmanager:open';
}
