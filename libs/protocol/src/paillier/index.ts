export * from './packing';
export * from './protocol';
