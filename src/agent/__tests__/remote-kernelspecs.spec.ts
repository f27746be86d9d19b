/** What a helper says about its job's kernelspecs, as the agent keeps it (checked, bounded). */
import { remoteKernelspecsOf } from '../sessions/remote-kernelspecs';

describe('remoteKernelspecsOf', () => {
  it("keeps the environment's other kernels, not its default Python", () => {
    const said = {
      default: 'python3',
      kernelspecs: [
        { name: 'python3', displayName: 'Python 3 (ipykernel)', language: 'python', interruptMode: 'signal' },
        { name: 'bash', displayName: 'Bash', language: 'bash', interruptMode: 'message' },
        { name: 'ir', displayName: 'R', language: 'R', interruptMode: 'signal' }
      ]
    };
    expect(remoteKernelspecsOf(said)).toEqual([
      { name: 'bash', displayName: 'Bash', language: 'bash', interruptMode: 'message' },
      { name: 'ir', displayName: 'R', language: 'R', interruptMode: 'signal' }
    ]);
  });

  it('drops names the helper would refuse and bounds the rest', () => {
    const said = {
      default: 'python3',
      kernelspecs: [
        { name: '../x', displayName: 'Escape' },
        { name: 7 },
        null,
        { name: 'julia', displayName: 'J'.repeat(500), language: 3, interruptMode: 'whenever' },
        ...Array.from({ length: 80 }, (_, i) => ({ name: `k${i}` }))
      ]
    };
    const kept = remoteKernelspecsOf(said);
    expect(kept[0]).toEqual({ name: 'julia', displayName: 'J'.repeat(80), language: '', interruptMode: 'signal' });
    expect(kept).toHaveLength(50);
    expect(kept[1]).toEqual({ name: 'k0', displayName: 'k0', language: '', interruptMode: 'signal' });
  });

  it('an answer without a list is no kernels, not an error', () => {
    expect(remoteKernelspecsOf({ error: 'x' })).toEqual([]);
    expect(remoteKernelspecsOf(null)).toEqual([]);
  });
});
