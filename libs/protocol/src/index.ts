/** libs/protocol: study schemas, CSV loading, query compilation, local aggregation and the protocols. */
export {};
