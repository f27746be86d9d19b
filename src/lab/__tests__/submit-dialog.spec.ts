import { nullTranslator } from '@jupyterlab/translation';

import type { IClusterProfile, ISession } from '../../common/api';
import { RemoteClusterApiError } from '../handler';
import { SubmitForm, submitWithDialog, type ISubmitDeps } from '../submit-dialog';

const trans = nullTranslator.load('jupyterlab');
const profile = (resources: IClusterProfile['resources']): IClusterProfile => ({
  name: 'hpc',
  ssh: { host: 'login' },
  scheduler: 'slurm',
  resources,
  python: 'python3'
});

const input = (form: SubmitForm, name: string) => form.node.querySelector<HTMLInputElement>(`input[name="${name}"]`)!;
const advanced = (form: SubmitForm) =>
  form.node.querySelector<HTMLDetailsElement>('details.jp-RemoteCluster-advanced')!;

describe('SubmitForm', () => {
  it('shows QoS, node features, reservation and memory per CPU under a closed "Advanced" disclosure', () => {
    const form = new SubmitForm(profile({ partition: 'debug', walltime: '01:00:00' }), trans);
    const adv = advanced(form);
    expect(adv.open).toBe(false);
    expect(adv.querySelector('summary')!.textContent).toBe('Advanced');
    for (const name of ['qos', 'constraint', 'reservation', 'memoryPerCpu']) {
      expect(adv.contains(input(form, name))).toBe(true);
    }
    for (const name of ['partition', 'account', 'walltime', 'cpus', 'memory', 'gpus']) {
      expect(adv.contains(input(form, name))).toBe(false);
    }
    expect(input(form, 'partition').value).toBe('debug');
    expect(input(form, 'constraint').closest('label')!.textContent).toContain('Node features');
    expect(form.getValue()).toEqual({ partition: 'debug', walltime: '01:00:00' });
  });

  it('opens "Advanced" when the profile sets one of its fields, and returns what was typed', () => {
    const form = new SubmitForm(profile({ qos: 'short' }), trans);
    expect(advanced(form).open).toBe(true);
    input(form, 'constraint').value = ' bigmem&ib ';
    input(form, 'reservation').value = 'training';
    input(form, 'memoryPerCpu').value = '2G';
    input(form, 'gpus').value = '1';
    expect(form.getValue()).toEqual({
      qos: 'short',
      constraint: 'bigmem&ib',
      reservation: 'training',
      memoryPerCpu: '2G',
      gpus: 1
    });
  });

  it("shows the profile's extra directives but offers no way to send others", () => {
    const form = new SubmitForm(profile({ extraDirectives: ['--mail-type=END', '--exclusive'] }), trans);
    expect(form.node.querySelector('input[name="extraDirectives"]')).toBeNull();
    const fixed = form.node.querySelector('.jp-RemoteCluster-fixedDirectives')!;
    expect(fixed.textContent).toBe('Extra directives (from the profile): --mail-type=END --exclusive');
    expect(advanced(form).open).toBe(true);
    // (the profile's directives apply anyway: the agent merges the profile under these)
    expect(form.getValue()).toEqual({});
  });

  it('fastest start: the earliest candidate is preselected and fills partition and walltime', () => {
    const p = {
      ...profile({ partition: 'big', walltime: '01:00:00' }),
      candidates: [{ partition: 'big', walltime: '04:00:00' }, { partition: 'debug' }, { partition: 'gpu' }]
    };
    const form = new SubmitForm(p, trans);
    const select = form.node.querySelector<HTMLSelectElement>('select[name="candidate"]')!;
    expect([...select.options].map(o => o.textContent)).toEqual([
      'big · 04:00:00 — asking…',
      'debug — asking…',
      'gpu — asking…'
    ]);
    expect(select.selectedIndex).toBe(0);
    form.showEstimates(
      [
        { partition: 'big', walltime: '04:00:00', startsInSeconds: 5400 },
        { partition: 'debug', startsInSeconds: 5 },
        { partition: 'gpu', error: 'invalid partition specified: gpu' }
      ],
      trans
    );
    expect([...select.options].map(o => o.textContent)).toEqual([
      'big · 04:00:00 — starts in 1h 30m',
      'debug — starts now',
      'gpu — no estimate: invalid partition specified: gpu'
    ]);
    expect(select.selectedIndex).toBe(1);
    expect(form.getValue()).toEqual({ partition: 'debug', walltime: '01:00:00' });
    // the user's choice wins over later estimates
    select.selectedIndex = 0;
    select.dispatchEvent(new Event('change'));
    expect(form.getValue()).toEqual({ partition: 'big', walltime: '04:00:00' });
    form.showEstimates(
      [
        { partition: 'big', startsInSeconds: 900 },
        { partition: 'debug', startsInSeconds: 0 }
      ],
      trans
    );
    expect(select.selectedIndex).toBe(0);
    expect(form.getValue().partition).toBe('big');
  });

  it("shows the agent's refusal above the fields", () => {
    const form = new SubmitForm(profile({}), trans, 'Slurm refused the job: Invalid feature specification.');
    const alert = form.node.querySelector('[role="alert"]')!;
    expect(alert.textContent).toBe('Slurm refused the job: Invalid feature specification.');
    expect(alert.compareDocumentPosition(input(form, 'partition')) & Node.DOCUMENT_POSITION_FOLLOWING).toBeTruthy();
  });
});

describe('submitWithDialog', () => {
  const session = { id: 'ab12cd' } as ISession;

  function deps(answers: (ISession | RemoteClusterApiError)[]) {
    const asked: (string | undefined)[] = [];
    const warned: string[] = [];
    let posts = 0;
    const d: ISubmitDeps = {
      ask: async (_p, _t, error, values) => {
        asked.push(error);
        return asked.length > 3 ? undefined : (values ?? { walltime: '01:00:00' });
      },
      post: async () => {
        const a = answers[posts++];
        if (a instanceof RemoteClusterApiError) {
          throw a;
        }
        return a;
      },
      warn: m => warned.push(m)
    };
    return { d, asked, warned, posts: () => posts };
  }

  it('a refusal brings the dialog back with the reason; the second try goes through', async () => {
    const { d, asked, posts } = deps([new RemoteClusterApiError(400, 'invalid', 'Slurm refused the job: x.'), session]);
    expect(await submitWithDialog(profile({}), trans, d)).toBe(session);
    expect(asked).toEqual([undefined, 'Slurm refused the job: x.']);
    expect(posts()).toBe(2);
  });

  it("queued with the login node's warnings: each is shown, and stays until closed", async () => {
    const missing = 'The remote Python /opt/py was not found on the login node; the job looks for it on its node …';
    const { d, asked, warned } = deps([{ ...session, warnings: [missing] }]);
    expect((await submitWithDialog(profile({}), trans, d))?.id).toBe('ab12cd');
    expect(asked).toEqual([undefined]);
    expect(warned).toEqual([missing]);
  });

  it('no answer from the batch system: no second submission from the dialog, the message stays', async () => {
    const message = 'The submission got no answer: ... named "jrc-ab12cd": look for it ...';
    const { d, asked, warned, posts } = deps([new RemoteClusterApiError(503, 'scheduler-unavailable', message)]);
    expect(await submitWithDialog(profile({}), trans, d)).toBeUndefined();
    expect(asked).toHaveLength(1);
    expect(posts()).toBe(1);
    expect(warned).toEqual([message]);
  });
});
