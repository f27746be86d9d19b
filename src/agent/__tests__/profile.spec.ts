import { parseProfiles } from '../../common/profile';

const good = {
  name: 'hpc',
  ssh: { host: 'login', jumpHosts: ['alice@bastion:2222'] },
  scheduler: 'slurm',
  resources: { partition: 'debug', cpus: 2 },
  python: '/opt/python/bin/python3'
};

describe('parseProfiles', () => {
  it('accepts a valid profile and fills defaults', () => {
    const { profiles, errors } = parseProfiles({ profiles: [good] });
    expect(errors).toEqual([]);
    expect(profiles[0]).toMatchObject({ name: 'hpc', dask: true, connectivity: 'via-login', setup: [] });
  });

  it.each([
    [{ ...good, name: 'has space' }, /"name" has an invalid value/],
    [{ ...good, python: 'python3; rm -rf ~' }, /"python" has an invalid value/],
    [{ ...good, ssh: { host: 'login', jumpHosts: ['bastion -oProxyCommand=x'] } }, /"jumpHosts" has an invalid entry/],
    [{ ...good, ssh: { host: 'login', user: 'Robert; drop' } }, /"user" has an invalid value/],
    [
      { ...good, scheduler: 'moab' },
      /scheduler "moab" is not supported \(supported: slurm, pbs, torque, sge, lsf, htcondor, ssh\)/
    ],
    [
      { ...good, connectivity: 'vpn' },
      /connectivity "vpn" is not supported \(supported: auto, via-login, node-ssh, reverse\)/
    ],
    [{ ...good, container: 'apptainer exec x.sif; rm -rf ~' }, /"container" has an invalid value/],
    [{ ...good, loginSetup: ['module load slurm', 'a\nb'] }, /"loginSetup" entries must be single lines/],
    [{ ...good, resources: { qos: 3 } }, /"qos" must be a string/],
    [{ ...good, resources: { cpus: 0 } }, /"cpus" must be a whole number from 1 to 4096/],
    [{ ...good, setup: ['module load x\necho injected'] }, /single lines/],
    [{ ...good, colour: 'blue' }, /unknown field "colour"/],
    [{ ...good, ssh: {} }, /"host" is required/]
  ])('refuses %j with a specific message', (profile, message) => {
    const { profiles, errors } = parseProfiles({ profiles: [profile] });
    expect(profiles).toEqual([]);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(message);
  });

  it('keeps the valid profiles when another one is invalid, and refuses duplicates', () => {
    const { profiles, errors } = parseProfiles({ profiles: [good, { ...good, name: 'bad name' }, good] });
    expect(profiles.map(p => p.name)).toEqual(['hpc']);
    expect(errors).toHaveLength(2);
    expect(errors[1]).toMatch(/defined twice/);
  });

  it('says so when "profiles" is not a list', () => {
    expect(parseProfiles({ profiles: {} }).errors).toEqual(['"profiles" must be a list.']);
    expect(parseProfiles({})).toEqual({ profiles: [], errors: [] });
  });
});

describe('parseProfiles: every batch system, connectivity mode and environment field', () => {
  it.each(['slurm', 'pbs', 'torque', 'sge', 'lsf', 'htcondor', 'ssh'])('accepts scheduler %s', scheduler => {
    const { profiles, errors } = parseProfiles({ profiles: [{ ...good, scheduler }] });
    expect(errors).toEqual([]);
    expect(profiles[0].scheduler).toBe(scheduler);
  });

  it('keeps container, loginSetup, the new resources and the connectivity mode', () => {
    const { profiles, errors } = parseProfiles({
      profiles: [
        {
          ...good,
          connectivity: 'auto',
          container: ' apptainer exec --bind /scratch image.sif ',
          loginSetup: ['module load slurm'],
          resources: { qos: 'short', constraint: 'bigmem&avx', reservation: 'course', memoryPerCpu: '2G' }
        }
      ]
    });
    expect(errors).toEqual([]);
    expect(profiles[0]).toMatchObject({
      connectivity: 'auto',
      container: 'apptainer exec --bind /scratch image.sif',
      loginSetup: ['module load slurm'],
      resources: { qos: 'short', constraint: 'bigmem&avx', reservation: 'course', memoryPerCpu: '2G' }
    });
  });
});
