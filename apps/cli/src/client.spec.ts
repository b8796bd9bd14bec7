import { createServer, type Server, type Socket } from 'node:net';
import { ApiCallError, CoordinatorClient } from './client';

/** A TCP server that accepts connections and never answers: a hung coordinator. */
function hungServer(): Promise<{ server: Server; url: string; sockets: Socket[] }> {
  const sockets: Socket[] = [];
  const server = createServer((socket) => sockets.push(socket));
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, sockets })));
}

describe('CoordinatorClient timeout', () => {
  it('gives up on a coordinator that accepts and never answers, within the timeout, saying so', async () => {
    const hung = await hungServer();
    try {
      const client = new CoordinatorClient(hung.url, 'tok', 300);
      const started = Date.now();
      const err = await client.get('/v1/queries/q0').catch((e: unknown) => e);
      const took = Date.now() - started;
      expect(err).toBeInstanceOf(ApiCallError);
      expect(err).toMatchObject({ status: 0, code: 'timeout', message: `no answer from the coordinator at ${hung.url} within 0.3 s (GET /v1/queries/q0); is it up? --timeout SECONDS waits longer` });
      expect(took).toBeGreaterThanOrEqual(250);
      expect(took).toBeLessThan(5000);
    } finally {
      for (const s of hung.sockets) s.destroy();
      hung.server.close();
    }
  });

  it('tells a refused connection apart from a timeout', async () => {
    const hung = await hungServer();
    const url = hung.url;
    await new Promise((r) => hung.server.close(r));
    const err = await new CoordinatorClient(url, 'tok', 2000).get('/v1/studies').catch((e: unknown) => e);
    expect(err).toMatchObject({ status: 0, code: 'unreachable' });
    expect((err as Error).message).toContain(`cannot reach the coordinator at ${url}`);
  });
});
