import { Job, Queue, UnrecoverableError, Worker } from 'bullmq';
import type { Logger } from 'pino';
import { importPublicKeyBase64Url, type KeyPair, type PublicKey } from '@confide/crypto';
import { aggregateContributions, compileQuery, paillierContext, parseStudySchema, ProtocolError, verifyContribution, type PaillierContribution, type QuerySpec } from '@confide/protocol';
import {
  AGGREGATION_QUEUE,
  aggregationJobSchema,
  answerSchemas,
  openAggregation,
  participantQueue,
  signAggregation,
  TASK,
  TaskRejected,
  type OutageMonitor,
  roundOf,
  taskJobId,
  type AggregationJob,
  type AggregationResult,
  type RedisClient,
} from '@confide/queue';

/** Options of {@link Aggregator}. */
export interface AggregatorOptions {
  /** A blocking connection (maxRetriesPerRequest: null) for the worker, and one for reading participant jobs. */
  readonly connection: RedisClient;
  readonly reader: RedisClient;
  readonly prefix: string;
  /** The coordinator's key: verifies the jobs it enqueued and signs the results. */
  readonly key: KeyPair;
  readonly logger: Logger;
  /** Where the worker's and its queues' errors go: one line per Redis outage. */
  readonly outages: OutageMonitor;
  readonly concurrency?: number;
}

const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * The Paillier aggregation worker (DESIGN.md "Protocol paillier": the coordinator multiplies ciphertexts on
 * scalable aggregation workers). It runs in processes of its own, never the HTTP process: the coordinator forks
 * `CONFIDE_AGGREGATORS` of them, and `confide coordinator aggregate` starts more on any machine with the
 * coordinator's key and Redis. Each job checks every answered contribution (signature with the registered key,
 * plan hash, each ciphertext in range and a unit mod n², which costs a gcd at n² size) and multiplies the valid
 * ones chunk by chunk. It yields to the event loop between contributions, so BullMQ's lock renewal keeps running
 * however large the job. Individual ciphertexts leave it only as the signed contributions it accepted, which the key holder multiplies again to check the product.
 */
export class Aggregator {
  private worker?: Worker;
  private readonly queues = new Map<string, Queue>();

  constructor(private readonly options: AggregatorOptions) {}

  async start(): Promise<void> {
    const { connection, prefix, logger } = this.options;
    this.worker = new Worker(AGGREGATION_QUEUE, (job) => this.process(job), { connection, prefix, concurrency: this.options.concurrency ?? 1, autorun: false });
    this.worker.on('failed', (job, err) => logger.warn({ jobId: job?.id, reason: err.message }, 'aggregation failed'));
    this.options.outages.listen(this.worker, 'aggregation worker');
    void this.worker.run();
    await this.worker.waitUntilReady();
    logger.info({ pid: process.pid }, 'aggregation worker ready');
  }

  async stop(): Promise<void> {
    await this.worker?.close();
    await Promise.all([...this.queues.values()].map((q) => q.close()));
  }

  private queueOf(participantId: string): Queue {
    let q = this.queues.get(participantId);
    if (!q) {
      q = new Queue(participantQueue(participantId), { connection: this.options.reader, prefix: this.options.prefix });
      this.options.outages.listen(q, `queue of ${participantId}`);
      this.queues.set(participantId, q);
    }
    return q;
  }

  /** One query's aggregation: check, multiply, sign the result. */
  async process(job: Job): Promise<{ payload: AggregationResult; signature: string }> {
    let data: AggregationJob;
    try {
      data = openAggregation(job.data, aggregationJobSchema, this.options.key.publicKey);
    } catch (err) {
      if (err instanceof TaskRejected) throw new UnrecoverableError(err.message);
      throw err;
    }
    const result = await this.aggregate(data);
    this.options.logger.info({ queryId: data.queryId, contributors: result.contributors.length, rejected: result.rejected.length, failure: result.failure }, 'aggregated');
    return signAggregation(this.options.key, result);
  }

  private async aggregate(data: AggregationJob): Promise<AggregationResult> {
    const { plan } = data;
    const compiled = compileQuery(parseStudySchema(data.schema), data.query as unknown as QuerySpec);
    const context = paillierContext(plan, compiled);
    const keys = new Map<string, PublicKey>(data.answered.map((a) => [a.id, importPublicKeyBase64Url('ed25519', a.signingKey)]));
    const accepted: { sender: string; ciphertexts: bigint[]; hash: string; signed: PaillierContribution }[] = [];
    const rejected: AggregationResult['rejected'] = [];
    for (const { id } of data.answered) {
      const answerJob = await Job.fromId(this.queueOf(id), taskJobId(data.queryId, roundOf(TASK.paillierContribute), id));
      const parsed = answerSchemas[TASK.paillierContribute].safeParse(answerJob?.returnvalue);
      try {
        if (!parsed.success) throw new ProtocolError('INVALID_MESSAGE', 'no well-formed contribution in the answer');
        const checked = verifyContribution(plan, context, keys, parsed.data.contribution);
        if (checked.sender !== id) throw new ProtocolError('UNKNOWN_SENDER', 'contribution signed by another participant');
        accepted.push({ ...checked, signed: parsed.data.contribution });
      } catch (err) {
        rejected.push({ participantId: id, reason: err instanceof Error ? err.message : String(err) });
      }
      await yieldToEventLoop();
    }
    accepted.sort((a, b) => (a.sender < b.sender ? -1 : 1));
    const base = { queryId: data.queryId, rejected, contributors: accepted.map((a) => ({ id: a.sender, bundleHash: a.hash })), contributions: accepted.map((a) => a.signed) };
    if (accepted.length < plan.minParticipants) {
      return { ...base, aggregate: null, failure: `${accepted.length} of ${plan.participants.length} participants contributed a valid ciphertext, at least ${plan.minParticipants} needed` };
    }
    return { ...base, aggregate: aggregateContributions(context, accepted), failure: null };
  }
}
