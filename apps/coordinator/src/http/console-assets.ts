import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { NestExpressApplication } from '@nestjs/platform-express';
import type { NextFunction, Request, Response } from 'express';

/**
 * The browser console's headers: scripts, styles and requests from this origin only, nothing inline, no framing,
 * no referrer. The console holds an API key in memory; a script injected from anywhere else could read it.
 */
export const CONSOLE_CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/**
 * Where `npm run build` put the console (dist/console, built by Vite from apps/console): CONFIDE_CONSOLE_DIR when
 * set, else beside the coordinator's own build (dist/apps/coordinator/apps/coordinator/src/http → dist/console).
 */
export function consoleDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.CONFIDE_CONSOLE_DIR ?? resolve(__dirname, '..', '..', '..', '..', '..', '..', 'console');
}

/**
 * Serves the console's static files at /console (public, like /docs: every request it makes carries the user's key).
 * Hashed assets are cached for a year, the page itself never. A coordinator built without the console says so.
 */
export function serveConsole(app: NestExpressApplication, dir = consoleDir()): void {
  const security = (res: Response): void => {
    res.setHeader('Content-Security-Policy', CONSOLE_CSP);
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('X-Frame-Options', 'DENY');
    res.setHeader('Referrer-Policy', 'no-referrer');
  };
  if (existsSync(join(dir, 'index.html'))) {
    app.useStaticAssets(dir, {
      prefix: '/console/',
      index: 'index.html',
      setHeaders: (res: Response, path: string) => {
        security(res);
        res.setHeader('Cache-Control', path.includes(`${join(dir, 'assets')}`) ? 'public, max-age=31536000, immutable' : 'no-cache');
      },
    });
  }
  app.use('/console', (req: Request, res: Response, next: NextFunction) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return next();
    security(res);
    res.status(404).type('text/plain').send(existsSync(join(dir, 'index.html')) ? 'not found\n' : `the console is not built (no ${join(dir, 'index.html')}): run npm run build\n`);
  });
}
