/**
 * libs/queue — queue and job names (never rename), payload contracts, Redis connections and ACLs
 * (DESIGN.md "Storage and services"). Shared by the coordinator and the participant worker.
 */
export * from './names';
export * from './payloads';
export * from './redis';
export * from './outage';
export * from './shutdown';
export * from './acl';
export * from './events';
export * from './outcome';
export * from './completions';
export * from './version';
export * from './task-refs';
