/**
 * libs/queue — queue and job names, payload types, Redis connections and ACLs (DESIGN.md "Storage and
 * services"). Empty until the services issue; the folder exists so the monorepo layout already covers it.
 */
export {};
