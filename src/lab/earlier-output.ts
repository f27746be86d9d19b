/**
 * Output of cells this page did not run. After a reload, or a Jupyter server restart and
 * Attach, a cell started from the earlier page keeps printing, and the IOPub keeper on
 * the node resends what it printed meanwhile (docs/connectivity.md). JupyterLab gives a
 * cell only the output of requests this page sent, so all of it would be lost: it is
 * collected here per kernel and shown in a read-only panel.
 */
import type * as nbformat from '@jupyterlab/nbformat';
import { OutputAreaModel } from '@jupyterlab/outputarea';
import type { KernelMessage } from '@jupyterlab/services';

/** At most this many outputs per kernel (consecutive stream lines count as one). */
export const EARLIER_OUTPUT_MAX = 5000;
const OUTPUT_TYPES = new Set(['stream', 'display_data', 'execute_result', 'error']);

/**
 * Output for a request sent before `since` (ms, this page's start) by another client:
 * a cell of an earlier page. Requests of this page's other connections (a console on the
 * same kernel) are newer than the page, and other people's clients have no place here.
 */
export function isEarlierOutput(msg: KernelMessage.IIOPubMessage, clientId: string, since: number): boolean {
  if (!OUTPUT_TYPES.has(msg.header.msg_type)) {
    return false;
  }
  const parent = msg.parent_header as Partial<KernelMessage.IHeader> | undefined;
  if (!parent?.session || parent.session === clientId) {
    return false;
  }
  const sent = Date.parse(parent.date ?? '');
  return Number.isFinite(sent) && sent < since;
}

/** One kernel's earlier output, as notebook outputs (untrusted: no script runs). */
export class EarlierOutputLog {
  readonly model = new OutputAreaModel({ trusted: false });
  /** Outputs left out past EARLIER_OUTPUT_MAX. */
  dropped = 0;
  /** Several connections of this page hear the same message: each is added once. */
  private readonly seen = new Set<string>();

  /** Adds the message's output; false if it was already there or over the bound. */
  add(msg: KernelMessage.IIOPubMessage): boolean {
    if (this.seen.has(msg.header.msg_id)) {
      return false;
    }
    if (this.seen.size >= 2 * EARLIER_OUTPUT_MAX) {
      this.seen.clear(); // duplicates arrive together: old ids are not needed
    }
    this.seen.add(msg.header.msg_id);
    if (this.model.length >= EARLIER_OUTPUT_MAX) {
      this.dropped++;
      return false;
    }
    this.model.add({ ...msg.content, output_type: msg.header.msg_type } as nbformat.IOutput);
    return true;
  }
}
