/**
 * The job script every batch adapter submits: shebang, the scheduler's directive block,
 * the profile's setup lines (the job stops at the first that fails), then `exec` of the
 * remote helper so the scheduler's signals reach it directly. Adapters only say what
 * their directives look like.
 */
import type { IJobSpec } from './types';
import { commandLine, jobFiles, pythonCheck, setupBlock, setupLines } from './validate';

export interface IJobScriptParts {
  /** The scheduler as users know it, e.g. `PBS` (in comments and messages). */
  title: string;
  /**
   * Setup lines the scheduler would read as its own directives (they would bypass
   * validation), and what to do instead.
   */
  directive: RegExp;
  directiveHint: string;
  /** The directive block (validated; already prefixed, e.g. `#PBS -N x`) and any lines before the setup. */
  header: (files: ReturnType<typeof jobFiles>) => string[];
}

export function renderJobScript(spec: IJobSpec, parts: IJobScriptParts): string {
  const files = jobFiles(spec);
  // resources first, then setup, then the command: the first bad field is the one reported
  const header = parts.header(files);
  const setup = setupLines(spec.setup, parts.directive, parts.directiveHint);
  commandLine(spec.command);
  return [
    '#!/bin/sh',
    '# jupyterlab-remote-cluster session (generated; edits are overwritten)',
    ...header,
    '',
    ...setupBlock(setup),
    ...pythonCheck(spec.python),
    `# the remote helper replaces this shell: ${parts.title} signals reach it directly`,
    `exec ${spec.command}`,
    ''
  ].join('\n');
}
