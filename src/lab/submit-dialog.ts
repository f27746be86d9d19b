/**
 * The submit dialog: the profile's default resources, prefilled and editable. Values
 * are checked again by the agent (the scheduler adapter); its message is shown here and
 * nothing is submitted when it refuses.
 */
import { Dialog, Notification, showDialog } from '@jupyterlab/apputils';
import type { TranslationBundle } from '@jupyterlab/translation';
import { Widget } from '@lumino/widgets';

import type { ICandidate, IClusterProfile, IResources, ISession, IStartEstimate } from '../common/api';
import { OVERRIDABLE_RESOURCES } from '../common/profile';
import { appendError, formatDuration } from './format';
import { RemoteClusterApiError, requestAPI } from './handler';

interface IField {
  key: (typeof OVERRIDABLE_RESOURCES)[number];
  label: string;
  type: 'text' | 'number';
  placeholder?: string;
  pattern?: string;
  /** Under the "Advanced" disclosure (opened when one of them has a value). */
  advanced?: boolean;
}

/** The candidate expected to start first (undefined: no estimate at all). */
export function earliest(estimates: readonly IStartEstimate[]): IStartEstimate | undefined {
  let best: IStartEstimate | undefined;
  for (const e of estimates) {
    if (e.startsInSeconds !== undefined && (best === undefined || e.startsInSeconds < best.startsInSeconds!)) {
      best = e;
    }
  }
  return best;
}

export class SubmitForm extends Widget implements Dialog.IBodyWidget<IResources> {
  private readonly inputs = new Map<IField['key'], HTMLInputElement>();
  /** "Fastest start": where the session may run, with when each would start. */
  private candidateSelect?: HTMLSelectElement;
  private candidateTouched = false;

  constructor(
    profile: IClusterProfile,
    trans: TranslationBundle,
    error?: string,
    values: IResources = profile.resources
  ) {
    super({ node: document.createElement('form') });
    this.addClass('jp-RemoteCluster-submitForm');
    const fields: IField[] = [
      { key: 'partition', label: trans.__('Partition'), type: 'text', pattern: '[A-Za-z0-9._-]{1,64}' },
      { key: 'account', label: trans.__('Account'), type: 'text', pattern: '[A-Za-z0-9._-]{1,64}' },
      { key: 'walltime', label: trans.__('Walltime'), type: 'text', placeholder: 'HH:MM:SS' },
      { key: 'nodes', label: trans.__('Nodes'), type: 'number' },
      { key: 'cpus', label: trans.__('CPUs per node'), type: 'number' },
      { key: 'memory', label: trans.__('Memory per node'), type: 'text', placeholder: '4G' },
      { key: 'gpus', label: trans.__('GPUs per node'), type: 'number' },
      { key: 'qos', label: trans.__('QoS'), type: 'text', pattern: '[A-Za-z0-9._-]{1,64}', advanced: true },
      { key: 'constraint', label: trans.__('Node features'), type: 'text', placeholder: 'bigmem', advanced: true },
      {
        key: 'reservation',
        label: trans.__('Reservation'),
        type: 'text',
        pattern: '[A-Za-z0-9._-]{1,64}',
        advanced: true
      },
      { key: 'memoryPerCpu', label: trans.__('Memory per CPU'), type: 'text', placeholder: '2G', advanced: true },
      ...(profile.scheduler === 'sge'
        ? [
            {
              key: 'parallelEnvironment' as const,
              label: trans.__('Parallel environment'),
              type: 'text' as const,
              pattern: '[A-Za-z0-9._-]{1,64}',
              advanced: true
            }
          ]
        : [])
    ];
    const node = this.node as HTMLFormElement;
    const where = document.createElement('p');
    where.className = 'jp-RemoteCluster-submitTarget';
    where.textContent = trans.__(
      'Cluster: %1 (%2, via %3)',
      profile.title ?? profile.name,
      profile.scheduler,
      profile.ssh.host
    );
    node.appendChild(where);
    appendError(node, error);
    if (profile.candidates?.length) {
      this.addCandidates(profile.candidates, trans, values);
      // back after a refusal: the values are the user's, estimates do not change them
      this.candidateTouched = error !== undefined;
    }
    const advanced = document.createElement('details');
    advanced.className = 'jp-RemoteCluster-advanced';
    const summary = document.createElement('summary');
    summary.textContent = trans.__('Advanced');
    advanced.appendChild(summary);
    for (const f of fields) {
      const label = document.createElement('label');
      label.className = 'jp-RemoteCluster-field';
      const span = document.createElement('span');
      span.textContent = f.label;
      const input = document.createElement('input');
      input.className = 'jp-mod-styled';
      input.name = f.key;
      input.type = f.type;
      if (f.type === 'number') {
        input.min = f.key === 'gpus' ? '0' : '1';
        input.step = '1';
      }
      if (f.placeholder) {
        input.placeholder = f.placeholder;
      }
      const v = values[f.key];
      input.value = Array.isArray(v) ? v.join(' ') : v === undefined ? '' : String(v);
      label.append(span, input);
      (f.advanced ? advanced : node).appendChild(label);
      if (f.advanced && input.value) {
        advanced.open = true; // never hide a value that will be submitted
      }
      this.inputs.set(f.key, input);
    }
    const directives = profile.resources.extraDirectives ?? [];
    if (directives.length) {
      // Shown, not editable: raw directives come only from the profile (Settings Editor).
      const fixed = document.createElement('p');
      fixed.className = 'jp-RemoteCluster-fixedDirectives';
      fixed.textContent = trans.__('Extra directives (from the profile): %1', directives.join(' '));
      advanced.appendChild(fixed);
      advanced.open = true;
    }
    node.appendChild(advanced);
    // Enter submits the dialog, not a page navigation.
    node.addEventListener('submit', e => e.preventDefault());
  }

