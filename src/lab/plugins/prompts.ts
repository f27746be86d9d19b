/**
 * The prompts plugin: the SSH layer's questions as dialogs, and signing in to a cluster
 * that waits for a person (the command and its status-bar badge).
 */
import type { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { IStatusBar } from '@jupyterlab/statusbar';
import { ITranslator } from '@jupyterlab/translation';

import { requestAPI } from '../handler';
import { askPrompt } from '../prompts';
import { addSignInStatus, registerSignIn } from '../sign-in';
import { IRemoteClusterModel } from '../tokens';

export const promptsPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyterlab-remote-cluster:prompts',
  description: 'Sign-in questions (passwords, one-time codes, host keys) as dialogs; the sign-in command and badge.',
  autoStart: true,
  requires: [IRemoteClusterModel, ITranslator],
  optional: [IStatusBar],
  activate: (
    app: JupyterFrontEnd,
    model: IRemoteClusterModel,
    translator: ITranslator,
    statusBar: IStatusBar | null
  ): void => {
    const trans = translator.load('jupyterlab_remote_cluster');

    // Prompts from the SSH layer; a prompt the agent withdraws (answered in another tab,
    // timed out, login over) closes here too.
    const openPrompts = new Map<string, AbortController>();
    model.promptClosed.connect((_, id) => openPrompts.get(id)?.abort());
    model.prompt.connect(async (_, prompt) => {
      if (openPrompts.has(prompt.id)) {
        return; // replayed after a reconnect of the event stream: shown already
      }
      const withdrawn = new AbortController();
      openPrompts.set(prompt.id, withdrawn);
      try {
        const answer = await askPrompt(prompt, trans, withdrawn.signal);
        if (answer) {
          await requestAPI(`api/v1/prompts/${prompt.id}`, { method: 'POST', body: JSON.stringify(answer) }).catch(
            () => undefined
          );
        }
      } finally {
        openPrompts.delete(prompt.id);
      }
    });

    // Clusters waiting for the user to sign in: the sidebar's button and a status-bar badge.
    registerSignIn(app.commands, model, trans);
    if (statusBar) {
      addSignInStatus(statusBar, model, app.commands, trans);
    }
  }
};
