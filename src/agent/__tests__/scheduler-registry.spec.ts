/**
 * The registry is the one place that names batch systems: one adapter per `scheduler`
 * value a profile may hold, each answering to that name, each with a title for messages.
 */
import { SCHEDULERS } from '../../common/api';
import { schedulerAdapters } from '../schedulers/registry';

describe('scheduler registry', () => {
  const adapters = schedulerAdapters();

  it('has exactly one adapter per scheduler a profile may name', () => {
    expect(Object.keys(adapters).sort()).toEqual([...SCHEDULERS].sort());
  });

  it.each([...SCHEDULERS])('%s: the adapter answers to its name and has a title', name => {
    const a = adapters[name];
    expect(a.name).toBe(name);
    expect(a.title).toMatch(/^[A-Z]/);
  });

  it('only the plain SSH host keeps the helper on loopback', () => {
    const loopback = Object.values(adapters)
      .filter(a => a.helperOnLoopback)
      .map(a => a.name);
    expect(loopback).toEqual(['ssh']);
  });
});
