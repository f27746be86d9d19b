/**
 * Questions from the agent's SSH layer (passphrase, password, one-time codes, unknown
 * host keys) as JupyterLab dialogs. Answers go straight back to the agent and are kept
 * nowhere.
 */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import type { TranslationBundle } from '@jupyterlab/translation';
import { Widget } from '@lumino/widgets';

import type { IPrompt, IPromptAnswer } from '../common/api';

class AnswersForm extends Widget implements Dialog.IBodyWidget<string[]> {
  private readonly inputs: HTMLInputElement[] = [];

  constructor(prompt: IPrompt) {
    super({ node: document.createElement('form') });
    this.addClass('jp-RemoteCluster-promptForm');
    this.node.addEventListener('submit', e => e.preventDefault());
    if (prompt.instructions) {
      this.node.appendChild(document.createElement('p')).textContent = prompt.instructions;
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

export async function askPrompt(prompt: IPrompt, trans: TranslationBundle): Promise<IPromptAnswer> {
  if (prompt.kind === 'host-key') {
    const body = document.createElement('div');
    body.className = 'jp-RemoteCluster-hostKey';
    body.appendChild(document.createElement('p')).textContent = trans.__(
      'The authenticity of host %1 cannot be established. Accept its key only if this fingerprint matches the one your site publishes:',
      prompt.host
    );
    const fp = body.appendChild(document.createElement('code'));
    fp.textContent = `${prompt.hostKey?.type ?? ''} ${prompt.hostKey?.fingerprint ?? ''}`;
    const result = await showDialog({
      title: prompt.title,
      body: new Widget({ node: body }),
      buttons: [
        Dialog.cancelButton({ label: trans.__('Reject') }),
        Dialog.warnButton({ label: trans.__('Accept and remember') })
      ],
      // Enter must never accept a key by accident.
      defaultButton: 0
    });
    return { accept: result.button.accept };
  }
  const result = await showDialog({
    title: prompt.title,
    body: new AnswersForm(prompt),
    buttons: [Dialog.cancelButton({ label: trans.__('Cancel') }), Dialog.okButton({ label: trans.__('Send') })],
    focusNodeSelector: 'input'
  });
  if (!result.button.accept) {
    return { cancel: true };
  }
  return { answers: result.value ?? [] };
}
