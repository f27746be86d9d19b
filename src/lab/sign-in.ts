/**
 * Signing in to a cluster whose login needs a person (a one-time code, a password, a
 * host key). The agent never retries such a login on its own: the link waits in
 * `sign-in-needed`, shown in the sidebar and, like jupyterlab-git's credentials, as a
 * status-bar badge; either starts the login, whose questions then come as dialogs.
 */
import { Notification } from '@jupyterlab/apputils';
import type { IStatusBar } from '@jupyterlab/statusbar';
import type { TranslationBundle } from '@jupyterlab/translation';
import type { CommandRegistry } from '@lumino/commands';
import { Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import { CommandIDs } from './commands';
import { requestAPI } from './handler';
import { remoteClusterIcon } from './icons';
import type { IRemoteClusterModel } from './tokens';

export const SIGN_IN_STATUS_ID = 'jupyterlab-remote-cluster:sign-in-status';

export function registerSignIn(commands: CommandRegistry, model: IRemoteClusterModel, trans: TranslationBundle): void {
  commands.addCommand(CommandIDs.signIn, {
    label: args =>
      args['cluster'] ? trans.__('Sign in to %1', String(args['cluster'])) : trans.__('Sign in to the cluster'),
    caption: trans.__('Log in again (one-time code, password or host key); nothing retries it on its own'),
    execute: async args => {
      const cluster = String(args['cluster'] ?? model.signInNeeded[0]?.cluster ?? '');
      if (!cluster) {
        return;
      }
      try {
        await requestAPI(`api/v1/connections/${encodeURIComponent(cluster)}/sign-in`, { method: 'POST' });
      } catch (e) {
        Notification.error(trans.__('Could not sign in to %1: %2', cluster, (e as Error).message));
      }
    }
  });
}

/** The badge: shown while a cluster waits for sign-in; a click signs in to the first. */
export class SignInStatus extends Widget {
  readonly changed = new Signal<this, void>(this);

  constructor(
    private readonly model: IRemoteClusterModel,
    commands: CommandRegistry,
    private readonly trans: TranslationBundle
  ) {
    super({ node: document.createElement('button') });
    this.addClass('jp-RemoteCluster-signInStatus');
    this.node.addEventListener('click', () => void commands.execute(CommandIDs.signIn, {}));
    model.sessionsChanged.connect(this.update, this);
    this.update();
  }

  get active(): boolean {
    return this.model.signInNeeded.length > 0;
  }

  update(): void {
    const waiting = this.model.signInNeeded;
    const node = this.node;
    node.replaceChildren();
    remoteClusterIcon.element({
      container: node.appendChild(document.createElement('span')),
      tag: 'span',
      height: '14px',
      width: '14px'
    });
    const label = node.appendChild(document.createElement('span'));
    label.textContent =
      waiting.length > 1
        ? this.trans.__('Sign in to %1 (and %2 more)', waiting[0].cluster, waiting.length - 1)
        : this.trans.__('Sign in to %1', waiting[0]?.cluster ?? '');
    node.title = waiting.map(w => `${w.cluster}: ${w.message ?? ''}`).join('\n');
    this.changed.emit();
  }
}

export function addSignInStatus(
  statusBar: IStatusBar,
  model: IRemoteClusterModel,
  commands: CommandRegistry,
  trans: TranslationBundle
): void {
  const item = new SignInStatus(model, commands, trans);
  statusBar.registerStatusItem(SIGN_IN_STATUS_ID, {
    item,
    align: 'left',
    rank: 5,
    isActive: () => item.active,
    activeStateChanged: item.changed
  });
}
