/**
 * Terminals on a login node (cluster/login-terminals.ts) against a scripted shell channel
 * and WebSocket: the screen kept for a page that comes back, only what a client missed
 * when it attaches again, input and sizes to the shell, the end said once.
 */
import { EventEmitter } from 'node:events';
import { PassThrough } from 'node:stream';

import type { WebSocket } from 'ws';

import type { IClusterLink, IShellChannel } from '../cluster/link';
import { LoginTerminals, MAX_LOGIN_TERMINALS } from '../cluster/login-terminals';
import { CLOSE_ENDED } from '../sessions/terminals';

class FakeShell extends PassThrough {
  typed = '';
  windows: number[][] = [];
  constructor() {
    super();
    // what a client writes goes to the "shell", not back out as its output
    this._write = (chunk, _enc, cb) => {
      this.typed += chunk.toString();
      cb();
    };
  }
  setWindow(rows: number, cols: number): void {
    this.windows.push([rows, cols]);
  }
  print(text: string): void {
    this.emit('data', Buffer.from(text));
  }
}

class FakeWs extends EventEmitter {
  got: unknown[] = [];
  closed?: number;
  send(data: string): void {
    this.got.push(JSON.parse(data));
  }
  close(code: number): void {
    this.closed = code;
    this.emit('close');
  }
  terminate(): void {
    this.close(1006);
  }
  say(...msg: unknown[]): void {
    this.emit('message', Buffer.from(JSON.stringify(msg)), false);
  }
}

function setup() {
  const shells: FakeShell[] = [];
  const link = {
    shell: async () => {
      const s = new FakeShell();
      shells.push(s);
      return s as unknown as IShellChannel;
    }
  } as unknown as IClusterLink;
  return { terminals: new LoginTerminals(() => undefined), link, shells };
}

describe('LoginTerminals', () => {
  it('keeps the screen for a new client and sends only what a returning one missed', async () => {
    const { terminals, link, shells } = setup();
    const t = await terminals.open('hpc', link, { rows: 30, cols: 100 });
    expect(t.terminalId).toBe('l1');
    const shell = shells[0];
    shell.print('alice@login:~$ ');
    const a = new FakeWs();
    terminals.attach('hpc', 'l1', a as unknown as WebSocket);
    expect(a.got).toEqual([
      ['setup', {}],
      ['stdout', 'alice@login:~$ ', 15]
    ]);
    a.say('stdin', 'squeue\r');
    a.say('set_size', 40, 120);
    a.say('stdout', 'forged'); // not a client's message: dropped
    expect(shell.typed).toBe('squeue\r');
    expect(shell.windows).toEqual([[40, 120]]);
    a.close(1001); // the page went
    shell.print('JOBID\r\n');
    const again = new FakeWs();
    terminals.attach('hpc', 'l1', again as unknown as WebSocket, 15);
    expect(again.got).toEqual([
      ['setup', {}],
      ['stdout', 'JOBID\r\n', 22]
    ]);
    expect(terminals.list('hpc').map(x => x.terminalId)).toEqual(['l1']);
    expect(terminals.list('other')).toEqual([]);

    shell.emit('close', 0); // the shell exited
    expect(again.got[again.got.length - 1]).toEqual(['disconnect', 0]);
    expect(again.closed).toBe(CLOSE_ENDED);
    expect(terminals.list('hpc')).toEqual([]);
    const late = new FakeWs();
    terminals.attach('hpc', 'l1', late as unknown as WebSocket);
    expect(late.closed).toBe(CLOSE_ENDED);
  });

  it('refuses a terminal of another cluster, and more than a few per cluster', async () => {
    const { terminals, link } = setup();
    await terminals.open('hpc', link, {});
    expect(() => terminals.close('other', 'l1')).toThrow(/No terminal l1 on the login node of other/);
    for (let i = 1; i < MAX_LOGIN_TERMINALS; i++) {
      await terminals.open('hpc', link, {});
    }
    await expect(terminals.open('hpc', link, {})).rejects.toThrow(/has 4 login-node terminals open already/);
    await expect(terminals.open('other', link, {})).resolves.toMatchObject({ terminalId: 'l5' });
  });
});
