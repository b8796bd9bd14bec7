/** Output privacy (DESIGN.md "Trust model"): settings and tightening, the DP budget, DP noise, small-cell suppression. */
export * from './settings';
export * from './budget';
export * from './sampler';
export * from './dp';
export * from './suppression';
