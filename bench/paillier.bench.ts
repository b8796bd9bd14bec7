import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { generateRandomKeys } from 'paillier-bigint';
import {
  RnPool,
  addCiphertexts,
  assertValidPublicKey,
  decryptFast,
  encryptFast,
  generatePaillierKeyPair,
  privateKeyToJson,
  randomnessPower,
  recoverRandomness,
  sampleRandomness,
  verifyDecryption,
  type PaillierKeyPair,
} from '@confide/crypto';
import { describeMachine, fmt, measure, type BenchSection, type Timing } from './harness';

/**
 * Paillier (DESIGN.md "Protocol paillier") at 2048 and 3072 bits: stock paillier-bigint, Confide's fast paths
 * (libs/crypto/src/paillier.ts: OpenSSL through node:crypto), and a C program against OpenSSL's libcrypto
 * (bench/native/paillier_ref.c) on the same key and values, compiled here with gcc.
 */

const SIZES = [2048, 3072] as const;
/** paillier-bigint's key generation takes seconds at 3072 bits: a few runs only. */
const STOCK_KEYGEN_RUNS = 3;
/** Iterations of paillier-bigint's exponentiations (0.2–0.5 s each at these sizes), after one untimed. */
const STOCK_RUNS = 3;
/** Ciphertexts folded per homomorphic-addition call; each fold is one multiplication mod n². */
const FOLD = 1000;
/** Online encryptions per timed call. */
const ONLINE = 1000;
const NATIVE_MIN_MS = 1000;

type Row = (string | number)[];

interface NativeOps {
  readonly openssl: string;
  readonly ops: Readonly<Record<string, number>>;
}
type Native = { readonly ok: true; readonly binary: string; readonly dir: string } | { readonly ok: false; readonly reason: string };

/** Compiles the C reference into a temp dir; on failure says why, so that only its column is skipped. */
function buildNative(): Native {
  const source = resolve(__dirname, 'native/paillier_ref.c');
  const dir = mkdtempSync(join(tmpdir(), 'confide-paillier-bench-'));
  const binary = join(dir, 'paillier_ref');
  try {
    execFileSync('gcc', ['-O2', '-o', binary, source, '-lcrypto'], { stdio: ['ignore', 'pipe', 'pipe'] });
    return { ok: true, binary, dir };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    const e = err as NodeJS.ErrnoException & { stderr?: Buffer };
    if (e.code === 'ENOENT') return { ok: false, reason: 'gcc is not installed' };
    const first = e.stderr?.toString('utf8').split('\n').find((l) => /error/.test(l)) ?? e.message;
    return { ok: false, reason: `gcc could not build bench/native/paillier_ref.c against OpenSSL (are the libssl-dev headers installed?): ${first.trim()}` };
  }
}

