/**
 * The helper's package shipped as one zipapp: Python itself runs it (the machine's
 * python3, as the cluster's would), its bytes depend only on the sources, and the
 * protocol is read from whichever module declares it.
 */
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { HELPER_PROTOCOL } from '../sessions/connectivity';
import { readRemoteFiles } from '../sessions/remote-files';
import { makeZip, pythonSources } from '../sessions/zipapp';

async function packageDir(root: string, protocol = '7'): Promise<string> {
  const helper = path.join(root, 'helper');
  await fs.mkdir(path.join(helper, 'pkg', '__pycache__'), { recursive: true });
  await fs.writeFile(
    path.join(helper, '__main__.py'),
    'import sys\nfrom pkg.cli import main\nsys.exit(main(sys.argv[1:]))\n'
  );
  await fs.writeFile(path.join(helper, 'pkg', '__init__.py'), '');
  await fs.writeFile(path.join(helper, 'pkg', 'protocol.py'), `PROTOCOL_VERSION = ${protocol}\n`);
  await fs.writeFile(
    path.join(helper, 'pkg', 'cli.py'),
    'from pkg.protocol import PROTOCOL_VERSION\n\ndef main(argv):\n    print("héllo", PROTOCOL_VERSION, *argv)\n    return 3\n'
  );
  await fs.writeFile(path.join(helper, 'pkg', '__pycache__', 'cli.cpython-311.pyc'), 'stale bytecode');
  await fs.writeFile(path.join(helper, 'README.txt'), 'not shipped');
  await fs.writeFile(path.join(root, 'jrc_kernel.py'), '# companion\n');
  return helper;
}

describe('helper zipapp', () => {
  let root: string;
  beforeEach(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'rc-zipapp-'));
  });
  afterEach(() => fs.rm(root, { recursive: true, force: true }));

  it('is run by Python from the one file, modules in a package included', async () => {
    const helper = await packageDir(root);
    const pyz = path.join(root, 'out.pyz');
    await fs.writeFile(pyz, makeZip(await pythonSources(helper)));
    let out = '';
    let code = 0;
    try {
      execFileSync('python3', [pyz, 'serve', '--x'], { encoding: 'utf8' });
    } catch (err) {
      const e = err as { status: number; stdout: string };
      code = e.status;
      out = e.stdout;
    }
    expect(code).toBe(3);
    expect(out).toBe('héllo 7 serve --x\n');
    // Python's own reader agrees with every entry's CRC, and only sources are in it.
    const names = execFileSync(
      'python3',
      [
        '-c',
        'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); assert z.testzip() is None; print(*z.namelist())',
        pyz
      ],
      { encoding: 'utf8' }
    );
    expect(names.trim().split(' ')).toEqual(['__main__.py', 'pkg/__init__.py', 'pkg/cli.py', 'pkg/protocol.py']);
  });

  it('gives the same bytes and digest for the same sources, another digest for others', async () => {
    const helper = await packageDir(root);
    const a = await readRemoteFiles(helper);
    await fs.utimes(path.join(helper, 'pkg', 'cli.py'), new Date(2001, 1, 1), new Date(2001, 1, 1));
    const b = await readRemoteFiles(helper);
    expect(b.files[0].data.equals(a.files[0].data)).toBe(true);
    expect(b.digest).toBe(a.digest);
    expect(a.entry).toBe('helper.pyz');
    expect(a.files.map(f => f.name)).toEqual(['helper.pyz', 'jrc_kernel.py']);
    expect(a.protocol).toBe(7);

    await fs.writeFile(path.join(helper, 'pkg', 'protocol.py'), 'PROTOCOL_VERSION = 8\n');
    const c = await readRemoteFiles(helper);
    expect(c.digest).not.toBe(a.digest);
    expect(c.protocol).toBe(8);
  });

  it('ships a single-file helper as it is, and refuses a directory that is not the package', async () => {
    const file = path.join(root, 'helper.py');
    await fs.writeFile(file, '# an earlier release\n');
    const r = await readRemoteFiles(file);
    expect(r.entry).toBe('helper.py');
    expect(r.protocol).toBe(1);
    await fs.mkdir(path.join(root, 'empty'));
    await expect(readRemoteFiles(path.join(root, 'empty'))).rejects.toThrow(/no __main__\.py/);
  });

  it('the real helper speaks the protocol the agent was built for, and ships with its companions', async () => {
    const real = await readRemoteFiles(path.resolve(__dirname, '../../../jupyterlab_remote_cluster/remote/helper'));
    expect(real.protocol).toBe(HELPER_PROTOCOL);
    expect(real.files.map(f => f.name)).toEqual([
      'helper.pyz',
      'jrc_kernel.py',
      'jrc_iopub_keeper.py',
      'jrc_dask_private.py',
      'jrc_carry.py'
    ]);
  });
});
