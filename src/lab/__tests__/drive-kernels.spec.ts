import { Signal } from '@lumino/signaling';

import { chdirCode, driveNotebookFolder, followDriveNotebook } from '../drive-kernels';

describe('a notebook of a cluster drive runs in its folder', () => {
  it("knows a drive notebook's folder, and nothing of other paths", () => {
    expect(driveNotebookFolder('cluster-hpc:runs/june/a.ipynb')).toBe('~/runs/june');
    expect(driveNotebookFolder('cluster-hpc:a.ipynb')).toBe('~');
    expect(driveNotebookFolder('runs/a.ipynb')).toBeUndefined();
    expect(driveNotebookFolder('cluster-hpc:../a.ipynb')).toBeUndefined();
  });

  it('says it in the kernel language, quoted', () => {
    expect(chdirCode('python', "~/it's here")).toBe(
      'import os as _rc_os; _rc_os.chdir(_rc_os.path.join(_rc_os.path.expanduser("~"), "it\'s here")); del _rc_os'
    );
    expect(chdirCode('bash', "~/it's here")).toBe("cd ~/'it'\\''s here'");
    expect(chdirCode('bash', '~')).toBe('cd ~');
    expect(chdirCode('R', '~/a "b"')).toBe('setwd(file.path(path.expand("~"), "a \\"b\\""))');
    expect(chdirCode('julia', '~/a')).toBeUndefined();
  });

  it('sends it once per remote kernel process, when ready, silently', async () => {
    const kernelChanged = new Signal<object, unknown>({});
    const statusChanged = new Signal<object, string>({});
    const sent: unknown[] = [];
    const kernel = {
      name: 'remote-cluster-hpc--python3',
      isDisposed: false,
      spec: Promise.resolve({ language: 'python' }),
      requestExecute: (c: { code: string; silent: boolean }) => sent.push([c.code.slice(0, 28), c.silent])
    };
    const ctx = { kernelChanged, statusChanged, session: { kernel } };
    let path = 'cluster-hpc:runs/a.ipynb';
    followDriveNotebook(ctx as never, () => path);
    const settle = () => new Promise(r => setTimeout(r, 0));
    statusChanged.emit('idle');
    statusChanged.emit('busy');
    statusChanged.emit('idle'); // (a cell ran: not again)
    await settle();
    expect(sent).toEqual([['import os as _rc_os; _rc_os.', true]]);
    statusChanged.emit('restarting');
    statusChanged.emit('idle'); // a restart: a new process, again
    await settle();
    expect(sent).toHaveLength(2);
    path = 'runs/a.ipynb'; // saved as a local notebook: nothing
    kernelChanged.emit({});
    statusChanged.emit('idle');
    await settle();
    expect(sent).toHaveLength(2);
    // a local kernel of a drive notebook: nothing either
    path = 'cluster-hpc:runs/a.ipynb';
    kernel.name = 'python3';
    kernelChanged.emit({});
    statusChanged.emit('idle');
    await settle();
    expect(sent).toHaveLength(2);
  });
});
