import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Redis } from 'ioredis';
import { Client } from 'pg';
import { parse } from 'yaml';
import { CLI, ROOT, assertBuilt } from '../support/cli';
import { PG_ADMIN_URL, freePort, until } from '../support/cluster';

// docker-compose.yml and the scripts its containers run (docker/*.sh). No container runtime here, so the compose
// file is checked as data (who mounts which volume, what is in each environment), and the scripts run as they
// are, on this machine, with the volumes as directories and `confide` on PATH as the image links it: secrets,
// redis from the ACL file the secrets script wrote, the coordinator, setup (twice, as on a second
// `docker compose up`), three participants, the researcher's query, and a participant restarted from its home.

const EXAMPLES = join(ROOT, 'examples');
const PARTICIPANTS = ['hospital-1', 'hospital-2', 'hospital-3'] as const;
/** The secrets docker/secrets.sh generates: 32 random bytes as 64 hex digits each. */
const SECRETS = ['admin-token', 'redis-password', 'postgres-password'] as const;

interface ComposeService {
  readonly entrypoint?: readonly string[];
  readonly command?: readonly string[];
  readonly environment?: Readonly<Record<string, string>> | readonly string[];
  readonly volumes?: readonly string[];
  readonly depends_on?: Readonly<Record<string, { condition: string }>> | readonly string[];
  readonly profiles?: readonly string[];
  readonly image?: string;
  readonly ports?: readonly string[];
  readonly healthcheck?: { readonly test?: readonly string[] };
}

interface Mount {
  readonly source: string;
  readonly target: string;
}