/** Runs the C reference on the key's p, q and one (r, m); checks its ciphertext equals Confide's for the same inputs. */
function runNative(native: Native & { ok: true }, bits: number, keys: PaillierKeyPair, r: bigint, m: bigint, c: bigint): NativeOps {
  const { p, q } = factorsOf(keys);
  const input = [p, q, r, m].map((x) => x.toString(16)).join('\n') + '\n';
  const run = spawnSync(native.binary, [String(bits), String(NATIVE_MIN_MS)], { input, encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`native reference failed (${run.status ?? run.signal}): ${run.stderr}`);
  const lines = run.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  const head = lines[0] as { openssl: string; ciphertext: string };
  if (BigInt(`0x${head.ciphertext}`) !== c) throw new Error(`native reference computed another ciphertext at ${bits} bits`);
  const ops: Record<string, number> = {};
  for (const l of lines.slice(1)) ops[l.op as string] = l.opsPerSec as number;
  return { openssl: head.openssl, ops };
}

function factorsOf(keys: PaillierKeyPair): { p: bigint; q: bigint } {
  const json = privateKeyToJson(keys.privateKey);
  const int = (s: string) => BigInt(`0x${Buffer.from(s, 'base64url').toString('hex')}`);
  return { p: int(json.p), q: int(json.q) };
}

const slow = { minIterations: STOCK_RUNS, minMs: 0, warmup: 1 } as const;
const quick = { minIterations: 5, minMs: 1000, warmup: 2 } as const;

function ratio(a: number | undefined, b: number | undefined): string {
  return a === undefined || b === undefined ? '—' : `${fmt(a / b)}×`;
}

function cell(x: number | undefined): string {
  return x === undefined ? '—' : fmt(x);
}

async function sizeRows(bits: number, native: Native): Promise<{ rows: Row[]; openssl?: string }> {
  const say = (what: string) => process.stderr.write(`  paillier ${bits}: ${what}…\n`);
  say('key generation (Confide)');
  const generated: PaillierKeyPair[] = [];
  const fastKeygen = await measure(async () => generated.push(await generatePaillierKeyPair(bits)), { minIterations: 5, minMs: 3000, warmup: 1 });
  const keys = generated[0]!;
  say(`key generation (paillier-bigint, ${STOCK_KEYGEN_RUNS} runs)`);
  const stockKeygen = await measure(() => generateRandomKeys(bits, true), { minIterations: STOCK_KEYGEN_RUNS, minMs: 0, warmup: 0 });

  const { publicKey: pk, privateKey: sk } = keys;
  const { n } = pk;
  const m = BigInt(`0x${randomBytes(bits / 8).toString('hex')}`) % n;
  const r = sampleRandomness(pk);
  const pool = new RnPool(pk);
  await pool.fill(1);
  const rn = pool.take();
  // Check once, untimed, that the fast paths agree with paillier-bigint on these values.
  const cr = pk.encrypt(m, r);
  if (encryptFast(pk, m, randomnessPower(pk, r)) !== cr) throw new Error(`encryptFast disagrees with paillier-bigint at ${bits} bits`);
  if (decryptFast(sk, cr) !== sk.decrypt(cr) || recoverRandomness(sk, cr) !== sk.getRandomFactor(cr) || !verifyDecryption(pk, cr, m, r)) {
    throw new Error(`fast paths disagree with paillier-bigint at ${bits} bits`);
  }
  const cs = Array.from({ length: FOLD }, (_, i) => encryptFast(pk, BigInt(i)));

  say('encryption');
  const stockEnc = await measure(() => pk.encrypt(m), slow);
  const fastEnc = await measure(() => encryptFast(pk, m), quick);
  say('r^n pool');
  const fill = await measure(async () => {
    await pool.fill(4);
    pool.clear();
  }, quick);
  const online = await measure(() => {
    for (let i = 0; i < ONLINE; i++) encryptFast(pk, m, rn);
  }, quick);
  say('homomorphic addition');
  const stockAdd = await measure(() => pk.addition(...cs), quick);
  const fastAdd = await measure(() => addCiphertexts(pk, cs), quick);
  say('decryption');
  const stockDec = await measure(() => sk.decrypt(cr), slow);
  const fastDec = await measure(() => decryptFast(sk, cr), quick);
  say('randomness recovery and verification');
  const stockRecover = await measure(() => sk.getRandomFactor(cr), slow);
  const fastRecover = await measure(() => recoverRandomness(sk, cr), quick);
  const stockVerify = await measure(() => pk.encrypt(m, r) === cr, slow);
  const fastVerify = await measure(() => verifyDecryption(pk, cr, m, r), quick);
  say('first use of a key');
  // Every other key made above, each used here for the first time (moduli are cached by value, so it takes new ones).
  const unused = generated.slice(1);
  const once = { minIterations: unused.length, minMs: 0, warmup: 0 } as const;
  let next = 0;
  const firstEnc = await measure(() => encryptFast(unused[next++]!.publicKey, 1n), once);
  next = 0;
  const firstDec = await measure(() => {
    const k = unused[next++]!;
    return decryptFast(k.privateKey, encryptFast(k.publicKey, 1n, 1n));
  }, once);
  const validate = await measure(() => assertValidPublicKey(pk), { minIterations: 5, minMs: 500, warmup: 1 });

  let nat: NativeOps | undefined;
  if (native.ok) {
    say('native C reference');
    nat = runNative(native, bits, keys, r, m, cr);
  }
  const o = (op: string): number | undefined => nat?.ops[op];
  const per = (t: Timing, k: number) => t.opsPerSec * k;
  const line = (what: string, stock: number | undefined, fast: number | undefined, c: number | undefined, stockNote = ''): Row => [
    what,
    bits,
    cell(stock) + stockNote,
    cell(fast),
    native.ok ? cell(c) : 'skipped',
    ratio(fast, stock),
    ratio(fast, c),
  ];
  return {
    openssl: nat?.openssl,
    rows: [
      line('Key generation (key pairs/s)', stockKeygen.opsPerSec, fastKeygen.opsPerSec, o('keygen')),
      line('Encryption, no pool (fresh r, r^n, product)', stockEnc.opsPerSec, fastEnc.opsPerSec, o('encrypt')),
      line('r^n precomputation (`RnPool.fill`, offline)', undefined, per(fill, 4), o('rn')),
      line('Encryption with pool, online part (two multiplications)', stockEnc.opsPerSec, per(online, ONLINE), o('online'), ' (full encryption)'),
      line('Homomorphic addition (one multiplication mod n²)', per(stockAdd, FOLD), per(fastAdd, FOLD), o('add')),
      line('Decryption', stockDec.opsPerSec, fastDec.opsPerSec, o('decrypt')),
      line('Randomness recovery (`recoverRandomness`)', stockRecover.opsPerSec, fastRecover.opsPerSec, o('recover')),
      line('Verify a published (m, r) (`verifyDecryption`)', stockVerify.opsPerSec, fastVerify.opsPerSec, o('verify')),
      line('… encryption under a key used for the first time', undefined, firstEnc.opsPerSec, undefined),
      line('… decryption with a key used for the first time', undefined, firstDec.opsPerSec, undefined),
      line('`assertValidPublicKey` (received key)', undefined, validate.opsPerSec, undefined),
    ],
  };
}

export async function paillierBench(): Promise<BenchSection> {
  const load = loadavg()[0]!;
  const native = buildNative();
  if (!native.ok) process.stderr.write(`  paillier: native C reference skipped: ${native.reason}\n`);
  const rows: Row[] = [];
  let openssl: string | undefined;
  try {
    for (const bits of SIZES) {
      const out = await sizeRows(bits, native);
      rows.push(...out.rows);
      openssl ??= out.openssl;
    }
  } finally {
    if (native.ok) rmSync(native.dir, { recursive: true, force: true });
  }
  const nativeNote = native.ok
    ? `**OpenSSL C**: bench/native/paillier_ref.c, built here with \`gcc -O2 … -lcrypto\` against the system's ${openssl ?? 'libcrypto'}, single-threaded, on the same p, q, r and m (its ciphertext is checked equal to Confide's): BN_generate_prime_ex twice for key generation; \`BN_mod_exp_mont\` (variable-time) with a cached Montgomery context for r^n mod n²; BN_mod_mul for the products; CRT decryption with \`BN_mod_exp_mont\` mod p² and q²; r from two exponentiations mod p and q.`
    : `**OpenSSL C**: skipped on this machine: ${native.reason}.`;
  return {
    id: 'paillier',
    title: 'Paillier: paillier-bigint vs Confide\'s native fast paths vs OpenSSL in C',
    method: [
      `Run on ${describeMachine()} (Node's bundled OpenSSL ${process.versions.openssl}); one-minute load average ${fmt(load)} at the start (other processes share the CPUs and lower every column alike). All columns are operations per second at each modulus size n (ciphertexts mod n²), g = n + 1, one key pair from \`generatePaillierKeyPair\` used for every column but key generation.`,
      `**paillier-bigint** 3.4.3 (stock): \`generateRandomKeys(bits, true)\` (${STOCK_KEYGEN_RUNS} runs; it uses worker threads), \`publicKey.encrypt(m)\`, \`publicKey.addition(...)\`, \`privateKey.decrypt\` (its CRT-assisted modPow), \`getRandomFactor\`, and as "verify" a re-encryption \`encrypt(m, r) === c\`; ${STOCK_RUNS} timed runs after one untimed for the exponentiations. It has no offline/online split, so the pooled row divides by its full encryption.`,
      `**Confide** (libs/crypto/src/paillier.ts): \`generatePaillierKeyPair\` (two \`crypto.generatePrime\` calls in parallel on the libuv pool), \`encryptFast(pk, m)\`, \`RnPool.fill\` (r^n via node:crypto's Diffie–Hellman \`computeSecret\`, i.e. OpenSSL's constant-time Montgomery exponentiation, one per event-loop turn), \`encryptFast(pk, m, rn)\` with a precomputed r^n (${ONLINE} per timed call), \`addCiphertexts\` over ${FOLD} ciphertexts (figures per multiplication; paillier-bigint's \`addition\` folded over the same list), \`decryptFast\` (CRT, Paillier §7), \`recoverRandomness\`, \`verifyDecryption\`; at least 1 s each after warm-up. Steady state: the native contexts are built once per key; the "first time" rows use each of the other freshly generated keys once (OpenSSL's \`DH_check\` runs a Miller–Rabin round on each new modulus; decryption's row uses the trivial ciphertext 1 + n·1 so that only decryption builds contexts), and the last row is the public-key check a participant runs once per query.`,
      nativeNote,
      'Ratios: Confide ÷ paillier-bigint (above 1: Confide faster), and Confide ÷ OpenSSL C (1 would be C speed). Key generation is faster than the C column because Confide finds its two primes on two threads and the C program on one. Multiplications stay in V8 bigint in every JavaScript column, since node:crypto exposes no modular multiplication: homomorphic addition is no faster than paillier-bigint\'s (the same arithmetic) and slower than BN_mod_mul; a product tree or batched reductions were tried and were slower than one multiply-and-reduce per ciphertext.',
    ].join('\n\n'),
    columns: ['Operation', 'Modulus bits', 'paillier-bigint (ops/s)', 'Confide (ops/s)', 'OpenSSL C (ops/s)', 'Confide ÷ paillier-bigint', 'Confide ÷ OpenSSL C'],
    rows,
  };
}
