export * from './random';
export * from './field';
export * from './fixed-point';
