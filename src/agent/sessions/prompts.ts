/**
 * Questions for the user (passphrases, one-time codes, unknown host keys). The SSH
 * layer asks; the question goes out on the event stream; the frontend answers through
 * POST /api/v1/prompts/<id>. Answers live only in memory until they are handed back.
 */
import { randomBytes } from 'node:crypto';

import type { IPrompt, IPromptAnswer } from '../../common/api';

export const PROMPT_TIMEOUT_MS = 180_000;

interface IPending {
  prompt: IPrompt;
  resolve: (a: IPromptAnswer) => void;
  timer: NodeJS.Timeout;
}

export class PromptBroker {
  private readonly pending = new Map<string, IPending>();

  constructor(
    private readonly emit: (e: { type: 'prompt'; prompt: IPrompt } | { type: 'prompt-closed'; id: string }) => void,
    /** Whether any frontend is listening; without one nobody can answer. */
    private readonly hasListeners: () => boolean
  ) {}

  /** Ask; `signal` fires when the question no longer matters (the attempt failed or was closed). */
  ask(question: Omit<IPrompt, 'id'>, signal?: AbortSignal): Promise<IPromptAnswer> {
    if (!this.hasListeners()) {
      return Promise.reject(
        new Error(
          `${question.title} for ${question.host} needs an answer, but no JupyterLab is connected to ask it. ` +
            'Open JupyterLab (or use a key without passphrase and an ssh-agent) and try again.'
        )
      );
    }
    const prompt: IPrompt = { ...question, id: randomBytes(8).toString('hex') };
    return new Promise(resolve => {
      const timer = setTimeout(() => this.settle(prompt.id, { cancel: true }), PROMPT_TIMEOUT_MS);
      this.pending.set(prompt.id, { prompt, resolve, timer });
      signal?.addEventListener('abort', () => this.settle(prompt.id, { cancel: true }), { once: true });
      this.emit({ type: 'prompt', prompt });
    });
  }

  /** The frontend's answer; false if no such question is open (answered or timed out). */
  answer(id: string, answer: IPromptAnswer): boolean {
    return this.settle(id, answer);
  }

  /** The last JupyterLab went away: nobody can answer the open questions any more. */
  withdrawAll(): void {
    for (const id of [...this.pending.keys()]) {
      this.settle(id, { cancel: true });
    }
  }

  open(): IPrompt[] {
    return [...this.pending.values()].map(p => p.prompt);
  }

  private settle(id: string, answer: IPromptAnswer): boolean {
    const p = this.pending.get(id);
    if (!p) {
      return false;
    }
    clearTimeout(p.timer);
    this.pending.delete(id);
    this.emit({ type: 'prompt-closed', id });
    p.resolve(answer);
    return true;
  }
}
