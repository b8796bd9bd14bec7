// Internal helpers, not exported from the package.

/** Byte equality. Not constant-time: everything compared in this library (hashes, key ids) is public. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
