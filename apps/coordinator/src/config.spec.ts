import { ConfigError, loadConfig } from './config';

// The coordinator's lease settings (issue 15, coordinator replicas), as loadConfig validates them at boot.
const BASE = { CONFIDE_ADMIN_TOKEN: 'x'.repeat(24) };

describe('coordinator config: query leases', () => {
  it('defaults to 10 s leases renewed every second, under a replica id of its own per process', () => {
    const [a, b] = [loadConfig(BASE), loadConfig(BASE)];
    expect({ leaseMs: a.leaseMs, leaseRenewMs: a.leaseRenewMs }).toEqual({ leaseMs: 10_000, leaseRenewMs: 1000 });
    expect(a.replicaId).toMatch(/^\S+-\d+-[0-9a-f]{6}$/);
    expect(a.replicaId).not.toBe(b.replicaId);
  });

  it('takes the lease, renewal and replica id from the environment', () => {
    const c = loadConfig({ ...BASE, CONFIDE_LEASE_SECONDS: '30', CONFIDE_LEASE_RENEW_SECONDS: '5', CONFIDE_REPLICA_ID: 'coordinator-2' });
    expect({ leaseMs: c.leaseMs, leaseRenewMs: c.leaseRenewMs, replicaId: c.replicaId }).toEqual({ leaseMs: 30_000, leaseRenewMs: 5000, replicaId: 'coordinator-2' });
  });

  it('refuses a renewal that is not under half the lease, since a lease would lapse at the first slow renewal', () => {
    expect(() => loadConfig({ ...BASE, CONFIDE_LEASE_SECONDS: '4', CONFIDE_LEASE_RENEW_SECONDS: '2' })).toThrow(ConfigError);
    expect(() => loadConfig({ ...BASE, CONFIDE_LEASE_SECONDS: '4', CONFIDE_LEASE_RENEW_SECONDS: '2' })).toThrow(/CONFIDE_LEASE_RENEW_SECONDS/);
    expect(loadConfig({ ...BASE, CONFIDE_LEASE_SECONDS: '5', CONFIDE_LEASE_RENEW_SECONDS: '2' }).leaseMs).toBe(5000);
  });

  it('refuses a replica id that could not be a name, naming the variable and not the value', () => {
    let message = '';
    try {
      loadConfig({ ...BASE, CONFIDE_REPLICA_ID: 'two words/and-a-slash' });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toContain('CONFIDE_REPLICA_ID');
    expect(message).not.toContain('two words');
  });
});
