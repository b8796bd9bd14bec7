/** The seeded salary data generator lives with the demo that ships it; tests use the same one. */
export * from '../../apps/cli/src/demo-data';