const compose = parse(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as { services: Record<string, ComposeService> };

function service(name: string): ComposeService {
  const s = compose.services[name];
  if (!s) throw new Error(`docker-compose.yml has no service ${name}`);
  return s;
}

/** A service's volume mounts, from the short syntax `source:target[:mode]`. */
function mounts(s: ComposeService): Mount[] {
  return (s.volumes ?? []).map((v) => {
    const [source = '', target = ''] = v.split(':');
    return { source, target };
  });
}

/** A service's environment as a map, from either of compose's two forms. */
function environment(s: ComposeService): Record<string, string> {
  const env = s.environment ?? {};
  if (!Array.isArray(env)) return { ...(env as Record<string, string>) };
  return Object.fromEntries((env as readonly string[]).map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
}

/** The services that mount a volume, sorted. */
function mountersOf(volume: string): string[] {
  return Object.keys(compose.services)
    .filter((name) => mounts(service(name)).some((m) => m.source === volume))
    .sort();
}

/** The plaintext mean and count of the salary column over the three example files (empty cells are missing). */
function plaintextSalary(): { mean: number; count: number } {
  let sum = 0;
  let count = 0;
  for (const p of PARTICIPANTS) {
    const [header, ...rows] = readFileSync(join(EXAMPLES, 'salaries', `${p}.csv`), 'utf8').trim().split(/\r?\n/);
    const column = header!.split(',').map((h) => h.replace(/"/g, '')).indexOf('salary');
    for (const row of rows) {
      const cell = row.split(',')[column]!.replace(/"/g, '').trim();
      if (cell === '') continue;
      sum += Number(cell);
      count++;
    }
  }
  return { mean: sum / count, count };
}

describe('docker-compose.yml', () => {
  it('gives the participants and the query no secret and no other participant’s invitation', () => {
    for (const p of PARTICIPANTS) {
      const s = service(p);
      expect(mounts(s)).toEqual([
        { source: `invite-${p}`, target: '/invitation' },
        { source: p, target: '/participant' },
      ]);
      expect(environment(s)).toEqual({ CONFIDE_URL: 'http://coordinator:8080', PARTICIPANT: p });
      expect(mountersOf(`invite-${p}`)).toEqual([p, 'setup'].sort());
    }
    expect(mounts(service('query'))).toEqual([{ source: 'researcher', target: '/researcher' }]);
    expect(environment(service('query'))).toEqual({ CONFIDE_URL: 'http://coordinator:8080' });
    expect(mountersOf('researcher')).toEqual(['query', 'setup']);
    expect(mountersOf('secrets')).toEqual(['coordinator', 'coordinator-2', 'postgres', 'redis', 'secrets', 'setup']);
  });

  it('writes no secret: no token or password in any environment, no credentials in a URL', () => {
    const written = Object.entries(compose.services).flatMap(([name, s]) =>
      Object.entries(environment(s))
        .filter(([key, value]) => (/TOKEN|PASSWORD|SECRET/.test(key) && !key.endsWith('_FILE')) || /:\/\/[^/@\s]*:[^/@\s]*@/.test(value))
        .map(([key]) => `${name}: ${key}`),
    );
    expect(written).toEqual([]);
  });

  it('starts redis, postgres and the coordinator only once the secrets exist, redis from their ACL file', () => {
    for (const name of ['redis', 'postgres', 'coordinator']) {
      expect(service(name).depends_on).toMatchObject({ secrets: { condition: 'service_completed_successfully' } });
    }
    expect(service('redis').command).toEqual(expect.arrayContaining(['--aclfile', '/secrets/users.acl']));
    expect(environment(service('postgres'))).toMatchObject({ POSTGRES_PASSWORD_FILE: '/secrets/postgres-password' });
  });

  it('the scale profile: a second coordinator replica like the first, under its own replica id, and a proxy in front of both', () => {
    // Issue 15: `docker compose --profile scale up` runs two coordinators over the one PostgreSQL and Redis.
    const [first, second, proxy] = [service('coordinator'), service('coordinator-2'), service('proxy')];
    const inDefault = Object.entries(compose.services).filter(([, s]) => !s.profiles).map(([name]) => name);
    expect(inDefault).toContain('coordinator');
    expect(second.profiles).toEqual(['scale']);
    expect(proxy.profiles).toEqual(['scale']);
    // Same script, same data volume (the coordinator's keys, which every replica signs with), same secrets.
    expect(second.entrypoint).toEqual(first.entrypoint);
    expect(mounts(second)).toEqual(mounts(first));
    const ids = [environment(first).CONFIDE_REPLICA_ID, environment(second).CONFIDE_REPLICA_ID];
    expect(ids).toEqual([expect.stringMatching(/\S/), expect.stringMatching(/\S/)]);
    expect(new Set(ids).size).toBe(2);
    expect({ ...environment(second), CONFIDE_REPLICA_ID: '' }).toEqual({ ...environment(first), CONFIDE_REPLICA_ID: '' });
    // The second starts after the first is healthy, so only the first creates the keys; it publishes no port.
    expect(second.depends_on).toMatchObject({ coordinator: { condition: 'service_healthy' }, postgres: { condition: 'service_healthy' }, redis: { condition: 'service_healthy' } });
    expect(first.healthcheck?.test?.join(' ')).toContain('/health');
    expect(second.ports ?? []).toEqual([]);
    // The proxy's configuration is in docker/, and sends requests to both replicas on the port they listen on.
    const conf = mounts(proxy).find((m) => m.target === '/etc/nginx/conf.d/default.conf');
    expect(conf?.source).toBe('./docker/nginx-scale.conf');
    const text = readFileSync(join(ROOT, conf!.source), 'utf8');
    const upstreams = [...text.matchAll(/^\s*server\s+([\w-]+):(\d+)/gm)].map((m) => `${m[1]}:${m[2]}`);
    expect(upstreams).toEqual([`coordinator:${environment(first).PORT}`, `coordinator-2:${environment(second).PORT}`]);
    const listen = /^\s*listen\s+(\d+);/m.exec(text)?.[1];
    expect(proxy.ports).toEqual([`8088:${listen}`]);
    expect(proxy.depends_on).toMatchObject({ coordinator: { condition: 'service_healthy' }, 'coordinator-2': { condition: 'service_healthy' } });
  });

  it('mounts each volume where its script looks by default, on a directory the image creates', () => {
    // A new volume takes its owner from the image's directory: one the image lacks would be root's, and unwritable.
    const inImage = new Set(readFileSync(join(ROOT, 'Dockerfile'), 'utf8').split(/\s+/));
    const problems: string[] = [];
    for (const [name, s] of Object.entries(compose.services)) {
      const script = s.entrypoint?.find((a) => a.startsWith('/app/docker/'));
      if (!script) continue;
      const text = readFileSync(join(ROOT, script.replace('/app/', '')), 'utf8');
      const targets = mounts(s).map((m) => m.target);
      // Each path the script defaults to outside the image (CONFIDE_*_DIR, CONFIDE_PARTICIPANT_HOME) is a mount, or holds mounts.
      for (const [, variable, path = ''] of text.matchAll(/\$\{(CONFIDE_\w+):-(\/[^}]*)\}/g)) {
        if (!path.startsWith('/app/') && !targets.some((t) => t === path || t.startsWith(`${path}/`))) problems.push(`${name}: ${variable} defaults to ${path}, where nothing is mounted`);
      }
      for (const target of targets) if (!inImage.has(target)) problems.push(`${name}: ${target} is not created in the Dockerfile`);
    }
    expect(problems).toEqual([]);
  });
});

describe('docker compose scripts (docker/*.sh)', () => {
  // The volumes as directories under `dir`, made in beforeAll.
  let dir = '';
  let secrets = '';
  let invitations = '';
  let researcher = '';
  let homes = '';
  const pgDatabase = `confide_compose_${randomBytes(5).toString('hex')}`;
  let env: NodeJS.ProcessEnv;
  let redisServer: ChildProcess | undefined;
  let redisPort = 0;
  let coordinator: Script | undefined;
  let coordinatorUrl = '';
  const running: Script[] = [];
  const workers = new Map<string, Script>();

  interface Script {
    readonly child: ChildProcess;
    readonly output: () => string;
    readonly exited: Promise<number | null>;
  }

  /** Starts a script in its own process group, so that stopping it stops what it started too. */
  const run = (script: string, extra: NodeJS.ProcessEnv = {}): Script => {
    const child = spawn('/bin/sh', [join(ROOT, 'docker', script)], { cwd: ROOT, env: { ...env, ...extra }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const s = { child, output: () => output, exited };
    running.push(s);
    return s;
  };

  /** Runs a one-shot script to its end, failing after `timeoutMs`. */
  const runToEnd = async (script: string, timeoutMs: number, extra: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; output: string }> => {
    const s = run(script, extra);
    const timer = setTimeout(() => s.child.kill('SIGKILL'), timeoutMs);
    const code = await s.exited;
    clearTimeout(timer);
    return { code, output: s.output() };
  };

  const secret = (name: string): string => readFileSync(join(secrets, name), 'utf8');

  const adminGet = async (path: string, token = secret('admin-token')): Promise<Response> => fetch(`${coordinatorUrl}${path}`, { headers: { authorization: `Bearer ${token}` } });

  beforeAll(async () => {
    assertBuilt();
    dir = mkdtempSync(join(tmpdir(), 'confide-compose-'));
    secrets = join(dir, 'secrets');
    invitations = join(dir, 'invitations');
    researcher = join(dir, 'researcher');
    homes = join(dir, 'homes');
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    writeFileSync(join(bin, 'confide'), `#!/bin/sh\nexec "${process.execPath}" "${CLI}" "$@"\n`);
    chmodSync(join(bin, 'confide'), 0o755);
    // The volumes, as docker creates them: empty, one per participant's invitation.
    for (const d of [secrets, researcher, ...PARTICIPANTS.map((p) => join(invitations, p))]) mkdirSync(d, { recursive: true });
    const port = await freePort();
    coordinatorUrl = `http://127.0.0.1:${port}`;
    env = {
      ...process.env,
      PATH: `${bin}:${dirname(process.execPath)}:${process.env.PATH ?? ''}`,
      CONFIDE_URL: coordinatorUrl,
      CONFIDE_SECRETS_DIR: secrets,
      CONFIDE_INVITATIONS_DIR: invitations,
      CONFIDE_RESEARCHER_DIR: researcher,
      CONFIDE_EXAMPLES_DIR: EXAMPLES,
    };
    // Nothing the scripts need may come from the test's own environment.
    for (const v of ['CONFIDE_TOKEN', 'CONFIDE_ADMIN_TOKEN', 'REDIS_URL', 'CONFIDE_PUBLIC_REDIS_URL', 'DATABASE_URL', 'CONFIDE_REDIS_URL']) delete env[v];

    const first = await runToEnd('secrets.sh', 15_000);
    if (first.code !== 0) throw new Error(`docker/secrets.sh exited ${first.code}: ${first.output}`);

    // redis as the compose file runs it, on a free loopback port.
    redisPort = await freePort();
    redisServer = spawn('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--aclfile', join(secrets, 'users.acl'), '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
    const admin = (): Redis => new Redis({ port: redisPort, host: '127.0.0.1', username: 'confide-admin', password: secret('redis-password'), lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    await until('redis-server from the ACL file', 10_000, async () => {
      const r = admin();
      r.on('error', () => undefined);
      try {
        await r.connect();
        return (await r.ping()) === 'PONG' ? true : undefined;
      } finally {
        r.disconnect();
      }
    });

    const pg = new Client({ connectionString: PG_ADMIN_URL });
    await pg.connect();
    await pg.query(`CREATE DATABASE ${pgDatabase}`);
    await pg.end();
    const databaseUrl = new URL(PG_ADMIN_URL);
    databaseUrl.pathname = `/${pgDatabase}`;

    coordinator = run('coordinator.sh', {
      CONFIDE_REDIS_ADDRESS: `127.0.0.1:${redisPort}`,
      DATABASE_URL: databaseUrl.toString(),
      PORT: String(port),
      CONFIDE_DATA_DIR: join(dir, 'coordinator'),
      CONFIDE_ROUND1_SECONDS: '30',
      CONFIDE_ROUND2_SECONDS: '30',
    });
    await until('the coordinator started by docker/coordinator.sh', 30_000, async () => ((await fetch(`${coordinatorUrl}/health`)).ok ? true : undefined));
  }, 90_000);

  afterAll(async () => {
    for (const s of running) {
      if (s.child.exitCode !== null || s.child.signalCode !== null || !s.child.pid) continue;
      // The coordinator stops its own aggregation workers; a script's group holds whatever it was waiting on.
      if (s === coordinator) s.child.kill('SIGTERM');
      else process.kill(-s.child.pid, 'SIGTERM');
    }
    await Promise.all(running.map((s) => s.exited));
    if (redisServer && redisServer.exitCode === null) {
      const exited = new Promise((resolve) => redisServer!.once('exit', resolve));
      redisServer.kill('SIGTERM');
      await exited;
    }
    const pg = new Client({ connectionString: PG_ADMIN_URL });
    await pg.connect();
    await pg.query(`DROP DATABASE IF EXISTS ${pgDatabase} WITH (FORCE)`);
    await pg.end();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('secrets.sh generates the admin token, the Redis and PostgreSQL passwords and the ACL file, each for its reader only', () => {
    for (const name of SECRETS) {
      expect(secret(name)).toMatch(/^[0-9a-f]{64}$/);
      expect(statSync(join(secrets, name)).mode & 0o777).toBe(0o600);
    }
    expect(new Set(SECRETS.map(secret)).size).toBe(SECRETS.length);
    // The ACL file holds the password's SHA-256, never the password: postgres's user has redis's uid in its image.
    const hash = createHash('sha256').update(secret('redis-password')).digest('hex');
    expect(secret('users.acl')).toBe(`user default off\nuser confide-admin on #${hash} ~* &* +@all\n`);
    expect(statSync(join(secrets, 'users.acl')).mode & 0o777).toBe(0o600);
    // As root (the compose service), each file goes to the image user that reads it: node for the tokens, redis for the ACL.
    const root = process.getuid?.() === 0;
    expect(statSync(join(secrets, 'admin-token')).uid).toBe(root ? 1000 : process.getuid?.());
    expect(statSync(join(secrets, 'users.acl')).uid).toBe(root ? 999 : process.getuid?.());
  });

  it('secrets.sh keeps the secrets on a second up', async () => {
    const before = Object.fromEntries([...SECRETS, 'users.acl'].map((n) => [n, secret(n)]));
    const again = await runToEnd('secrets.sh', 15_000);
    expect(again.code).toBe(0);
    expect(again.output).not.toContain('generated');
    expect(Object.fromEntries([...SECRETS, 'users.acl'].map((n) => [n, secret(n)]))).toEqual(before);
  }, 30_000);

  it("the ACL file locks Redis's default user out and lets the administrator in with the generated password", async () => {
    // As any client on the compose network could: RESP on a bare socket, one reply line per command.
    const talk = (commands: readonly (readonly string[])[]): Promise<string[]> =>
      new Promise((resolve, reject) => {
        let replies = '';
        const request = commands.map((c) => `*${c.length}\r\n${c.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`).join('');
        const socket = createConnection({ port: redisPort, host: '127.0.0.1' }, () => socket.write(request));
        socket.on('data', (d: Buffer) => {
          replies += d.toString();
          const lines = replies.split('\r\n');
          if (lines.length <= commands.length) return;
          socket.destroy();
          resolve(lines.slice(0, commands.length));
        });
        socket.once('error', reject);
      });
    expect(await talk([['PING']])).toEqual([expect.stringMatching(/^-NOAUTH/)]);
    for (const auth of [['AUTH', 'anything'], ['AUTH', 'default', ''], ['AUTH', 'confide-admin', 'not-the-password']]) {
      expect(await talk([auth, ['PING']])).toEqual([expect.stringMatching(/^-WRONGPASS/), expect.stringMatching(/^-NOAUTH/)]);
    }
    expect(await talk([['AUTH', 'confide-admin', secret('redis-password')], ['PING']])).toEqual(['+OK', '+PONG']);
  });

  it('coordinator.sh runs the coordinator with the generated admin token, and logs none of the secrets', async () => {
    expect((await adminGet('/v1/coordinator')).status).toBe(200);
    expect((await adminGet('/v1/coordinator', 'change-me-admin-token-0123456789abcdef')).status).toBe(401);
    const log = coordinator!.output();
    expect(log).toContain('coordinator listening');
    expect(log).not.toMatch(/switched it off/);
    for (const name of SECRETS) expect(log).not.toContain(secret(name));
  });

  it('setup.sh puts each invitation and the coordinator key in that participant’s volume, the researcher key in the researcher’s, and does it again without looping on a second up', async () => {
    const first = await runToEnd('setup.sh', 30_000);
    expect(first).toMatchObject({ code: 0, output: expect.stringContaining('study and invitations ready') as string });
    expect(first.output).not.toContain(secret('admin-token'));
    const { fingerprint } = (await (await adminGet('/v1/coordinator')).json()) as { fingerprint: string };
    const read = (...path: string[]): string => readFileSync(join(...path), 'utf8').trim();
    const tokens = Object.fromEntries(PARTICIPANTS.map((p) => [p, read(invitations, p, 'token')]));
    for (const p of PARTICIPANTS) {
      expect(tokens[p]).toMatch(/^\S{20,}$/);
      expect(read(invitations, p, 'coordinator-key')).toBe(fingerprint);
      expect(statSync(join(invitations, p, 'token')).mode & 0o777).toBe(0o600);
    }
    expect(new Set(Object.values(tokens)).size).toBe(PARTICIPANTS.length);
    const researcherToken = read(researcher, 'token');
    expect(researcherToken).toMatch(/^\S{20,}$/);
    expect(JSON.parse(read(researcher, 'study.json'))).toMatchObject({ name: 'salaries' });

    // The study exists now: the second run must take the conflict as done, not as a coordinator still starting.
    const second = await runToEnd('setup.sh', 15_000);
    expect(second.output).not.toContain('waiting for the coordinator');
    expect(second.code).toBe(0);
    for (const p of PARTICIPANTS) expect(read(invitations, p, 'token')).toBe(tokens[p]);
    expect(read(researcher, 'token')).toBe(researcherToken);
  }, 60_000);

  it('participant.sh refuses to enroll when the coordinator’s key is not the one handed over, and leaves the invitation unused', async () => {
    const tampered = join(dir, 'tampered-invitation');
    cpSync(join(invitations, 'hospital-1'), tampered, { recursive: true });
    writeFileSync(join(tampered, 'coordinator-key'), 'ab'.repeat(32));
    const home = join(dir, 'tampered-home');
    const refused = await runToEnd('participant.sh', 30_000, { PARTICIPANT: 'hospital-1', CONFIDE_PARTICIPANT_HOME: home, CONFIDE_INVITATION_DIR: tampered });
    expect(refused.code).not.toBe(0);
    expect(refused.output).toContain('not enrolling');
    expect(existsSync(join(home, 'identity.json'))).toBe(false);
    // Unused: hospital-1 enrolls with this very invitation in the next test.
  }, 60_000);

  it('enrolls three participants with their own invitations, runs their workers, and answers the researcher with the plaintext mean', async () => {
    for (const p of PARTICIPANTS) workers.set(p, run('participant.sh', { PARTICIPANT: p, CONFIDE_PARTICIPANT_HOME: join(homes, p), CONFIDE_INVITATION_DIR: join(invitations, p) }));
    await until('three workers ready', 60_000, () => Promise.resolve([...workers.values()].every((w) => w.output().includes('worker ready')) ? true : undefined));
    for (const p of PARTICIPANTS) {
      const identity = JSON.parse(readFileSync(join(homes, p, 'identity.json'), 'utf8')) as { coordinatorKeyFingerprint: string };
      expect(identity.coordinatorKeyFingerprint).toBe(readFileSync(join(invitations, p, 'coordinator-key'), 'utf8'));
    }

    const query = await runToEnd('query.sh', 90_000);
    expect(query.code).toBe(0);
    const expected = plaintextSalary();
    const mean = /mean\(salary\) = ([0-9.]+)\s+\(n = (\d+)\)/.exec(query.output);
    expect(mean).not.toBeNull();
    expect(Number(mean![2])).toBe(expected.count);
    expect(Number(mean![1])).toBeCloseTo(expected.mean, 6);
    expect(query.output).toContain('3 participants contributed');
  }, 180_000);

  it('restarts a participant from its home without a new invitation', async () => {
    const first = workers.get('hospital-2')!;
    first.child.kill('SIGTERM');
    expect(await first.exited).toBe(0);
    const again = run('participant.sh', { PARTICIPANT: 'hospital-2', CONFIDE_PARTICIPANT_HOME: join(homes, 'hospital-2'), CONFIDE_INVITATION_DIR: join(dir, 'no-invitation') });
    await until('the restarted worker to be ready', 30_000, () => Promise.resolve(again.output().includes('worker ready') ? true : undefined));
    expect(again.output()).not.toContain('waiting for an invitation');
  }, 60_000);
});
