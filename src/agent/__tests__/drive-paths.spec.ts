import { DriveError, driveSegments } from '../cluster/drive';

describe('cluster drive paths', () => {
  it('are POSIX segments under the home folder, never out of it', () => {
    expect(driveSegments('')).toEqual([]);
    expect(driveSegments('a//b/c d/')).toEqual(['a', 'b', 'c d']);
    for (const bad of ['..', 'a/../../etc', './a', 'a/.', 'a\0b', 'x'.repeat(256)]) {
      expect(() => driveSegments(bad)).toThrow(DriveError);
    }
  });
});
