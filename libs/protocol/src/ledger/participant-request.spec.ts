import { generateKeyPair } from '@confide/crypto';
import {
  PARTICIPANT_REQUEST_HEADERS as H,
  PARTICIPANT_REQUEST_MAX_SKEW_MS,
  ParticipantRequestError,
  participantRequestHeaders,
  readParticipantRequestHeaders,
  verifyParticipantRequest,
  type ParticipantRequest,
} from './participant-request';

const alice = generateKeyPair('ed25519');
const mallory = generateKeyPair('ed25519');
const NOW = 1_790_000_000_000;
const request: ParticipantRequest = { method: 'GET', path: '/v1/ledger/receipt?queryId=q-1', participantId: 'p-alice', time: NOW };

function signed(req: ParticipantRequest = request, key = alice) {
  const headers = participantRequestHeaders(key, req);
  const read = readParticipantRequestHeaders(headers)!;
  return { headers, read };
}

describe('participant request signatures', () => {
  it('verifies a request signed with the participant’s key', () => {
    const { read } = signed();
    expect(read).toMatchObject({ participantId: 'p-alice', time: NOW });
    expect(() => verifyParticipantRequest(alice.publicKey, request, read.signature, NOW + 1000)).not.toThrow();
  });

  it('treats a request without the participant header as not a participant’s', () => {
    expect(readParticipantRequestHeaders({ authorization: 'Bearer x' })).toBeUndefined();
  });

  it('rejects a request signed by another participant’s key', () => {
    const { read } = signed(request, mallory);
    expect(() => verifyParticipantRequest(alice.publicKey, request, read.signature, NOW)).toThrow(ParticipantRequestError);
  });

  it.each([
    ['another path', { path: '/v1/ledger/receipt?queryId=q-2' }],
    ['another method', { method: 'POST' }],
    ['another participant id', { participantId: 'p-bob' }],
    ['another time', { time: NOW + 1 }],
  ])('rejects a signature replayed for %s', (_what, change) => {
    const { read } = signed();
    expect(() => verifyParticipantRequest(alice.publicKey, { ...request, ...change }, read.signature, NOW)).toThrow(/does not verify/);
  });

  it('rejects a request outside the clock window, in either direction', () => {
    const { read } = signed();
    expect(() => verifyParticipantRequest(alice.publicKey, request, read.signature, NOW + PARTICIPANT_REQUEST_MAX_SKEW_MS + 1)).toThrow(/clock/);
    expect(() => verifyParticipantRequest(alice.publicKey, request, read.signature, NOW - PARTICIPANT_REQUEST_MAX_SKEW_MS - 1)).toThrow(/clock/);
  });

  it.each([
    ['a malformed id', { [H.participant]: 'p alice' }],
    ['a non-numeric time', { [H.time]: '2026-11-28' }],
    ['no signature', { [H.signature]: undefined }],
    ['a repeated header', { [H.time]: [String(NOW), String(NOW)] }],
  ])('names the problem for %s', (_what, change) => {
    const { headers } = signed();
    expect(() => readParticipantRequestHeaders({ ...headers, ...change })).toThrow(ParticipantRequestError);
  });
});
