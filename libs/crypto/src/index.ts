/**
 * libs/crypto — Confide's cryptographic core. No framework imports: plain functions over bigints inside,
 * base64url strings and bytes at the boundary, randomness injectable for tests.
 */
export * from './random';
export * from './encoding';
export * from './field';
export * from './fixed-point';
export * from './shamir';
export * from './keys';
export * from './envelope';
export * from './signature';
export { modPow, prepareModPow, prepareModulus, NATIVE_MODULUS_BITS, type PreparedModPow } from './modpow';
export * from './paillier';
export * from './threshold-paillier';
