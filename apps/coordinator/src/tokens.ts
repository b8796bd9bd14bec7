/** Nest injection tokens for the coordinator's infrastructure. */
export const CONFIG = Symbol('CONFIG');
export const LOGGER = Symbol('LOGGER');
export const DATABASE = Symbol('DATABASE');
export const REDIS = Symbol('REDIS');
export const COORDINATOR_KEY = Symbol('COORDINATOR_KEY');
