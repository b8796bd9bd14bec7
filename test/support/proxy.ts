import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** What a proxy in front of the coordinator does to one upstream response body before the client gets it. */
export type Rewrite = (method: string, url: string, status: number, body: Buffer) => Buffer;

/**
 * An HTTP proxy in front of a coordinator, between it and a real CLI process: it records every request the CLI makes
 * (method, URL, headers, body), and may rewrite responses, which is how tests play a coordinator that serves the
 * CLI something other than what it stored (a forged aggregate, say) while everything else stays real.
 */
export async function coordinatorProxy(target: string, rewrite?: Rewrite): Promise<{ url: string; bodies: string[]; close(): Promise<void> }> {
  const bodies: string[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      bodies.push(`${req.method} ${req.url} ${JSON.stringify(req.headers)} ${body.toString('utf8')}`);
      const headers = Object.fromEntries(Object.entries(req.headers).filter(([k]) => !['host', 'content-length', 'connection'].includes(k))) as Record<string, string>;
      void fetch(`${target}${req.url}`, { method: req.method, headers, body: body.length ? body : undefined }).then(async (upstream) => {
        let out: Buffer = Buffer.from(await upstream.arrayBuffer());
        if (rewrite) out = rewrite(req.method ?? 'GET', req.url ?? '/', upstream.status, out);
        res.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? 'application/json' });
        res.end(out);
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, bodies, close: () => new Promise((resolve) => server.close(() => resolve())) };
}
