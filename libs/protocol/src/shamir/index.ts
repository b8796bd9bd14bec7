export * from './plan';
export * from './messages';
export * from './codec';
export * from './directory';
export * from './participant';
export * from './coordinator';
export * from './committee';
