import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import {
  custodianShareToJson,
  exportPrivateKeyPem,
  generateKeyPair,
  generateThresholdPaillierKey,
  generatePaillierKeyPair,
  keyFingerprint,
  PAILLIER_DEFAULT_BITS,
  privateKeyFromJson,
  privateKeyToJson,
  publicKeyBase64Url,
  publicKeyToJson,
  THRESHOLD_MAX_CUSTODIANS,
  thresholdVerificationToJson,
  custodianShareFromJson,
  thresholdVerificationFromJson,
  type CustodianShare,
  type PaillierKeyPair,
  type ThresholdVerificationKey,
} from '@confide/crypto';
import { PAILLIER_MIN_BITS } from '@confide/protocol';
import { writePrivateFile } from '../../../participant/src/home';
import { intOption, parseCommandArgs, UsageError } from '../args';
import type { Output } from '../output';

export const KEYS_USAGE = `Usage: confide keys researcher --out FILE [--json]
       confide keys paillier --out FILE [--bits 3072] [--json]
       confide keys paillier --out DIR --custodians L --threshold T [--keep-full-key] [--bits 3072] [--json]
'keys researcher' generates the researcher's Ed25519 identity key. FILE (mode 0600) never leaves this
machine; give the printed public key to your admin, who binds it to your API key with
'confide admin keys create --role researcher --identity=KEY'. Paillier queries are signed with it
('confide query --protocol paillier --identity FILE'), and every participant checks that signature
before it encrypts anything to your Paillier key.
'keys paillier' generates a Paillier key pair for the paillier protocol. FILE (mode 0600) holds the
private key and never leaves this machine: the query sends only the public key, and the aggregate is
checked and decrypted here. --bits is 2048 to 4096 (default ${PAILLIER_DEFAULT_BITS}).
With --custodians the key is split among L custodians, any T of whom decrypt together (threshold Paillier,
Shoup 2000 / Damgard-Jurik 2001, from safe primes: expect seconds to a minute at 3072 bits). DIR gets
custodians.json (the public key and the custodians' verification keys: submit queries with
'confide query --custodians DIR/custodians.json') and custodian-1.json … custodian-L.json (mode 0600: hand
each to its custodian only, who runs 'confide query decrypt-share ID --share FILE'). The whole key is not
kept unless --keep-full-key writes it to DIR/full-key.json: whoever holds it can decrypt alone.`;

/** A short fingerprint of a Paillier public key: the first 16 hex digits of SHA-256 over its JSON form's n. */
export function paillierFingerprint(keys: Pick<PaillierKeyPair, 'publicKey'>): string {
  return createHash('sha256').update(publicKeyToJson(keys.publicKey).n).digest('hex').slice(0, 16);
}

/** Reads the custodians' public file written by `confide keys paillier --custodians`. @throws UsageError naming the problem */
export function readCustodiansFile(file: string): { json: Record<string, unknown>; verification: ThresholdVerificationKey } {
  if (!existsSync(file)) throw new UsageError(`--custodians ${file}: no such file (create one with 'confide keys paillier --out DIR --custodians L --threshold T')`);
  try {
    const json = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    return { json, verification: thresholdVerificationFromJson(json, { minBits: PAILLIER_MIN_BITS }) };
  } catch (err) {
    throw new UsageError(`--custodians ${file}: not the custodians.json of 'confide keys paillier --custodians' (${(err as Error).message})`);
  }
}

/** Reads a custodian's share file. @throws UsageError naming the file's problem */
export function readShareFile(file: string): CustodianShare {
  if (!existsSync(file)) throw new UsageError(`--share ${file}: no such file`);
  try {
    return custodianShareFromJson(JSON.parse(readFileSync(file, 'utf8')), { minBits: PAILLIER_MIN_BITS });
  } catch (err) {
    throw new UsageError(`--share ${file}: not a custodian share from 'confide keys paillier --custodians' (${(err as Error).message})`);
  }
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
      `give the public key to your admin: confide admin keys create --role researcher --identity=${publicKey}`,
    ].join('\n'),
  );
}

/**
 * `confide keys paillier --custodians L --threshold T`: the dealer's side of threshold Paillier. Generates the key
 * from safe primes, splits its decryption exponent into L shares, writes the public verification keys and one file
 * per custodian, and keeps the whole key only when asked to: otherwise p and q exist only in this process's memory,
 * for as long as generating the shares takes.
 */
