/**
 * Questions from the agent's SSH layer (passphrase, password, one-time codes, unknown
 * host keys) as JupyterLab dialogs. Answers go straight back to the agent and are kept
 * nowhere.
 */
import { Dialog } from '@jupyterlab/apputils';
import type { TranslationBundle } from '@jupyterlab/translation';
import { Widget } from '@lumino/widgets';

import type { IPrompt, IPromptAnswer } from '../common/api';
import { appendError } from './format';

class AnswersForm extends Widget implements Dialog.IBodyWidget<string[]> {
  private readonly inputs: HTMLInputElement[] = [];

  constructor(prompt: IPrompt, error?: string) {
    super({ node: document.createElement('form') });
    this.addClass('jp-RemoteCluster-promptForm');
    this.node.addEventListener('submit', e => e.preventDefault());
    if (prompt.instructions) {
      this.node.appendChild(document.createElement('p')).textContent = prompt.instructions;
    }
    if (error) {
      appendError(this.node, error);
    }
    for (const q of prompt.questions) {
      const label = document.createElement('label');
      label.className = 'jp-RemoteCluster-field';
      label.appendChild(document.createElement('span')).textContent = q.text;
      const input = document.createElement('input');
      input.className = 'jp-mod-styled';
      input.type = q.echo ? 'text' : 'password';
      input.autocomplete = 'off';
      label.appendChild(input);
      this.node.appendChild(label);
      this.inputs.push(input);
    }
  }

  getValue(): string[] {
    return this.inputs.map(i => i.value);
  }
}

/**
 * Shows the question; resolves with the answer, or undefined when the agent withdrew it
 * (`withdrawn` aborted: answered in another tab, timed out, the login ended), in which
 * case the dialog closes by itself and nothing is sent.
 */
export async function askPrompt(
  prompt: IPrompt,
  trans: TranslationBundle,
  withdrawn?: AbortSignal
): Promise<IPromptAnswer | undefined> {
  if (prompt.kind === 'host-key') {
    const body = document.createElement('div');
    body.className = 'jp-RemoteCluster-hostKey';
    body.appendChild(document.createElement('p')).textContent = trans.__(
      'The authenticity of host %1 cannot be established. Accept its key only if this fingerprint matches the one your site publishes:',
      prompt.host
    );
    const fp = body.appendChild(document.createElement('code'));
    fp.textContent = `${prompt.hostKey?.type ?? ''} ${prompt.hostKey?.fingerprint ?? ''}`;
    // ssh(1)'s warnings (keys of other types known for this host): a reason to look twice.
    for (const w of prompt.warnings ?? []) {
      const p = body.appendChild(document.createElement('p'));
      p.className = 'jp-RemoteCluster-hostKeyWarning';
      p.setAttribute('role', 'alert');
      p.textContent = w;
    }
    const result = await launch(
      new Dialog({
        title: prompt.title,
        body: new Widget({ node: body }),
        buttons: [
          Dialog.cancelButton({ label: trans.__('Reject') }),
          Dialog.warnButton({ label: trans.__('Accept and remember') })
        ],
        // Enter must never accept a key by accident.
        defaultButton: 0
      }),
      withdrawn
    );
    return result && { accept: result.button.accept };
  }
  let error: string | undefined;
  for (;;) {
    const result = await launch(
      new Dialog({
        title: prompt.title,
        body: new AnswersForm(prompt, error),
        buttons: [Dialog.cancelButton({ label: trans.__('Cancel') }), Dialog.okButton({ label: trans.__('Send') })],
        focusNodeSelector: 'input'
      }),
      withdrawn
    );
    if (!result) {
      return undefined;
    }
    if (!result.button.accept) {
      return { cancel: true };
    }
    const answers = result.value ?? [];
    if (prompt.questions.every((q, i) => q.echo || answers[i])) {
      return { answers };
    }
    // An empty code or password would only be a failed attempt on the server.
    error = trans.__('Enter an answer: an empty one would count as a failed sign-in.');
  }
}

async function launch<T>(dialog: Dialog<T>, withdrawn?: AbortSignal): Promise<Dialog.IResult<T> | undefined> {
  if (withdrawn?.aborted) {
    dialog.dispose();
    return undefined;
  }
  const close = (): void => dialog.reject();
  withdrawn?.addEventListener('abort', close, { once: true });
  try {
    const result = await dialog.launch();
    return withdrawn?.aborted ? undefined : result;
  } finally {
    withdrawn?.removeEventListener('abort', close);
    dialog.dispose();
  }
}
