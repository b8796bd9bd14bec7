import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  addCiphertexts,
  ciphertextFromString,
  ciphertextToString,
  encryptFast,
  generatePaillierKeyPair,
  importPrivateKeyPem,
  publicKeyFromJson,
  publicKeyToJson,
  randomnessPower,
  sampleRandomness,
  signMessage,
  type KeyPair,
  type PaillierPublicKey,
} from '@confide/crypto';
import {
  canonicalQuery,
  compileQuery,
  CONTRIBUTION_SIGNATURE_DOMAIN,
  ENTRY,
  entryKey,
  paillierPlanHash,
  parseStudySchema,
  planPaillier,
  queryHash,
  querySpecFor,
  researcherStatement,
  signResearcherStatement,
  type PaillierContribution,
  type ResearcherBinding,
  type StudySchema,
} from '@confide/protocol';
import { newQueryId, TASK, type TaskOf } from '@confide/queue';
import { Cluster, type ParticipantProcess, until } from '../support/cluster';
import { runCli, singleJson } from '../support/cli';
import { HostileCoordinator, inventParticipant } from '../support/hostile';
import { coordinatorProxy } from '../support/proxy';
import { expectedSalaryResults, SALARY_SELECT } from '../support/salary-query';
import { generateSalaryCsv, syntheticSalaryStudy } from '../support/synthetic';
import { studyIdOf, type FinishedJob } from '../support/task-queues';

// DESIGN.md "Protocol paillier" against the trust model's coordinator: it signs anything with the coordinator key,
// appends anything to the ledger and serves the researcher's CLI anything it likes. Two attacks of the issue:
// - it swaps the researcher's key for its own in the tasks, decrypts every contribution and re-encrypts the sum;
// - it uses the key holder as a decryption oracle, serving one participant's ciphertext (or a product missing some
//   contributors, or padded with its own) as "the aggregate".
// Every test plays the attacker with real processes and real keys: the coordinator's own key and database
// (test/support/hostile.ts), honest participants' worker processes, and the researcher's real CLI behind a proxy
// that rewrites what the coordinator serves it.

