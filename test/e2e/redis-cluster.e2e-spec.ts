import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { completionsKey, createRedis, newQueryId, noteFinished, participantQueue, taskJobId, type RedisClient } from '@confide/queue';
import { Cluster, type ParticipantProcess } from '../support/cluster';
import { singleJson } from '../support/cli';
import { closeConnection } from '../support/redis';
import { expectedSalaryResults, SALARY_SELECT } from '../support/salary-query';
import { generateSalaryCsv, syntheticSalaryStudy } from '../support/synthetic';

// README "Redis Cluster", as an operator runs it: a coordinator (SQLite) and three participant workers, all real
// processes, on a local 3-primary Redis Cluster that this test starts from redis-server --cluster-enabled yes and
// joins with redis-cli --cluster create. REDIS_URL is redis+cluster://…; nothing else is configured.

/** Which node (client port) serves each slot, from CLUSTER SLOTS. */
async function slotOwners(admin: Redis): Promise<(slot: number) => number> {
  const ranges = await admin.cluster('SLOTS');
  return (slot) => {
    const primary = ranges.find(([from, to]) => slot >= from && slot <= to)?.[2];
    if (!primary) throw new Error(`no node serves slot ${slot}`);
    return primary[1];
  };
}

describe('Confide on a 3-primary Redis Cluster', () => {
  let cluster: Cluster;
  let researcher: { token: string; identityFile: string };
  const sites: ParticipantProcess[] = [];
  const texts: string[] = [];
  const connections: (RedisClient | Redis)[] = [];
  const adminNode = (port: number): Redis => {
    const r = cluster.redisNodes.adminNode(port);
    connections.push(r);
    return r;
  };
  /** Participant `p`'s own Redis credentials, as enrollment stored them in its home. */
  const credentialsOf = (p: ParticipantProcess): { username: string; password: string } =>
    (JSON.parse(readFileSync(join(p.home, 'identity.json'), 'utf8')) as { redis: { username: string; password: string } }).redis;

  beforeAll(async () => {
    cluster = await Cluster.start({ database: 'sqlite', redisCluster: true });
    expect(cluster.publicRedisUrl).toMatch(/^redis\+cluster:\/\/127\.0\.0\.1:\d+,127\.0\.0\.1:\d+,127\.0\.0\.1:\d+$/);
    const study = await cluster.createStudy(syntheticSalaryStudy());
    for (let i = 1; i <= 3; i++) {
      const text = generateSalaryCsv(9100 + i, 60);
      const csv = join(cluster.dir, `site-${i}.csv`);
      writeFileSync(csv, text);
      texts.push(text);
      const p = await cluster.enroll(study, `site-${i}`, csv);
      sites.push(p);
      // site-3's home names its queue as homes enrolled before queue names carried hash tags did: an upgraded worker
      // takes its tasks from the queue its id gives (README "Upgrading in place"), so the queries below need it.
      if (i === 3) {
        const file = join(p.home, 'identity.json');
        const identity = JSON.parse(readFileSync(file, 'utf8')) as { redis: { queue: string } };
        expect(identity.redis.queue).toBe(participantQueue(p.participantId));
        writeFileSync(file, JSON.stringify({ ...identity, redis: { ...identity.redis, queue: `participant.${p.participantId}` } }), { mode: 0o600 });
      }
      await cluster.run(p);
    }
    researcher = await cluster.researcher();
  }, 120_000);
  afterAll(async () => {
    await Promise.allSettled(connections.map((c) => closeConnection(c)));
    // Stops every process, then every node, and removes the cluster's temp dir.
    await cluster?.stop();
  }, 60_000);

  it('runs a shamir query end to end, with results equal to the plaintext computation', async () => {
    const r = await cluster.cli(['query', '--study', 'salaries', '--protocol', 'shamir', ...SALARY_SELECT, '--wait', '--json'], researcher.token);
    expect(r.code).toBe(0);
    expect(singleJson(r.stdout)).toMatchObject({ status: 'succeeded', participants: 3, results: expectedSalaryResults(texts), ledgerIndex: expect.any(Number) as number });
  }, 90_000);

  it('runs a paillier query end to end (aggregation worker on the cluster too), with results equal to the plaintext computation', async () => {
    const keyFile = join(cluster.dir, 'researcher-paillier.json');
    await cluster.cliJson(['keys', 'paillier', '--out', keyFile, '--bits', '2048'], null);
    const r = await cluster.cli(['query', '--study', 'salaries', '--protocol', 'paillier', '--key', keyFile, '--identity', researcher.identityFile, ...SALARY_SELECT, '--wait', '--json'], researcher.token);
    expect(r.code).toBe(0);
    expect(singleJson(r.stdout)).toMatchObject({ status: 'succeeded', participants: 3, results: expectedSalaryResults(texts) });
  }, 120_000);

  it("keeps each participant's queue keys in one slot, on the node serving it, and different participants' in different slots", async () => {
    const nodes = cluster.redisNodes.ports.map((port) => ({ port, admin: adminNode(port) }));
    const ownerOf = await slotOwners(nodes[0]!.admin);
    const slotsBySite = new Map<string, Set<number>>();
    for (const { port, admin } of nodes) {
      let cursor = '0';
      do {
        const [next, keys] = await admin.scan(cursor, 'MATCH', `${cluster.prefix}:*`, 'COUNT', 1000);
        cursor = next;
        for (const key of keys) {
          const site = sites.find((p) => key.startsWith(`${cluster.prefix}:${participantQueue(p.participantId)}:`));
          if (!site) continue;
          const slot = Number(await admin.cluster('KEYSLOT', key));
          // SCAN on a node lists the keys it holds: the node that serves the key's slot.
          expect({ key, node: ownerOf(slot) }).toEqual({ key, node: port });
          slotsBySite.set(site.name, (slotsBySite.get(site.name) ?? new Set()).add(slot));
        }
      } while (cursor !== '0');
    }
    // Every participant has keys (its events stream, at least), all in one slot; three participants, three slots.
    expect([...slotsBySite.keys()].sort()).toEqual(sites.map((p) => p.name).sort());
    for (const slots of slotsBySite.values()) expect(slots.size).toBe(1);
    expect(new Set([...slotsBySite.values()].map((s) => [...s][0])).size).toBe(sites.length);
    // The harness's dump, which the confidentiality scans read, reads every primary.
    const dump = await cluster.redisDump();
    for (const p of sites) expect(dump).toContain(`${cluster.prefix}:${participantQueue(p.participantId)}:`);
  }, 30_000);

  it('installs each participant user on every node, since ACL users are per node', async () => {
    for (const port of cluster.redisNodes.ports) {
      const admin = adminNode(port);
      for (const p of sites) {
        const user = (await admin.call('ACL', 'GETUSER', credentialsOf(p).username)) as unknown[] | null;
        expect({ port, user: p.name, found: Array.isArray(user) }).toEqual({ port, user: p.name, found: true });
      }
      // The default user is off on every node: no participant can skip its own user anywhere.
      expect(String(await admin.call('ACL', 'LIST'))).toMatch(/user default off/);
    }
  });

  // One refusal is ioredis's own: the connection its Cluster opens to read CLUSTER SLOTS always names itself
  // (CLIENT SETNAME ioredis-cluster(refresher)) and ignores the refusal; CLIENT stays refused (libs/queue acl.ts).
  it('runs every participant worker within its ACL: no node logged a refused command for a participant user but the slot refresher naming itself', async () => {
    const users = new Set(sites.map((p) => credentialsOf(p).username));
    for (const port of cluster.redisNodes.ports) {
      const log = (await adminNode(port).call('ACL', 'LOG')) as unknown[][];
      const refused = log
        .map((entry) => new Map(entry.reduce<[string, unknown][]>((pairs, v, i) => (i % 2 ? pairs : [...pairs, [String(v), entry[i + 1]]]), [])))
        .filter((e) => users.has(String(e.get('username'))) && !(e.get('reason') === 'command' && e.get('object') === 'client|setname'))
        .map((e) => `${String(e.get('username'))}: ${String(e.get('reason'))} ${String(e.get('object'))} (${String(e.get('count'))}x)`);
      expect({ port, refused }).toEqual({ port, refused: [] });
    }
  });

  it("shows a participant its own queue's counts through the cluster with its own user (confide participant status)", async () => {
    const r = await cluster.cli(['participant', 'status', '--home', sites[0]!.home, '--json'], null);
    expect(r.code).toBe(0);
    expect((singleJson(r.stdout) as { queue: unknown }).queue).toEqual({ reachable: true, waiting: 0, active: 0, delayed: 0, failed: 0 });
  }, 30_000);

  it("refuses participant A's user with NOPERM on participant B's queue keys, on the node that holds B's slot", async () => {
    const [a, b] = [sites[0]!, sites[1]!];
    const { username, password } = credentialsOf(a);
    const ownerOf = await slotOwners(adminNode(cluster.redisNodes.ports[0]!));
    const keyOf = (p: ParticipantProcess, suffix: string): string => `${cluster.prefix}:${participantQueue(p.participantId)}:${suffix}`;
    const nodeOf = async (key: string): Promise<number> => ownerOf(Number(await adminNode(cluster.redisNodes.ports[0]!).cluster('KEYSLOT', key)));

    // Straight to the node that serves B's slot, as A: the node knows A (so this is NOPERM, not WRONGPASS).
    const bNode = await nodeOf(keyOf(b, 'events'));
    const asAOnB = new Redis({ host: '127.0.0.1', port: bNode, username, password, enableReadyCheck: false, disableClientInfo: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    asAOnB.on('error', () => undefined);
    connections.push(asAOnB);
    const noperm = /^NOPERM this user has no permissions to access one of the keys used as arguments/;
    await expect(asAOnB.xrange(keyOf(b, 'events'), '-', '+')).rejects.toThrow(noperm);
    await expect(asAOnB.lrange(keyOf(b, 'wait'), 0, -1)).rejects.toThrow(noperm);
    await expect(asAOnB.hgetall(keyOf(b, 'meta'))).rejects.toThrow(noperm);
    await expect(asAOnB.xadd(keyOf(b, 'events'), '*', 'event', 'forged')).rejects.toThrow(noperm);
    // Nor can A list or count the keys of B's slot, which CLUSTER GETKEYSINSLOT would hand it.
    const slotB = Number(await adminNode(bNode).cluster('KEYSLOT', keyOf(b, 'events')));
    await expect(asAOnB.call('CLUSTER', 'GETKEYSINSLOT', slotB, 10)).rejects.toThrow(/^NOPERM/);
    await expect(asAOnB.call('CLUSTER', 'COUNTKEYSINSLOT', slotB)).rejects.toThrow(/^NOPERM/);

    // Through the cluster, as A's worker connects: its own queue answers, B's is refused the same way.
    const asA = createRedis(cluster.publicRedisUrl, { role: 'worker', username, password });
    asA.on('error', () => undefined);
    connections.push(asA);
    expect(Object.keys(await asA.hgetall(keyOf(a, 'meta'))).length).toBeGreaterThan(0);
    await expect(asA.hgetall(keyOf(b, 'meta'))).rejects.toThrow(noperm);
    await expect(asA.xrange(keyOf(b, 'events'), '-', '+')).rejects.toThrow(noperm);
    // The completion stream, which every participant appends to, A may append to and not read (others' job ids).
    const completions = completionsKey(cluster.prefix);
    expect(await noteFinished(asA, completions, taskJobId(newQueryId(), 1, a.participantId))).toMatch(/^\d+-\d+$/);
    await expect(asA.xrange(completions, '-', '+')).rejects.toThrow(noperm);
  }, 30_000);
});