async function custodianKeys(dir: string, bits: number, l: string | undefined, t: string | undefined, keepFullKey: boolean, out: Output): Promise<void> {
  const custodians = intOption(l, 'custodians', 1);
  const threshold = intOption(t, 'threshold', 1);
  if (custodians === undefined || threshold === undefined) throw new UsageError('--custodians L and --threshold T go together');
  if (custodians > THRESHOLD_MAX_CUSTODIANS) throw new UsageError(`--custodians must be at most ${THRESHOLD_MAX_CUSTODIANS}`);
  if (threshold > custodians) throw new UsageError(`--threshold ${threshold} is more than the ${custodians} custodians`);
  out.progress(`generating a ${bits}-bit Paillier key from safe primes and splitting it among ${custodians} custodians…`);
  const started = Date.now();
  const key = await generateThresholdPaillierKey(bits, custodians, threshold, { keepFullKey });
  mkdirSync(dir, { mode: 0o700 });
  const publicFile = join(dir, 'custodians.json');
  writeFileSync(publicFile, `${JSON.stringify(thresholdVerificationToJson(key.verification), null, 2)}\n`);
  const shareFiles = key.shares.map((share) => {
    const file = join(dir, `custodian-${share.index}.json`);
    writePrivateFile(file, JSON.stringify(custodianShareToJson(share)));
    return file;
  });
  const fullKeyFile = key.fullKey ? join(dir, 'full-key.json') : null;
  if (key.fullKey && fullKeyFile) writePrivateFile(fullKeyFile, JSON.stringify(privateKeyToJson(key.fullKey.privateKey)));
  const fingerprint = paillierFingerprint(key);
  out.result({ dir, bits, custodians, threshold, fingerprint, publicFile, shareFiles, fullKeyFile, seconds: (Date.now() - started) / 1000 }, () =>
    [
      `wrote the public key and the custodians' verification keys to ${publicFile}`,
      `wrote ${custodians} custodian shares (mode 0600; hand each to its custodian only): ${shareFiles.join(', ')}`,
      fullKeyFile ? `kept the whole key in ${fullKeyFile} (mode 0600): whoever holds it decrypts alone` : 'the whole key was not kept: any ' + threshold + ' of the custodians decrypt together',
      `public key fingerprint ${fingerprint}, ${bits} bits`,
    ].join('\n'),
  );
}

/** `confide keys paillier|researcher`: a researcher's keys, generated and kept locally. */
export async function keysCommand(argv: readonly string[], out: Output): Promise<void> {
  const [kind, ...args] = argv;
  if (kind === 'researcher') return researcherKey(args, out);
  if (kind !== 'paillier') throw new UsageError(`unknown key type ${JSON.stringify(kind ?? '')} (researcher, paillier)`);
  const { values } = parseCommandArgs(args, {
    out: { type: 'string' },
    bits: { type: 'string' },
    custodians: { type: 'string' },
    threshold: { type: 'string' },
    'keep-full-key': { type: 'boolean' },
    json: { type: 'boolean' },
  });
  out.json = values.json === true;
  if (!values.out) throw new UsageError('--out FILE is required');
  if (existsSync(values.out)) throw new UsageError(`--out ${values.out} exists; refusing to overwrite a key`);
  const bits = intOption(values.bits, 'bits', PAILLIER_MIN_BITS) ?? PAILLIER_DEFAULT_BITS;
  if (bits > 4096 || bits % 2 !== 0) throw new UsageError('--bits must be an even number from 2048 to 4096');
  if (values.custodians !== undefined || values.threshold !== undefined) {
    await custodianKeys(values.out, bits, values.custodians, values.threshold, values['keep-full-key'] === true, out);
    return;
  }
  if (values['keep-full-key']) throw new UsageError('--keep-full-key is for a key split with --custodians');
  out.progress(`generating a ${bits}-bit Paillier key…`);
  const started = Date.now();
  const keys = await generatePaillierKeyPair(bits);
  writePrivateFile(values.out, JSON.stringify(privateKeyToJson(keys.privateKey)));
  const fingerprint = paillierFingerprint(keys);
  out.result({ file: values.out, bits, fingerprint, seconds: (Date.now() - started) / 1000 }, () =>
    [`wrote the private key to ${values.out} (mode 0600; it never leaves this machine)`, `public key fingerprint ${fingerprint}, ${bits} bits`].join('\n'),
  );
}
