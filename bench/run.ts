import { aggregateBench } from './aggregate.bench';
import { round1ChecksBench } from './authorize.bench';
import { consoleBench } from './console.bench';
import { custodiansBench } from './custodians.bench';
import { e2eLatencyBench, e2ePaillierBench, e2eThroughputBench } from './e2e.bench';
import { fieldBench } from './field.bench';
import { publish, type BenchSection } from './harness';
import { ledgerBench } from './ledger.bench';
import { paillierBench } from './paillier.bench';
import { recoveryBench } from './recovery.bench';
import { scaleBench } from './scale.bench';
import { decryptSumBench, simulationBench, splitEncryptBench } from './shamir.bench';
import { soakBench } from './soak.bench';

/** Every benchmark by id; `npm run bench -- ID...` runs some, `npm run bench` runs all. */
const BENCHES: Record<string, () => Promise<BenchSection>> = {
  field: fieldBench,
  'shamir-round1': splitEncryptBench,
  'shamir-round1-checks': () => round1ChecksBench(),
  'shamir-round2': decryptSumBench,
  'shamir-simulation': () => simulationBench(),
  'e2e-latency': () => e2eLatencyBench(),
  'e2e-throughput': () => e2eThroughputBench(),
  'e2e-paillier': () => e2ePaillierBench(),
  ledger: () => ledgerBench(),
  paillier: () => paillierBench(),
  'paillier-custodians': () => custodiansBench(),
  'local-aggregation': () => aggregateBench(),
  soak: () => soakBench(),
  recovery: () => recoveryBench(),
  console: () => consoleBench(),
  scale: () => scaleBench(),
};

async function main(ids: string[]): Promise<void> {
  const unknown = ids.filter((id) => !(id in BENCHES));
  if (unknown.length) throw new Error(`unknown benchmark ${unknown.join(', ')}; known: ${Object.keys(BENCHES).join(', ')}`);
  for (const id of ids.length ? ids : Object.keys(BENCHES)) {
    process.stderr.write(`running ${id}…\n`);
    publish(await BENCHES[id]!());
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
