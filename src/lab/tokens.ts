/**
 * What other extensions can use: the `IRemoteClusterModel` token (the agent's sessions,
 * cluster links and prompts, live from its event stream), and the ids and names shared
 * by this extension's plugins. Command ids are in `commands.ts`.
 */
import type { ISignal } from '@lumino/signaling';
import { Token } from '@lumino/coreutils';

import type { AgentEvent, ConnectionState as ClusterLinkState, IPrompt, ISession } from '../common/api';

/** Launcher category shared by every tile of this extension. */
export const LAUNCHER_CATEGORY = 'Remote cluster';

/**
 * The plugin that owns the settings schema (schema/profiles.json): user settings and the
 * agent's reader are keyed by this id, which must not change.
 */
export const PROFILES_PLUGIN_ID = 'jupyterlab-remote-cluster:profiles';

/** The state of the event stream from the agent. */
export type ConnectionState = 'connecting' | 'open' | 'closed';

/** The agent's SSH link to one cluster profile, as last reported. */
export interface IClusterConnectionState {
  state: ClusterLinkState;
  message?: string;
}

/**
 * The frontend's picture of the agent, kept current by its event WebSocket: sessions,
 * the SSH link of each cluster, and the questions of logins in progress.
 */
export interface IRemoteClusterModel {
  /** Every session the agent knows, newest first. */
  readonly sessions: ISession[];

  /** One session by id. */
  session(id: string): ISession | undefined;

  /** A session was added, changed or removed (undefined: many or unknown). */
  readonly sessionsChanged: ISignal<IRemoteClusterModel, ISession | undefined>;

  /** The event stream's state. */
  readonly state: ConnectionState;

  /** The agent's SSH connection to the cluster of `profile` (undefined: not used yet). */
  connection(profile: string): IClusterConnectionState | undefined;

  /** A cluster link changed state (sessionsChanged is emitted too). */
  readonly clusterMessage: ISignal<IRemoteClusterModel, IRemoteClusterModel.IClusterMessage>;

  /** Profiles whose cluster waits for the user to sign in (a code, a password, a host key). */
  readonly signInNeeded: { cluster: string; message?: string }[];

  /** A question of the SSH layer to show the user (replayed when the stream reconnects). */
  readonly prompt: ISignal<IRemoteClusterModel, IPrompt>;

  /** The agent withdrew the question with this id (answered elsewhere, timed out, login over). */
  readonly promptClosed: ISignal<IRemoteClusterModel, string>;

  /** Something the user must know that belongs to no session; each at most once per page. */
  readonly notice: ISignal<IRemoteClusterModel, IRemoteClusterModel.INotice>;

  /**
   * Applies one event as if the agent had sent it: e.g. the session the agent returned
   * for a submission or a cancellation, shown before its event arrives.
   */
  handle(event: AgentEvent): void;
}

export namespace IRemoteClusterModel {
  export interface IClusterMessage {
    cluster: string;
    state: string;
    message?: string;
  }

  export interface INotice {
    level: 'error' | 'warning';
    message: string;
  }
}

/** The model of the agent's sessions and prompts, provided by `jupyterlab-remote-cluster:model`. */
export const IRemoteClusterModel = new Token<IRemoteClusterModel>(
  'jupyterlab-remote-cluster:IRemoteClusterModel',
  "The remote-cluster agent's sessions, cluster links and sign-in prompts, kept current by its event stream."
);
