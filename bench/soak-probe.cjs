'use strict';
/**
 * BENCH-ONLY preload (`node -r bench/soak-probe.cjs …`) that bench/soak.bench.ts puts in front of the coordinator and
 * participant processes it starts. It changes nothing they do; it only watches. Every CONFIDE_PROBE_MS (default 1000)
 * it appends one JSON line to CONFIDE_PROBE_DIR/<pid>.jsonl with the time, this process's memory (rss, heapUsed,
 * heapTotal, external, arrayBuffers) and its CPU time so far. With CONFIDE_PROBE_COORDINATOR=1 the line also carries
 * cumulative counters, taken inside the coordinator:
 *
 * - `sql`: calls and wall time (µs) inside better-sqlite3's synchronous calls, by statement verb and first table
 *   (`select ledger_nodes`, `commit`), and `(prepare)` for statement preparation. Wall time, so a busy machine
 *   inflates it; process.cpuUsage() would not be, but it costs a getrusage over every thread (~100 µs) and doubled
 *   the coordinator's SQLite time when tried.
 * - `append`: calls and wall time of EventLog.append (CONFIDE_PROBE_EVENTLOG names the built
 *   apps/coordinator/src/db/repositories.js), which includes waiting for the one SQLite connection.
 * - `http`: requests, response bytes and wall time (request to finish) by method and route (ids replaced by `:id`).
 *
 * Only SQL verbs and table names, routes and counts leave the process: never a parameter, a row, a body or a key. A
 * process this one forks (the coordinator's aggregation worker) inherits the preload and writes its own file.
 */
const { appendFileSync, mkdirSync } = require('node:fs');
const { join } = require('node:path');

const dir = process.env.CONFIDE_PROBE_DIR;
if (dir) {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${process.pid}.jsonl`);
  const every = Number(process.env.CONFIDE_PROBE_MS ?? 1000);
  const now = () => performance.now();
  /** A tally: key -> [count, total ms, total bytes]. */
  const tally = () => {
    const map = new Map();
    return {
      map,
      add(key, ms, bytes = 0) {
        const entry = map.get(key);
        if (entry) {
          entry[0] += 1;
          entry[1] += ms;
          entry[2] += bytes;
        } else map.set(key, [1, ms, bytes]);
      },
    };
  };
  const sql = tally();
  const http = tally();
  const append = tally();

  if (process.env.CONFIDE_PROBE_COORDINATOR === '1') {
    const Database = require('better-sqlite3');
    /** "insert events", "select ledger_nodes", "commit": the verb and the first table the statement names. */
    const labelOf = (source) => {
      const text = String(source).trim().toLowerCase();
      const verb = text.split(/\s+/, 1)[0];
      const table = /\b(?:from|into|update)\s+"?([a-z_]+)"?/.exec(text);
      return table ? `${verb} ${table[1]}` : verb;
    };
    const labels = new WeakMap();
    const prepare = Database.prototype.prepare;
    Database.prototype.prepare = function timedPrepare(...args) {
      const t = now();
      const statement = prepare.apply(this, args);
      sql.add('(prepare)', now() - t);
      labels.set(statement, labelOf(args[0]));
      return statement;
    };
    const scratch = new Database(':memory:');
    const Statement = scratch.prepare('select 1').constructor;
    scratch.close();
    for (const method of ['run', 'all', 'get', 'iterate']) {
      const original = Statement.prototype[method];
      Statement.prototype[method] = function timed(...args) {
        const t = now();
        try {
          return original.apply(this, args);
        } finally {
          sql.add(labels.get(this) ?? labelOf(this.source), now() - t);
        }
      };
    }

    const repositories = process.env.CONFIDE_PROBE_EVENTLOG;
    if (repositories) {
      const { EventLog } = require(repositories);
      const original = EventLog.prototype.append;
      EventLog.prototype.append = async function timedAppend(...args) {
        const t = now();
        try {
          return await original.apply(this, args);
        } finally {
          append.add('append', now() - t);
        }
      };
    }

    const { Server } = require('node:http');
    const routeOf = (method, url) =>
      `${method} ${String(url)
        .split('?', 1)[0]
        .replace(/\/q[0-9a-f]{24}\b/g, '/:id')
        .replace(/\/[0-9a-f-]{16,}\b/g, '/:id')}`;
    const emit = Server.prototype.emit;
    Server.prototype.emit = function probedEmit(event, req, res) {
      if (event === 'request') {
        const t = now();
        const route = routeOf(req.method, req.url);
        let bytes = 0;
        const count = (chunk) => {
          if (chunk && typeof chunk !== 'function') bytes += typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
        };
        const write = res.write;
        const end = res.end;
        res.write = function countedWrite(chunk, ...rest) {
          count(chunk);
          return write.call(this, chunk, ...rest);
        };
        res.end = function countedEnd(chunk, ...rest) {
          count(chunk);
          return end.call(this, chunk, ...rest);
        };
        res.once('finish', () => http.add(route, now() - t, bytes));
      }
      return emit.apply(this, arguments);
    };
  }

  const sample = () => {
    const m = process.memoryUsage();
    const cpu = process.cpuUsage();
    const line = { t: Date.now(), rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers, cpuUser: cpu.user, cpuSystem: cpu.system };
    if (sql.map.size) line.sql = Object.fromEntries(sql.map);
    if (http.map.size) line.http = Object.fromEntries(http.map);
    if (append.map.size) line.append = Object.fromEntries(append.map);
    try {
      appendFileSync(file, `${JSON.stringify(line)}\n`);
    } catch {
      // The bench removed its directory: it is done with this process.
    }
  };
  sample();
  setInterval(sample, every).unref();
  process.on('exit', sample);
}
