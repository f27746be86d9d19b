/**
 * The shape every command on one session shares (the sidebar's buttons, the warnings'
 * actions): the session named by `args.session`, nothing when it is gone, and a failure
 * said as a notification with the agent's message rather than thrown at the user.
 */
import { InputDialog, Notification } from '@jupyterlab/apputils';
import type { CommandRegistry } from '@lumino/commands';
import type { ReadonlyPartialJSONObject } from '@lumino/coreutils';

import type { ISession } from '../common/api';
import type { IRemoteClusterModel } from './tokens';

export interface ISessionCommand {
  label: string;
  /** What failed, with the error's message (a translated sentence). */
  failed: (message: string) => string;
  run: (s: ISession, args: ReadonlyPartialJSONObject) => Promise<void>;
}

export function addSessionCommand(
  commands: CommandRegistry,
  model: IRemoteClusterModel,
  id: string,
  c: ISessionCommand
): void {
  commands.addCommand(id, {
    label: c.label,
    execute: async args => {
      const s = model.session(String(args['session']));
      if (!s) {
        return;
      }
      try {
        await c.run(s, args);
      } catch (e) {
        Notification.error(c.failed((e as Error).message));
      }
    }
  });
}

/** `args[key]` as a number, else what the user types (undefined: the dialog was cancelled). */
export async function numberArg(
  args: ReadonlyPartialJSONObject,
  key: string,
  dialog: { title: string; label: string; value: number }
): Promise<number | undefined> {
  if (args[key] !== undefined) {
    return Number(args[key]);
  }
  const asked = await InputDialog.getNumber(dialog);
  return asked.button.accept && asked.value !== null ? asked.value : undefined;
}
