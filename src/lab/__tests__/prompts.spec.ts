import { nullTranslator } from '@jupyterlab/translation';

import type { IPrompt } from '../../common/api';
import { askPrompt } from '../prompts';

const trans = nullTranslator.load('jupyterlab');

const otp: IPrompt = {
  id: '0123456789abcdef',
  kind: 'keyboard-interactive',
  cluster: 'hpc',
  host: 'bastion',
  title: 'Login to bob@bastion',
  questions: [{ text: "One-time password (OATH) for `bob': ", echo: false }]
};

const dialog = () => document.body.querySelector<HTMLElement>('.jp-Dialog');
const button = (label: string) =>
  [...document.body.querySelectorAll<HTMLButtonElement>('.jp-Dialog button')].find(b =>
    b.textContent?.includes(label)
  )!;

async function shown(): Promise<HTMLElement> {
  for (let i = 0; i < 100 && !dialog(); i++) {
    await new Promise(r => setTimeout(r, 10));
  }
  return dialog()!;
}

async function gone(): Promise<void> {
  for (let i = 0; i < 100 && dialog(); i++) {
    await new Promise(r => setTimeout(r, 10));
  }
  expect(dialog()).toBeNull();
}

describe('prompt dialogs', () => {
  afterEach(() => document.body.replaceChildren());

  it('closes by itself when the agent withdraws the question, and answers nothing', async () => {
    const withdrawn = new AbortController();
    const answer = askPrompt(otp, trans, withdrawn.signal);
    expect((await shown()).textContent).toContain('One-time password');
    withdrawn.abort();
    await expect(answer).resolves.toBeUndefined();
    await gone();
  });

  it('never sends an empty code: asks again, saying why', async () => {
    const answer = askPrompt(otp, trans);
    await shown();
    button('Send').click();
    const again = await shown();
    await new Promise(r => setTimeout(r, 50));
    expect(dialog()!.textContent).toContain('an empty one would count as a failed sign-in');
    again.querySelector<HTMLInputElement>('input')!.value = '424242';
    button('Send').click();
    await expect(answer).resolves.toEqual({ answers: ['424242'] });
  });

  it("shows ssh(1)'s warning with an unknown host key", async () => {
    const answer = askPrompt(
      {
        ...otp,
        kind: 'host-key',
        title: 'Unknown host key for login',
        questions: [],
        hostKey: { type: 'ssh-ed25519', fingerprint: 'SHA256:abc' },
        warnings: ['Keys of other types are already known for this host (ssh-rsa), but not this ssh-ed25519 key.']
      },
      trans
    );
    const d = await shown();
    expect(d.querySelector('.jp-RemoteCluster-hostKeyWarning')?.textContent).toContain(
      'Keys of other types are already known'
    );
    button('Reject').click();
    await expect(answer).resolves.toEqual({ accept: false });
  });
});
