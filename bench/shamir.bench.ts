import {
  add,
  encodeSigned,
  generateKeyPair,
  openEnvelope,
  sealEnvelope,
  signMessage,
  splitSecret,
  type Envelope,
  type KeyPair,
} from '@confide/crypto';
import {
  decodeShareVector,
  encodeShareVector,
  parseStudySchema,
  simulatePlaintext,
  simulateShamir,
  type DataRecord,
  type QuerySpec,
  type StudySchema,
} from '@confide/protocol';
import { fmt, measure, type BenchSection } from './harness';

const COMMITTEE = 10;
const THRESHOLD = 6;

/** Split a 3-value aggregate among 10 members and seal each share vector: one participant's round 1. */
export async function splitEncryptBench(): Promise<BenchSection> {
  const members: KeyPair[] = Array.from({ length: COMMITTEE }, () => generateKeyPair('x25519'));
  const signing = generateKeyPair('ed25519');
  const vector = [532n, 6438800n, 1749n].map(encodeSigned);
  const splitOnly = await measure(() => splitSecret(vector, THRESHOLD, COMMITTEE));
  const full = await measure(() => {
    const shares = splitSecret(vector, THRESHOLD, COMMITTEE);
    const envelopes = shares.map((s, j) => sealEnvelope(members[j]!.publicKey, encodeShareVector(s.y), { jobId: 'bench', round: 1, sender: 'p', recipient: `m${j}` }));
    return signMessage(signing.privateKey, 'shamir/round1', { n: envelopes.length });
  });
  return {
    id: 'shamir-round1',
    title: 'Shamir round 1: split + encrypt one participant’s vector',
    method: `A vector of 3 values, threshold ${THRESHOLD}, committee of ${COMMITTEE}: Shamir split, then one X25519+HKDF+AES-256-GCM envelope per member, then one Ed25519 signature.`,
    columns: ['operation', 'ops/s', 'median ms'],
    rows: [
      ['split only (3 values → 10 shares)', fmt(splitOnly.opsPerSec), fmt(splitOnly.medianMs)],
      ['split + 10 envelopes + sign', fmt(full.opsPerSec), fmt(full.medianMs)],
    ],
  };
}

/** A committee member's round 2 work: open 1,000 envelopes and sum the share vectors. */
export async function decryptSumBench(): Promise<BenchSection> {
  const me = generateKeyPair('x25519');
  const n = 1000;
  const envelopes: { sender: string; envelope: Envelope }[] = [];
  for (let i = 0; i < n; i++) {
    const shares = splitSecret([BigInt(i), BigInt(i * 7), 1n].map(encodeSigned), THRESHOLD, COMMITTEE);
    envelopes.push({ sender: `p${i}`, envelope: sealEnvelope(me.publicKey, encodeShareVector(shares[0]!.y), { jobId: 'bench', round: 1, sender: `p${i}`, recipient: 'm0' }) });
  }
  const t = await measure(
    () => {
      let sum = [0n, 0n, 0n];
      for (const e of envelopes) {
        const share = decodeShareVector(openEnvelope(me, e.envelope, { jobId: 'bench', round: 1, sender: e.sender, recipient: 'm0' }), 3);
        sum = sum.map((s, i) => add(s, share[i]!));
      }
      return sum;
    },
    { minIterations: 5, minMs: 2000 },
  );
  return {
    id: 'shamir-round2',
    title: 'Shamir round 2: a committee member decrypts and sums 1,000 share vectors',
    method: 'One committee member opens 1,000 envelopes (X25519 + HKDF + AES-256-GCM, 3-value share vectors) and adds them in GF(2^127 − 1). Signature checks are in the simulation below.',
    columns: ['incoming vectors', 'median ms', 'vectors/s'],
    rows: [[n.toLocaleString('en-US'), fmt(t.medianMs), fmt((n * 1000) / t.medianMs)]],
  };
}

const SCHEMA: StudySchema = parseStudySchema({
  name: 'bench-salaries',
  minParticipants: 3,
  fields: [
    { name: 'salary', type: 'number', min: 30000, max: 400000, decimals: 2 },
    { name: 'yrs_since_phd', type: 'number', min: 0, max: 60, decimals: 0 },
  ],
});
const QUERY: QuerySpec = { select: [{ stat: 'mean', field: 'salary' }, { stat: 'sum', field: 'yrs_since_phd' }] };

/** Deterministic records (splitmix64): bench data, not secrets. */
function records(seed: number, rows: number): DataRecord[] {
  let s = BigInt(seed) + 0x9e3779b97f4a7c15n;
  const next = (): bigint => {
    s = (s + 0x9e3779b97f4a7c15n) & 0xffffffffffffffffn;
    let z = s;
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & 0xffffffffffffffffn;
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & 0xffffffffffffffffn;
    return z ^ (z >> 31n);
  };
  return Array.from({ length: rows }, () => [3_000_000n + (next() % 37_000_000n), next() % 61n]);
}

/** The whole in-memory protocol at N participants against the plaintext baseline in the same process. */
export async function simulationBench(sizes = [10, 100, 1000], rowsEach = 100): Promise<BenchSection> {
  const rows: (string | number)[][] = [];
  for (const n of sizes) {
    const participants = Array.from({ length: n }, (_, i) => ({ id: `p${String(i).padStart(4, '0')}`, data: records(i, rowsEach) }));
    const asInput = () => participants.map((p) => ({ id: p.id, records: p.data }));
    const runs = n >= 1000 ? 2 : 5;
    const secure = await measure(() => simulateShamir({ schema: SCHEMA, query: QUERY, participants: asInput(), committeeSize: Math.min(COMMITTEE, n) }), {
      minIterations: runs,
      minMs: 0,
      warmup: 1,
    });
    const plain = await measure(() => simulatePlaintext({ schema: SCHEMA, query: QUERY, participants: asInput() }), { minIterations: 20, minMs: 500 });
    rows.push([n.toLocaleString('en-US'), (n * rowsEach).toLocaleString('en-US'), fmt(secure.medianMs), fmt(plain.medianMs), fmt(secure.medianMs / plain.medianMs)]);
  }
  return {
    id: 'shamir-simulation',
    title: 'Whole shamir protocol in memory vs plaintext baseline',
    method: `\`simulateShamir\` end to end: key generation for every participant, local aggregation of ${rowsEach} records each (mean of salary + sum of years: a 3-value vector), round 1 (split, 10 envelopes, sign; coordinator verifies), round 2 (each of the 10 committee members verifies every signature, decrypts and sums), finalize (reconstruct with a consistency check over all 10 answers). Baseline: the same local aggregation followed by a plain sum of the vectors, in the same process. Median of ${'≥'}2 runs.`,
    columns: ['participants', 'records', 'secure ms', 'plaintext ms', 'ratio'],
    rows,
  };
}
