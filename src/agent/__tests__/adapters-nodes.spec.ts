/**
 * Nodes as a resource: every batch system asks for N nodes with the per-node CPUs, memory
 * and GPUs in its own words; systems that run a job on one machine refuse more by name;
 * directives that would change the node or task layout behind the adapter's back are
 * refused (sbatch's abbreviations of long options included).
 */
import type { IResources } from '../../common/api';
import { HtcondorAdapter } from '../schedulers/htcondor';
import { LsfAdapter } from '../schedulers/lsf';
import { PbsAdapter } from '../schedulers/pbs';
import { SgeAdapter } from '../schedulers/sge';
import { SlurmAdapter } from '../schedulers/slurm';
import { SshHostAdapter } from '../schedulers/ssh-host';
import { refusal, spec } from './helpers/adapters';

/** The directive lines of a rendered script (those starting with `prefix`). */
function directives(script: string, prefix: string): string[] {
  return script
    .split('\n')
    .filter(l => l.startsWith(prefix))
    .map(l => l.slice(prefix.length).trim());
}

const TWO_NODES: IResources = { nodes: 2, cpus: 4, memory: '8G', gpus: 1 };

describe('Slurm: nodes', () => {
  const slurm = new SlurmAdapter();
  const lines = (r: IResources) => directives(slurm.renderScript(spec({ resources: r })), '#SBATCH');

  it('asks for N nodes, one task per node with the per-node CPUs, memory and GPUs', () => {
    const d = lines(TWO_NODES);
    expect(d).toEqual(
      expect.arrayContaining(['--nodes=2', '--ntasks-per-node=1', '--cpus-per-task=4', '--mem=8G', '--gres=gpu:1'])
    );
    expect(d.some(x => x.startsWith('--ntasks='))).toBe(false);
  });

  it('keeps one node and one task by default', () => {
    expect(lines({ cpus: 2 })).toEqual(expect.arrayContaining(['--nodes=1', '--ntasks=1']));
  });

  it.each([
    ['--nodes=2', /use the nodes field instead/],
    ['--nod=2', /use the nodes field instead/],
    ['--ntasks=2', /--ntasks is set by jupyterlab-remote-cluster itself/],
    ['--ntasks-per-node=2', /--ntasks-per-node is set by jupyterlab-remote-cluster itself/],
    ['--ntasks-per=2', /--ntasks-per-node is set by jupyterlab-remote-cluster itself/],
    ['-N', /must look like --name or --name=value/],
    ['-n2', /must look like --name or --name=value/],
    ['--cpus-per=2', /use the cpus field instead/]
  ])('refuses the directive %s', (d, message) => {
    const err = refusal(() => slurm.validate({ extraDirectives: [d] }));
    expect(err.field).toBe('extraDirectives');
    expect(err.message).toMatch(message);
  });

  it('still takes directives that only start like a field (--nodelist, --nice)', () => {
    expect(lines({ extraDirectives: ['--nodelist=node[1-2]', '--nice=10'] })).toEqual(
      expect.arrayContaining(['--nodelist=node[1-2]', '--nice=10'])
    );
  });

  it('refuses nodes out of range, and a parallel environment', () => {
    expect(refusal(() => slurm.validate({ nodes: 0 })).field).toBe('nodes');
    expect(refusal(() => slurm.validate({ nodes: 1025 })).field).toBe('nodes');
    expect(refusal(() => slurm.validate({ parallelEnvironment: 'mpi' })).field).toBe('parallelEnvironment');
  });
});

describe('PBS and Torque: nodes', () => {
  it('PBS Pro: one chunk per node with its resources, scattered over hosts', () => {
    const d = directives(new PbsAdapter().renderScript(spec({ resources: TWO_NODES })), '#PBS');
    expect(d).toEqual(expect.arrayContaining(['-l select=2:ncpus=4:mem=8gb:ngpus=1', '-l place=scatter']));
  });

  it('Torque: nodes=N:ppn=CPUs, and mem for the whole job (per node × N)', () => {
    const d = directives(new PbsAdapter({ flavour: 'torque' }).renderScript(spec({ resources: TWO_NODES })), '#PBS');
    expect(d).toEqual(expect.arrayContaining(['-l nodes=2:ppn=4:gpus=1', '-l mem=16gb']));
  });

  it('one node writes what it always wrote', () => {
    const d = directives(new PbsAdapter().renderScript(spec({ resources: { cpus: 4, memory: '8G' } })), '#PBS');
    expect(d).toContain('-l select=1:ncpus=4:mem=8gb');
    expect(d).not.toContain('-l place=scatter');
  });
});

describe('Grid Engine: nodes', () => {
  const sge = new SgeAdapter();

  it('needs a parallel environment to spread over hosts, and says which kind', () => {
    const err = refusal(() => sge.validate({ nodes: 2, cpus: 4 }));
    expect(err.field).toBe('parallelEnvironment');
    expect(err.message).toMatch(/allocation rule is 4 slots per host/);
  });

  it('asks for nodes × CPUs slots of that PE, memory per slot', () => {
    const d = directives(
      sge.renderScript(spec({ resources: { nodes: 2, cpus: 4, memory: '8G', parallelEnvironment: 'jrc4' } })),
      '#$'
    );
    expect(d).toEqual(expect.arrayContaining(['-pe jrc4 8', '-l h_vmem=2048M']));
  });

  it('uses a named PE for one node too, and smp by default', () => {
    expect(directives(sge.renderScript(spec({ resources: { cpus: 2, parallelEnvironment: 'mpi' } })), '#$')).toContain(
      '-pe mpi 2'
    );
    expect(directives(sge.renderScript(spec({ resources: { cpus: 2 } })), '#$')).toContain('-pe smp 2');
  });
});

describe('LSF: nodes', () => {
  it('asks for nodes × CPUs slots, CPUs per host (ptile)', () => {
    const d = directives(new LsfAdapter().renderScript(spec({ resources: { nodes: 3, cpus: 2 } })), '#BSUB');
    expect(d).toEqual(expect.arrayContaining(['-n 6', '-R "span[ptile=2]"']));
    expect(d).not.toContain('-R "span[hosts=1]"');
  });
});

describe.each([
  ['HTCondor', new HtcondorAdapter()],
  ['A plain SSH host', new SshHostAdapter()]
])('%s: one machine per job', (title, adapter) => {
  it('refuses more than one node by name, and takes one', () => {
    const err = refusal(() => adapter.validate({ nodes: 2 }));
    expect(err.field).toBe('nodes');
    expect(err.message).toContain(`${title} runs a job on one machine`);
    expect(err.message).toContain('not supported by this product');
    expect(() => adapter.validate({ nodes: 1 })).not.toThrow();
  });

  it('refuses a parallel environment', () => {
    expect(refusal(() => adapter.validate({ parallelEnvironment: 'mpi' })).field).toBe('parallelEnvironment');
  });
});

describe.each([
  ['PBS', new PbsAdapter()],
  ['LSF', new LsfAdapter()]
])('%s: a parallel environment is Grid Engine only', (_title, adapter) => {
  it('refuses it by name', () => {
    const err = refusal(() => adapter.validate({ parallelEnvironment: 'mpi' }));
    expect(err.field).toBe('parallelEnvironment');
    expect(err.message).toMatch(/does not take a parallel environment/);
  });
});
