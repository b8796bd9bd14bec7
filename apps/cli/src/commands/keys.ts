import { existsSync, readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import {
  exportPrivateKeyPem,
  generateKeyPair,
  generatePaillierKeyPair,
  keyFingerprint,
  PAILLIER_DEFAULT_BITS,
  privateKeyFromJson,
  privateKeyToJson,
  publicKeyBase64Url,
  publicKeyToJson,
  type PaillierKeyPair,
} from '@confide/crypto';
import { PAILLIER_MIN_BITS } from '@confide/protocol';
import { writePrivateFile } from '../../../participant/src/home';
import { intOption, parseCommandArgs, UsageError } from '../args';
import type { Output } from '../output';

export const KEYS_USAGE = `Usage: confide keys researcher --out FILE [--json]
       confide keys paillier --out FILE [--bits 3072] [--json]
'keys researcher' generates the researcher's Ed25519 identity key. FILE (mode 0600) never leaves this
machine; give the printed public key to your admin, who binds it to your API key with
'confide admin keys create --role researcher --identity KEY'. Paillier queries are signed with it
('confide query --protocol paillier --identity FILE'), and every participant checks that signature
before it encrypts anything to your Paillier key.
'keys paillier' generates a Paillier key pair for the paillier protocol. FILE (mode 0600) holds the
private key and never leaves this machine: the query sends only the public key, and the aggregate is
checked and decrypted here. --bits is 2048 to 4096 (default ${PAILLIER_DEFAULT_BITS}).`;

/** A short fingerprint of a Paillier public key: the first 16 hex digits of SHA-256 over its JSON form's n. */
export function paillierFingerprint(keys: Pick<PaillierKeyPair, 'publicKey'>): string {
  return createHash('sha256').update(publicKeyToJson(keys.publicKey).n).digest('hex').slice(0, 16);
}

/** Reads a private key file written by `confide keys paillier`. @throws UsageError naming the file's problem */
export function readPaillierKeyFile(file: string): PaillierKeyPair {
  if (!existsSync(file)) throw new UsageError(`--key ${file}: no such file (create one with 'confide keys paillier --out ${file}')`);
  try {
    return privateKeyFromJson(JSON.parse(readFileSync(file, 'utf8')), { minBits: PAILLIER_MIN_BITS });
  } catch (err) {
    throw new UsageError(`--key ${file}: not a Paillier private key from 'confide keys paillier' (${(err as Error).message})`);
  }
}

/** `confide keys researcher`: the researcher's identity key, generated and kept locally; the public half is printed. */
function researcherKey(args: readonly string[], out: Output): void {
  const { values } = parseCommandArgs(args, { out: { type: 'string' }, json: { type: 'boolean' } });
  out.json = values.json === true;
  if (!values.out) throw new UsageError('--out FILE is required');
  if (existsSync(values.out)) throw new UsageError(`--out ${values.out} exists; refusing to overwrite a key`);
  const identity = generateKeyPair('ed25519');
  writePrivateFile(values.out, exportPrivateKeyPem(identity.privateKey));
  const publicKey = publicKeyBase64Url(identity.publicKey);
  const fingerprint = keyFingerprint(identity.publicKey);
  out.result({ file: values.out, publicKey, fingerprint }, () =>
    [
      `wrote the identity key to ${values.out} (mode 0600; it never leaves this machine)`,
      `public key ${publicKey}`,
      `fingerprint ${fingerprint}`,
      `give the public key to your admin: confide admin keys create --role researcher --identity ${publicKey}`,
    ].join('\n'),
  );
}

/** `confide keys paillier|researcher`: a researcher's keys, generated and kept locally. */
export async function keysCommand(argv: readonly string[], out: Output): Promise<void> {
  const [kind, ...args] = argv;
  if (kind === 'researcher') return researcherKey(args, out);
  if (kind !== 'paillier') throw new UsageError(`unknown key type ${JSON.stringify(kind ?? '')} (researcher, paillier)`);
  const { values } = parseCommandArgs(args, { out: { type: 'string' }, bits: { type: 'string' }, json: { type: 'boolean' } });
  out.json = values.json === true;
  if (!values.out) throw new UsageError('--out FILE is required');
  if (existsSync(values.out)) throw new UsageError(`--out ${values.out} exists; refusing to overwrite a key`);
  const bits = intOption(values.bits, 'bits', PAILLIER_MIN_BITS) ?? PAILLIER_DEFAULT_BITS;
  if (bits > 4096 || bits % 2 !== 0) throw new UsageError('--bits must be an even number from 2048 to 4096');
  out.progress(`generating a ${bits}-bit Paillier key…`);
  const started = Date.now();
  const keys = await generatePaillierKeyPair(bits);
  writePrivateFile(values.out, JSON.stringify(privateKeyToJson(keys.privateKey)));
  const fingerprint = paillierFingerprint(keys);
  out.result({ file: values.out, bits, fingerprint, seconds: (Date.now() - started) / 1000 }, () =>
    [`wrote the private key to ${values.out} (mode 0600; it never leaves this machine)`, `public key fingerprint ${fingerprint}, ${bits} bits`].join('\n'),
  );
}
