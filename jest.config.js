// Test tiers (STYLE.md "Tests"):
//   unit         pure libs, no services, no processes
//   integration  several modules together over real files, and real Redis/PostgreSQL where used
//   e2e          the commands and apps as a user runs them, as child processes of the built code
//   shared       the real data set and published vectors under ../shared (CONFIDE_SHARED_DIR), run by .ci/run
//
// Nest 12 ships as ES modules that Node 20.19+ loads from CommonJS (require(esm)) but Jest's module loader
// does not before Node 24.9, so Nest code is exercised through the built apps in the e2e tier, and the
// logic worth unit-testing lives in plain libraries (STYLE.md "Thin adapters, plain cores").
const moduleNameMapper = {
  '^@confide/(crypto|protocol|ledger|queue)$': '<rootDir>/libs/$1/src',
};
const project = (displayName, testMatch) => ({
  displayName,
  rootDir: __dirname,
  testEnvironment: 'node',
  testMatch,
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: '<rootDir>/tsconfig.spec.json' }] },
  moduleNameMapper,
});

module.exports = {
  projects: [
    project('unit', ['<rootDir>/libs/**/*.spec.ts', '<rootDir>/apps/**/*.spec.ts']),
    project('integration', ['<rootDir>/test/integration/**/*.int-spec.ts']),
    project('e2e', ['<rootDir>/test/e2e/**/*.e2e-spec.ts']),
    project('shared', ['<rootDir>/test/shared/**/*.shared-spec.ts']),
  ],
};
