import { resolve } from 'node:path';
import { defineConfig } from 'vite';

// The operator and auditor console (issue 14): a static bundle in dist/console that the coordinator serves at
// /console. `npm run build` builds it after the Nest apps; nothing is fetched from elsewhere at run time.
export default defineConfig({
  root: import.meta.dirname,
  base: '/console/',
  logLevel: 'warn',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: resolve(import.meta.dirname, '..', '..', 'dist', 'console'),
    emptyOutDir: true,
    // No inline script or style anywhere: the coordinator serves the console under a CSP of 'self' only.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    target: 'es2022',
  },
});
