/**
 * Terminals on a cluster's login node: an interactive shell on a channel of the cluster's
 * SSH connection (no new login), held here in the agent, so a page reload finds the same
 * shell and its recent screen. Unlike a terminal in a job (whose shell the session's helper
 * holds on the node), it ends when the link to the cluster drops: the shell is sshd's
 * child on the login node. Clients speak the same terminado messages as the job's
 * terminals (../sessions/terminals.ts), offsets included.
 */
import { StringDecoder } from 'node:string_decoder';

import type { WebSocket } from 'ws';

import type { ITerminalInfo } from '../../common/api';
import { NotFoundError, ConflictError } from '../schedulers/types';
import { CLOSE_ENDED, parseClientMessage } from '../sessions/terminals';
import type { IClusterLink, IShellChannel } from './link';

const SCROLLBACK_BYTES = 64 * 1024;
/** Per cluster: a runaway loop must not open channels until sshd refuses (MaxSessions, 10). */
export const MAX_LOGIN_TERMINALS = 4;
export const LOGIN_TERMINAL_ID = /^l[0-9]{1,6}$/;

interface ILoginTerminal {
  id: string;
  cluster: string;
  channel: IShellChannel;
  scrollback: Buffer;
  total: number;
  decoder: StringDecoder;
  clients: Set<WebSocket>;
  startedAt: number;
}

export class LoginTerminals {
  private readonly terminals = new Map<string, ILoginTerminal>();
  private seq = 0;

  constructor(private readonly log: (msg: string) => void) {}

  list(cluster: string): ITerminalInfo[] {
    return [...this.terminals.values()].filter(t => t.cluster === cluster).map(info);
  }

  async open(cluster: string, link: IClusterLink, size: { rows?: number; cols?: number }): Promise<ITerminalInfo> {
    if (!link.shell) {
      throw new ConflictError(`The link to ${cluster} cannot open a shell.`);
    }
    if (this.list(cluster).length >= MAX_LOGIN_TERMINALS) {
      throw new ConflictError(`${cluster} has ${MAX_LOGIN_TERMINALS} login-node terminals open already.`);
    }
    const channel = await link.shell(size.rows ?? 24, size.cols ?? 80);
    const t: ILoginTerminal = {
      id: `l${++this.seq}`,
      cluster,
      channel,
      scrollback: Buffer.alloc(0),
      total: 0,
      decoder: new StringDecoder('utf8'),
      clients: new Set(),
      startedAt: Date.now()
    };
    this.terminals.set(t.id, t);
    channel.on('data', (data: Buffer) => {
      t.scrollback = Buffer.concat([t.scrollback, data]).subarray(-SCROLLBACK_BYTES);
      t.total += data.length;
      const text = t.decoder.write(data);
      if (text) {
        const line = JSON.stringify(['stdout', text, t.total]);
        t.clients.forEach(ws => ws.send(line));
      }
    });
    channel.on('error', () => channel.destroy());
    channel.on('close', (code?: number) => {
      this.terminals.delete(t.id);
      this.log(`login terminal ${t.id} on ${cluster} ended`);
      const line = JSON.stringify(['disconnect', typeof code === 'number' ? code : 1]);
      for (const ws of t.clients) {
        ws.send(line);
        ws.close(CLOSE_ENDED, 'the shell ended');
      }
    });
    this.log(`login terminal ${t.id} on ${cluster} opened`);
    return info(t);
  }

  close(cluster: string, id: string): void {
    this.get(cluster, id).channel.destroy(); // (sshd hangs the shell up when its channel closes)
  }

  /** A WebSocket client: the recent screen (after `since` if given), then the shell's output. */
  attach(cluster: string, id: string, ws: WebSocket, since?: number): void {
    let t: ILoginTerminal;
    try {
      t = this.get(cluster, id);
    } catch (err) {
      ws.close(CLOSE_ENDED, (err as Error).message.slice(0, 120));
      return;
    }
    ws.send(JSON.stringify(['setup', {}]));
    const start = t.total - t.scrollback.length;
    const replay = t.scrollback.subarray(Math.max(0, (since ?? start) - start));
    if (replay.length > 0) {
      ws.send(JSON.stringify(['stdout', replay.toString('utf8'), t.total]));
    }
    t.clients.add(ws);
    ws.on('message', (data, isBinary) => {
      const msg = isBinary ? undefined : parseClientMessage(data.toString());
      if (!msg) {
        return;
      }
      const [type, a, b] = JSON.parse(msg) as [string, string | number, number];
      if (type === 'stdin') {
        t.channel.write(a as string);
      } else {
        t.channel.setWindow(a as number, b, 0, 0);
      }
    });
    ws.on('close', () => t.clients.delete(ws));
    ws.on('error', () => ws.terminate());
  }

  /** The agent stops: every shell with it. */
  closeAll(): void {
    for (const t of this.terminals.values()) {
      t.channel.destroy();
    }
  }

  private get(cluster: string, id: string): ILoginTerminal {
    const t = this.terminals.get(id);
    if (!t || t.cluster !== cluster) {
      throw new NotFoundError(`No terminal ${id} on the login node of ${cluster}.`, 'terminal');
    }
    return t;
  }
}

function info(t: ILoginTerminal): ITerminalInfo {
  return { terminalId: t.id, pid: 0, alive: true, clients: t.clients.size };
}
