import { readFileSync } from 'node:fs';
import * as path from 'node:path';

import { CONNECTIVITY_MODES, SCHEDULERS } from '../../common/api';
import { parseProfiles, PROFILE_DEFAULTS, PROFILE_FIELDS, RESOURCE_FIELDS, SSH_FIELDS } from '../../common/profile';

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
    // no idle timeout of its own: the site's default applies (submit-job.ts)
    expect(profiles[0].idleTimeout).toBeUndefined();
    const withIdle = parseProfiles({
      profiles: [{ ...good, idleTimeout: 0, ssh: { host: 'login', certificateFiles: ['~/.ssh/id-cert.pub'] } }]
    });
    expect(withIdle.profiles[0]).toMatchObject({ idleTimeout: 0, ssh: { certificateFiles: ['~/.ssh/id-cert.pub'] } });
    // a default kernel of the job environment; naming its Python is the same as none
    expect(parseProfiles({ profiles: [{ ...good, defaultKernel: 'ir' }] }).profiles[0].defaultKernel).toBe('ir');
    expect(
      parseProfiles({ profiles: [{ ...good, defaultKernel: 'python3' }] }).profiles[0].defaultKernel
    ).toBeUndefined();
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
    [{ ...good, ssh: {} }, /"host" is required/],
    [{ ...good, defaultKernel: 'ir; rm -rf ~' }, /"defaultKernel" has an invalid value/],
    [{ ...good, idleTimeout: -1 }, /"idleTimeout" must be a whole number of minutes from 0 \(never\) to 10080/],
    [{ ...good, idleTimeout: 1.5 }, /"idleTimeout" must be a whole number/],
    [{ ...good, idleTimeout: '60' }, /"idleTimeout" must be a whole number/],
    [
      { ...good, ssh: { host: 'login', certificateFiles: 'x-cert.pub' } },
      /"certificateFiles" must be a list of strings/
    ]
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

describe('the settings schema (what the Settings Editor checks) and the parser agree', () => {
  const schema = JSON.parse(readFileSync(path.join(__dirname, '..', '..', '..', 'schema', 'profiles.json'), 'utf8'));
  const p = schema.definitions.profile;
  const sorted = (xs: readonly string[]) => [...xs].sort();

  it('on the fields of a profile, its ssh target and its resources', () => {
    expect(sorted(Object.keys(p.properties))).toEqual(sorted(PROFILE_FIELDS));
    expect(sorted(Object.keys(p.properties.ssh.properties))).toEqual(sorted(SSH_FIELDS));
    expect(sorted(Object.keys(p.properties.resources.properties))).toEqual(sorted(RESOURCE_FIELDS));
  });

  it('on what is required: only what has no default (a profile valid here is valid there)', () => {
    expect(sorted(p.required)).toEqual(['name', 'ssh']);
    const { profiles, errors } = parseProfiles({ profiles: [{ name: 'min', ssh: { host: 'h' } }] });
    expect(errors).toEqual([]);
    expect(profiles[0]).toMatchObject(PROFILE_DEFAULTS);
    expect(parseProfiles({ profiles: [{ name: 'nossh' }] }).errors).toHaveLength(1);
  });

  it('on defaults and choices', () => {
    for (const [field, value] of Object.entries(PROFILE_DEFAULTS)) {
      expect([field, p.properties[field].default]).toEqual([field, value]);
    }
    expect(p.properties.scheduler.enum).toEqual([...SCHEDULERS]);
    expect(p.properties.connectivity.enum).toEqual([...CONNECTIVITY_MODES]);
  });
});
