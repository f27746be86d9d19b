import { DriveError, driveFolderOf, driveSegments } from '../cluster/drive';

describe('cluster drive paths', () => {
  it('are POSIX segments under the home folder, never out of it', () => {
    expect(driveSegments('')).toEqual([]);
    expect(driveSegments('a//b/c d/')).toEqual(['a', 'b', 'c d']);
    for (const bad of ['..', 'a/../../etc', './a', 'a/.', 'a\0b', 'x'.repeat(256)]) {
      expect(() => driveSegments(bad)).toThrow(DriveError);
    }
  });

  it("give a drive notebook's folder, and nothing for other paths", () => {
    expect(driveFolderOf('cluster-hpc:runs/june/a.ipynb')).toEqual({ profile: 'hpc', folder: '~/runs/june' });
    expect(driveFolderOf('cluster-hpc:a.ipynb')).toEqual({ profile: 'hpc', folder: '~' });
    expect(driveFolderOf('runs/a.ipynb')).toBeUndefined();
    expect(driveFolderOf('cluster-hpc:../a.ipynb')).toBeUndefined();
    expect(driveFolderOf('other-hpc:a.ipynb')).toBeUndefined();
  });
});
