/** Nest injection tokens for the coordinator's infrastructure. */
export const CONFIG = Symbol('CONFIG');
export const LOGGER = Symbol('LOGGER');
export const DATABASE = Symbol('DATABASE');
export const REDIS = Symbol('REDIS');
export const COORDINATOR_KEY = Symbol('COORDINATOR_KEY');
/** The coordinator's X25519 key pair: the one reader of the committee's sealed round-2 share sums. */
export const COORDINATOR_ENCRYPTION_KEY = Symbol('COORDINATOR_ENCRYPTION_KEY');
/** The coordinator's Redis and database outage reporters (health/dependencies.ts). */
export const DEPENDENCIES = Symbol('DEPENDENCIES');
