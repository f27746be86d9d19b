import { PromptBroker } from '../sessions/prompts';

describe('PromptBroker', () => {
  const question = {
    kind: 'keyboard-interactive' as const,
    cluster: 'testbed',
    host: 'bastion',
    title: 'One-time code',
    questions: [{ text: 'One-time password: ', echo: false }]
  };

  it('refuses at once when no frontend can answer', async () => {
    const broker = new PromptBroker(
      () => undefined,
      () => false
    );
    await expect(broker.ask(question)).rejects.toThrow(/no JupyterLab is connected/);
  });

  it('publishes the question and hands the answer back once', async () => {
    const events: any[] = [];
    const broker = new PromptBroker(
      e => events.push(e),
      () => true
    );
    const pending = broker.ask(question);
    expect(events[0].type).toBe('prompt');
    const id = events[0].prompt.id;
    expect(broker.open().map(p => p.id)).toEqual([id]);
    expect(broker.answer(id, { answers: ['123456'] })).toBe(true);
    await expect(pending).resolves.toEqual({ answers: ['123456'] });
    expect(events[1]).toEqual({ type: 'prompt-closed', id });
    // A second answer (another tab) finds nothing open.
    expect(broker.answer(id, { answers: ['654321'] })).toBe(false);
    expect(broker.open()).toEqual([]);
  });

  it('closes the question when the SSH attempt no longer needs it', async () => {
    const events: any[] = [];
    const broker = new PromptBroker(
      e => events.push(e),
      () => true
    );
    const abort = new AbortController();
    const pending = broker.ask(question, abort.signal);
    abort.abort();
    await expect(pending).resolves.toEqual({ cancel: true });
    expect(events.map(e => e.type)).toEqual(['prompt', 'prompt-closed']);
  });
});
