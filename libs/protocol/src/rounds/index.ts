export * from './machine';
export * from './specs';
