import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort, type LocalRedis } from '../../apps/cli/src/local-redis';

/**
 * A private Redis Cluster on loopback for the tests (README "Redis Cluster"): `primaries` redis-servers started with
 * `--cluster-enabled yes`, joined by `redis-cli --cluster create … --cluster-replicas 0`, in memory only, in a temp dir
 * of their own. Locked down as {@link startLocalRedis} locks one server: every node's `default` user is off and one
 * administrator, `confide-admin`, has a fresh random password (written only to 0600 config files). The URLs are the
 * `redis+cluster://` form Confide reads, naming every node as a seed.
 */
export interface LocalRedisCluster extends LocalRedis {
  /** The nodes' client ports, in the order they were started. */
  readonly ports: readonly number[];
  /** A connection as the administrator to one node (not the cluster): for CLUSTER and ACL commands on that node. */
  adminNode(port: number): Redis;
}

/**
 * Starts the cluster and waits until every node says `cluster_state:ok` and knows every slot.
 * @throws Error when redis-server or redis-cli is missing, or the cluster does not come up within 30 s (it is stopped
 *   and its temp dir removed first)
 */
export async function startLocalRedisCluster(options: { primaries?: number } = {}): Promise<LocalRedisCluster> {
  const primaries = options.primaries ?? 3;
  if (spawnSync('redis-cli', ['--version']).status !== 0) throw new Error('redis-cli is not installed (Debian/Ubuntu: apt-get install redis-tools)');
  const dir = mkdtempSync(join(tmpdir(), 'confide-redis-cluster-'));
  const password = randomBytes(24).toString('base64url');
  const ports: number[] = [];
  const children: ChildProcess[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(
      children.map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            child.once('exit', () => resolve());
            child.kill('SIGTERM');
          }),
      ),
    );
    rmSync(dir, { recursive: true, force: true });
  };
  const adminNode = (port: number): Redis => {
    const r = new Redis({ host: '127.0.0.1', port, username: 'confide-admin', password, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 1000 });
    r.on('error', () => undefined);
    return r;
  };
  try {
    for (let i = 0; i < primaries; i++) {
      // The cluster bus port is set rather than left at port + 10000, which may be past 65535 for an ephemeral port.
      const [port, busPort] = [await freePort(), await freePort()];
      const nodeDir = join(dir, String(port));
      mkdirSync(nodeDir);
      const config = join(nodeDir, 'redis.conf');
      writeFileSync(
        config,
        [
          `port ${port}`,
          `cluster-port ${busPort}`,
          'bind 127.0.0.1',
          'cluster-enabled yes',
          `cluster-config-file ${join(nodeDir, 'nodes.conf')}`,
          'cluster-node-timeout 5000',
          'save ""',
          'appendonly no',
          `dir ${nodeDir}`,
          'user default off',
          `user confide-admin on >${password} ~* &* +@all`,
          '',
        ].join('\n'),
        { mode: 0o600 },
      );
      ports.push(port);
      children.push(spawn('redis-server', [config], { stdio: 'ignore' }));
    }
    await waitFor('every node to answer PING', 10_000, async () => {
      for (const port of ports) if (!(await onNode(adminNode(port), (r) => r.ping()).catch(() => undefined))) return false;
      return true;
    });
    // The password through the environment (REDISCLI_AUTH), not the command line, where `ps` would show it.
    const create = spawnSync('redis-cli', ['--user', 'confide-admin', '--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'], {
      env: { ...process.env, REDISCLI_AUTH: password },
      encoding: 'utf8',
      timeout: 30_000,
    });
    if (create.status !== 0) throw new Error(`redis-cli --cluster create failed (${create.status}): ${create.stdout}${create.stderr}`);
    await waitFor('cluster_state:ok on every node, with every slot known', 30_000, async () => {
      for (const port of ports) {
        const info = await onNode(adminNode(port), (r) => r.cluster('INFO')).catch(() => '');
        if (!/cluster_state:ok/.test(String(info)) || !/cluster_slots_ok:16384/.test(String(info)) || !new RegExp(`cluster_known_nodes:${primaries}\\b`).test(String(info))) return false;
      }
      return true;
    });
  } catch (err) {
    await stop();
    throw err;
  }
  const seeds = ports.map((p) => `127.0.0.1:${p}`).join(',');
  const unsupported = (): Promise<void> => Promise.reject(new Error('a local Redis Cluster cannot be killed or restarted as one server'));
  return { adminUrl: `redis+cluster://confide-admin:${password}@${seeds}`, publicUrl: `redis+cluster://${seeds}`, port: ports[0]!, ports, adminNode, stop, kill: unsupported, restart: unsupported };
}

/** Runs one command on a fresh connection, then closes it. */
async function onNode<T>(r: Redis, command: (r: Redis) => Promise<T>): Promise<T> {
  try {
    await r.connect();
    return await command(r);
  } finally {
    r.disconnect();
  }
}

async function waitFor(what: string, timeoutMs: number, probe: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
