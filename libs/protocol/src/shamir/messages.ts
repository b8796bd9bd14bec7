import { z } from 'zod';

/**
 * Wire formats of the shamir protocol, validated at every boundary (a worker parsing a task, the
 * coordinator accepting an answer). Public packages only: nothing here is secret except inside envelopes.
 */

const id = z.string().min(1).max(200);
const hex64 = z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 hex digits');
const b64u = z.string().regex(/^[A-Za-z0-9_-]+$/, 'expected base64url');

export const envelopeSchema = z.strictObject({ v: z.literal(1), epk: b64u, iv: b64u, ct: b64u });

export const planSchema = z.strictObject({
  protocol: z.literal('shamir'),
  version: z.literal(1),
  jobId: id,
  queryHash: hex64,
  vectorLength: z.number().int().min(1).max(1_000_000),
  participants: z.array(id).min(1).readonly(),
  committee: z.array(id).min(1).readonly(),
  threshold: z.number().int().min(1),
  minParticipants: z.number().int().min(1),
  seed: z.string().regex(/^[0-9a-f]{32,128}$/),
  deadlines: z.strictObject({ round1: z.number().int(), round2: z.number().int() }),
});

/** What a participant signs in round 1: one digest per committee member's envelope, in committee order. */
export const round1SignedSchema = z.strictObject({
  jobId: id,
  planHash: hex64,
  sender: id,
  digests: z.array(hex64).min(1),
});
export type Round1Signed = z.infer<typeof round1SignedSchema>;

/** A participant's whole round-1 answer: its envelopes, one per committee member, and its signature. */
export const round1BundleSchema = round1SignedSchema.extend({
  envelopes: z.array(envelopeSchema).min(1),
  signature: b64u,
});
export type Round1Bundle = z.infer<typeof round1BundleSchema>;

/** The slice of one bundle that reaches one committee member: its own envelope plus what verifies the signature. */
export const round1DeliverySchema = round1SignedSchema.extend({
  envelope: envelopeSchema,
  signature: b64u,
});
export type Round1Delivery = z.infer<typeof round1DeliverySchema>;

/** The coordinator's record that round 1 closed: who contributed and the hash of each signed bundle. */
export const round1ClosedSchema = z.strictObject({
  jobId: id,
  planHash: hex64,
  contributors: z.array(z.strictObject({ id, bundleHash: hex64 })),
});
export type Round1Closed = z.infer<typeof round1ClosedSchema>;

/**
 * What a committee member signs in round 2: its share sum over exactly the closed set, sealed to the coordinator's
 * X25519 key (the one reader that reconstructs), never in clear: any t share sums open the exact totals, and
 * Redis is not trusted with them.
 */
export const round2SignedSchema = z.strictObject({
  jobId: id,
  planHash: hex64,
  closedHash: hex64,
  sender: id,
  x: z.number().int().min(1),
  sealed: envelopeSchema,
});
export const round2ResultSchema = round2SignedSchema.extend({ signature: b64u });
export type Round2Result = z.infer<typeof round2ResultSchema>;

/** The recipient name bound into a sealed round-2 share sum (the envelope's associated data). */
export const ROUND2_READER = 'coordinator';

/** Signature domains (libs/crypto signMessage): one per message type, never reused. */
export const DOMAIN = {
  round1: 'shamir/round1',
  round2: 'shamir/round2-sealed',
} as const;
