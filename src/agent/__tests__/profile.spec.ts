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
    [{ ...good, scheduler: 'pbs' }, /scheduler "pbs" is not supported/],
    [{ ...good, connectivity: 'reverse' }, /connectivity "reverse" is not supported yet/],
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