describe('a hostile coordinator against paillier participants and key holders (PostgreSQL)', () => {
  let cluster: Cluster;
  let hostile: HostileCoordinator;
  let study: { id: string; schema: StudySchema };
  let researcher: { token: string; keyId: string; identityFile: string };
  let identity: KeyPair;
  let keyFile: string;
  let researcherKey: { n: string };
  /** The coordinator's own Paillier key, which it would like participants to encrypt to. */
  let coordinatorN: { n: string };
  const sites: ParticipantProcess[] = [];
  const texts: string[] = [];

  beforeAll(async () => {
    cluster = await Cluster.start({ database: 'postgres' });
    await cluster.createStudy(syntheticSalaryStudy());
    for (let i = 1; i <= 4; i++) {
      const csv = join(cluster.dir, `site-${i}.csv`);
      texts.push(generateSalaryCsv(700 + i, 25));
      writeFileSync(csv, texts[i - 1]!);
      sites.push(await cluster.enroll('salaries', `site-${i}`, csv));
    }
    await Promise.all(sites.map((p) => cluster.run(p)));
    study = { id: studyIdOf(sites[0]!), schema: parseStudySchema(syntheticSalaryStudy()) };
    hostile = await HostileCoordinator.open(cluster);
    researcher = await cluster.researcher();
    identity = importPrivateKeyPem('ed25519', readFileSync(researcher.identityFile, 'utf8'));
    keyFile = join(cluster.dir, 'researcher-paillier.json');
    await cluster.cliJson(['keys', 'paillier', '--out', keyFile, '--bits', '2048'], null);
    researcherKey = { n: (JSON.parse(readFileSync(keyFile, 'utf8')) as { n: string }).n };
    coordinatorN = publicKeyToJson((await generatePaillierKeyPair(2048)).publicKey);
  }, 180_000);

  afterAll(async () => {
    await hostile?.close();
    await cluster?.stop();
  }, 60_000);

  describe('attack: the coordinator swaps the researcher’s key for its own', () => {
    const spec = () => querySpecFor(study.schema, { select: [{ stat: 'count', field: 'salary' }, { stat: 'sum', field: 'salary' }] });

    /**
     * A paillier query as the hostile coordinator logs and plans it: `query.submitted` records `submittedN` with the
     * binding `researcher` under API key `keyId`, and the tasks' plan (and `paillier.planned`) carries `planN`.
     */
    const forge = async (o: { submittedN: { n: string }; planN: { n: string }; binding: ResearcherBinding; keyId?: string }) => {
      const queryId = newQueryId();
      const s = spec();
      const enrolled = await hostile.enrolled(study.id);
      const submittedIndex = await hostile.append(
        ENTRY.querySubmitted,
        { queryId, studyId: study.id, study: 'salaries', protocol: 'paillier', query: canonicalQuery(s) as object, queryHash: queryHash(s), submittedBy: o.keyId ?? researcher.keyId, publicKey: o.submittedN, researcher: o.binding },
        study.id,
      );
      const now = Date.now();
      const plan = planPaillier({
        jobId: queryId,
        queryHash: queryHash(s),
        compiled: compileQuery(study.schema, s),
        publicKey: o.planN,
        participants: enrolled,
        minParticipants: 3,
        maxRecords: 1000n,
        deadline: now + 60_000,
        dp: null,
      });
      const plannedIndex = await hostile.append(
        ENTRY.paillierPlanned,
        { queryId, studyId: study.id, participants: plan.participants, publicKey: plan.publicKey, maxRecords: plan.maxRecords, deadline: plan.deadline, planHash: paillierPlanHash(plan) },
        study.id,
      );
      const more = await hostile.events.indicesOf([entryKey(ENTRY.studyCreated, study.id), entryKey(ENTRY.apiKeyCreated, o.keyId ?? researcher.keyId)]);
      const evidence = await hostile.events.evidence([submittedIndex, plannedIndex, ...more.values()]);
      const jobs: FinishedJob[] = [];
      for (const p of sites) {
        const task: TaskOf<typeof TASK.paillierContribute> = {
          kind: TASK.paillierContribute,
          queryId,
          studyId: study.id,
          participantId: p.participantId,
          issuedAt: now,
          deadline: plan.deadline,
          plan,
          query: JSON.parse(JSON.stringify(s)) as TaskOf<typeof TASK.paillierContribute>['query'],
          evidence,
        };
        jobs.push(await hostile.send(task));
      }
      return { queryId, jobs };
    };
    const signedBy = (who: KeyPair, n: { n: string }): ResearcherBinding => signResearcherStatement(who, researcherStatement('salaries', spec(), n, null, randomBytes(32).toString('hex')));

    /** Every worker refused: failed job, no answer, nothing stored, the reason in its journal. */
    const expectAllRefused = (queryId: string, jobs: readonly FinishedJob[], reason: RegExp): void => {
      for (const [i, job] of jobs.entries()) {
        expect([job.state, job.failedReason]).toEqual(['failed', expect.stringMatching(reason) as string]);
        expect(job.returnvalue).toBeFalsy();
        expect(existsSync(join(sites[i]!.home, 'state', `${queryId}.r1.json`))).toBe(false);
        expect(readFileSync(join(sites[i]!.home, 'state', 'journal.jsonl'), 'utf8')).toMatch(new RegExp(`"queryId":"${queryId}"[^\\n]*"outcome":"refused"`));
      }
    };

    it('every worker answers a query signed by its researcher for the key it names: the forgeries below differ in one thing', async () => {
      const { jobs } = await forge({ submittedN: researcherKey, planN: researcherKey, binding: signedBy(identity, researcherKey) });
      for (const job of jobs) expect(job.state).toBe('completed');
    }, 90_000);

    it('every worker refuses a plan whose key is not the one the researcher signed and the ledger records', async () => {
      const { queryId, jobs } = await forge({ submittedN: researcherKey, planN: coordinatorN, binding: signedBy(identity, researcherKey) });
      expectAllRefused(queryId, jobs, /the plan's public key is not the one the ledger records/);
    }, 90_000);

    it('every worker refuses the coordinator’s key logged with the researcher’s signature over another key', async () => {
      const { queryId, jobs } = await forge({ submittedN: coordinatorN, planN: coordinatorN, binding: signedBy(identity, researcherKey) });
      expectAllRefused(queryId, jobs, /signature does not cover this study, query, public key and custodians/);
    }, 90_000);

    it('every worker refuses the coordinator’s key signed with an identity key of its own under the researcher’s API key', async () => {
      const own = inventParticipant().signing;
      const { queryId, jobs } = await forge({ submittedN: coordinatorN, planN: coordinatorN, binding: signedBy(own, coordinatorN) });
      expectAllRefused(queryId, jobs, /is not the one bound to the submitting API key/);
    }, 90_000);

    it('every worker refuses a query under an API key with no identity bound to it (an admin key, say)', async () => {
      const auditorId = String((await cluster.cliJson(['admin', 'keys', 'create', '--role', 'auditor'])).id);
      const { queryId, jobs } = await forge({ submittedN: coordinatorN, planN: coordinatorN, binding: signedBy(identity, coordinatorN), keyId: auditorId });
      expectAllRefused(queryId, jobs, /is not a researcher key bound to an identity key/);
    }, 90_000);
  });

  describe('attack: the coordinator uses the key holder as a decryption oracle', () => {
    type Bundle = { ciphertexts: string[]; contributions: { contribution: PaillierContribution; signingKey: string }[]; publicKey: { n: string } };
    let id: string;
    let publicKey: PaillierPublicKey;

    beforeAll(async () => {
      const submitted = await cluster.cliJson(['query', '--study', 'salaries', '--protocol', 'paillier', '--key', keyFile, '--identity', researcher.identityFile, ...SALARY_SELECT, '--deadline', '30'], researcher.token);
      id = String(submitted.id);
      await until('the aggregate', 60_000, async () => ((await cluster.get<{ awaitingDecryption: boolean }>(`/v1/queries/${id}`, researcher.token)).awaitingDecryption ? true : undefined));
      publicKey = publicKeyFromJson(researcherKey);
    }, 90_000);

    const product = (cs: readonly string[][]): string[] =>
      cs[0]!.map((_, chunk) => ciphertextToString(publicKey, addCiphertexts(publicKey, cs.map((c) => ciphertextFromString(publicKey, c[chunk]!)))));
    /** c · r^n for a fresh r: the same plaintext, a ciphertext nobody has seen. */
    const rerandomise = (c: string): string => ciphertextToString(publicKey, addCiphertexts(publicKey, [ciphertextFromString(publicKey, c), randomnessPower(publicKey, sampleRandomness(publicKey))]));

    /** Runs the researcher's real `query decrypt` with the coordinator's answer to GET …/aggregate rewritten by `forge`. */
    const decryptThrough = async (forge: (b: Bundle) => Bundle) => {
      const proxy = await coordinatorProxy(cluster.url, (method, url, status, body) => {
        if (method !== 'GET' || !url.endsWith('/aggregate') || status !== 200) return body;
        return Buffer.from(JSON.stringify(forge(JSON.parse(body.toString('utf8')) as Bundle)));
      });
      try {
        const r = await runCli(['query', 'decrypt', id, '--key', keyFile, '--json'], { env: { CONFIDE_URL: proxy.url, CONFIDE_TOKEN: researcher.token }, timeoutMs: 60_000 });
        return { ...r, posted: proxy.bodies.filter((b) => b.startsWith('POST')) };
      } finally {
        await proxy.close();
      }
    };
    const expectRefused = (r: Awaited<ReturnType<typeof decryptThrough>>, reason: RegExp): void => {
      expect(r.code).toBe(1);
      expect(singleJson(r.stdout)).toEqual({ error: 'aggregate_refused', message: expect.stringMatching(reason) as string });
      // Nothing was decrypted, so nothing was posted.
      expect(r.posted).toEqual([]);
    };
    const victim = (b: Bundle) => b.contributions.find((c) => c.contribution.sender === sites[0]!.participantId)!;

    it('refuses a single contribution, re-randomised, passed off as the aggregate', async () => {
      const r = await decryptThrough((b) => ({ ...b, ciphertexts: victim(b).contribution.ciphertexts.map(rerandomise) }));
      expectRefused(r, /aggregate ciphertext 0 is not the product of the 4 logged contributions/);
    }, 90_000);

    it('refuses the victim’s contribution served alone, as if it were the only contributor', async () => {
      const r = await decryptThrough((b) => ({ ...b, contributions: [victim(b)], ciphertexts: victim(b).contribution.ciphertexts.map(rerandomise) }));
      expectRefused(r, /round\.closed entry \d+ records .*, missing from the aggregate/);
    }, 90_000);

    it('refuses a product with a contributor left out, consistent as it is', async () => {
      const r = await decryptThrough((b) => {
        const kept = b.contributions.filter((c) => c.contribution.sender !== sites[1]!.participantId);
        return { ...b, contributions: kept, ciphertexts: product(kept.map((c) => c.contribution.ciphertexts)) };
      });
      expectRefused(r, new RegExp(`records ${sites[1]!.participantId}, missing from the aggregate`));
    }, 90_000);

    it('refuses an extra contribution the ledger does not record, signed by a participant the coordinator invented', async () => {
      const r = await decryptThrough((b) => {
        const fake = inventParticipant();
        const template = b.contributions[0]!.contribution;
        const signed = { jobId: template.jobId, planHash: template.planHash, sender: fake.id, ciphertexts: template.ciphertexts.map(() => ciphertextToString(publicKey, encryptFast(publicKey, 0n))) };
        const extra = { contribution: { ...signed, signature: signMessage(fake.signing.privateKey, CONTRIBUTION_SIGNATURE_DOMAIN, signed) }, signingKey: fake.keys.signingKey };
        const all = [...b.contributions, extra];
        return { ...b, contributions: all, ciphertexts: product(all.map((c) => c.contribution.ciphertexts)) };
      });
      expectRefused(r, /contribution from p\w+ is not in the ledger's round\.closed entry/);
    }, 90_000);

    it('refuses a contribution whose signature is not its participant’s enrolled key', async () => {
      const r = await decryptThrough((b) => ({ ...b, contributions: b.contributions.map((c, i) => (i === 0 ? { ...c, signingKey: inventParticipant().keys.signingKey } : c)) }));
      expectRefused(r, /signing key is not the one logged at its enrollment/);
    }, 90_000);

    it('decrypts the honest aggregate, after all that, to the plaintext results', async () => {
      const q = await cluster.cliJson(['query', 'decrypt', id, '--key', keyFile], researcher.token);
      expect(q).toMatchObject({ status: 'succeeded', participants: 4, results: expectedSalaryResults(texts) });
    }, 90_000);
  });
});