  /** Show when each candidate would start; preselect the earliest unless the user chose. */
  showEstimates(estimates: readonly IStartEstimate[], trans: TranslationBundle): void {
    const select = this.candidateSelect;
    if (!select) {
      return;
    }
    estimates.forEach((e, i) => {
      const option = select.options[i];
      if (option) {
        option.textContent = `${candidateLabel(e)} — ${
          e.startsInSeconds === undefined
            ? trans.__('no estimate: %1', e.error ?? '')
            : e.startsInSeconds < 60
              ? trans.__('starts now')
              : trans.__('starts in %1', formatDuration(e.startsInSeconds))
        }`;
      }
    });
    const best = earliest(estimates);
    if (best && !this.candidateTouched) {
      select.selectedIndex = estimates.indexOf(best);
      this.applyCandidate(best);
    }
  }

  private addCandidates(candidates: ICandidate[], trans: TranslationBundle, values: IResources): void {
    const label = this.node.appendChild(document.createElement('label'));
    label.className = 'jp-RemoteCluster-field jp-RemoteCluster-candidates';
    label.appendChild(document.createElement('span')).textContent = trans.__('Where (expected start)');
    const select = label.appendChild(document.createElement('select'));
    select.className = 'jp-mod-styled';
    select.name = 'candidate';
    for (const c of candidates) {
      select.appendChild(document.createElement('option')).textContent =
        `${candidateLabel(c)} — ${trans.__('asking…')}`;
    }
    const current = candidates.findIndex(c => c.partition === values.partition);
    select.selectedIndex = Math.max(0, current);
    select.addEventListener('change', () => {
      this.candidateTouched = true;
      this.applyCandidate(candidates[select.selectedIndex]);
    });
    this.candidateSelect = select;
  }

  private applyCandidate(c: ICandidate): void {
    this.inputs.get('partition')!.value = c.partition;
    if (c.walltime) {
      this.inputs.get('walltime')!.value = c.walltime;
    }
  }

  getValue(): IResources {
    const r: IResources = {};
    for (const [key, input] of this.inputs) {
      const v = input.value.trim();
      if (!v) {
        continue;
      }
      if (key === 'nodes' || key === 'cpus' || key === 'gpus') {
        r[key] = Number(v);
      } else {
        (r as Record<string, string>)[key] = v;
      }
    }
    return r;
  }
}

function candidateLabel(c: ICandidate): string {
  return c.walltime ? `${c.partition} · ${c.walltime}` : c.partition;
}

/** Ask for resources; undefined when the user cancels. */
export async function askResources(
  profile: IClusterProfile,
  trans: TranslationBundle,
  error?: string,
  values?: IResources,
  title?: string
): Promise<IResources | undefined> {
  const form = new SubmitForm(profile, trans, error, values);
  if (profile.candidates?.length) {
    // one probe round, cached by the agent for a minute (the dialog may come back)
    requestAPI<{ estimates: IStartEstimate[] }>(`api/v1/profiles/${encodeURIComponent(profile.name)}/estimates`, {
      method: 'POST',
      body: '{}'
    })
      .then(r => form.showEstimates(r.estimates, trans))
      .catch((e: Error) =>
        form.showEstimates(
          profile.candidates!.map(c => ({ ...c, error: e.message })),
          trans
        )
      );
  }
  const result = await showDialog({
    title: title ?? trans.__('Start a remote session'),
    body: form,
    buttons: [Dialog.cancelButton({ label: trans.__('Cancel') }), Dialog.okButton({ label: trans.__('Submit') })],
    focusNodeSelector: 'input'
  });
  return result.button.accept ? (result.value ?? undefined) : undefined;
}

export interface ISubmitDeps {
  ask: typeof askResources;
  post: (profile: string, resources: IResources) => Promise<ISession>;
  /** A message that must stay until the user closes it. */
  warn: (message: string) => void;
}

export const defaultSubmitDeps: ISubmitDeps = {
  ask: askResources,
  post: (profile, resources) =>
    requestAPI<ISession>('api/v1/sessions', { method: 'POST', body: JSON.stringify({ profile, resources }) }),
  warn: message => Notification.warning(message, { autoClose: false })
};

/**
 * Submit with a dialog. A refusal re-opens it with the agent's message and the values,
 * nothing submitted. A submission the batch system did not answer (503
 * scheduler-unavailable) may have queued the job: no second chance to submit it again
 * from here, the message (which names the job to look for) stays on screen.
 */
export async function submitWithDialog(
  profile: IClusterProfile,
  trans: TranslationBundle,
  deps: ISubmitDeps = defaultSubmitDeps,
  /** The values the dialog starts with (else the profile's), and its title. */
  start: { values?: IResources; title?: string } = {}
): Promise<ISession | undefined> {
  let error: string | undefined;
  let values = start.values;
  for (;;) {
    values = await deps.ask(profile, trans, error, values, start.title);
    if (!values) {
      return undefined;
    }
    try {
      const session = await deps.post(profile.name, values);
      // queued all the same: what the login node's checks missed, before the wait
      for (const w of session.warnings ?? []) {
        deps.warn(w);
      }
      return session;
    } catch (e) {
      if (e instanceof RemoteClusterApiError && e.status === 503 && e.code === 'scheduler-unavailable') {
        deps.warn(e.message);
        return undefined;
      }
      // Refused input, or a connection that failed (host key rejected, wrong code...):
      // the dialog comes back with the reason and the values, nothing was submitted.
      if (e instanceof RemoteClusterApiError && e.status >= 400 && e.status < 600) {
        error = e.message;
        continue;
      }
      throw e;
    }
  }
}
