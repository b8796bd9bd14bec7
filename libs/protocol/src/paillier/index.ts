export * from './packing';
export * from './protocol';
export * from './researcher';
export * from './key-holder';
export * from './noise';
export * from './custodians';
