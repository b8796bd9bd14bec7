import { randomUUID } from 'node:crypto';
import { Catch, HttpException, HttpStatus, Inject, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import type { Request, Response } from 'express';
import { ProtocolError, QueryError, SchemaError } from '@confide/protocol';
import { isRedisOutage } from '@confide/queue';
import { isDatabaseOutage } from '../db/database';
import { ConflictError } from '../db/repositories';
import { QueryRefusal, type QueryRefusalCode } from '../orchestration/errors';
import { LeaseLostError } from '../orchestration/leases';
import type { Dependencies } from '../health/dependencies';
import { DEPENDENCIES, LOGGER } from '../tokens';
import type { Logger } from '../logging';

/** The stable JSON error body of every failed request (STYLE.md "Config, errors, logs"). */
export interface ErrorBody {
  readonly error: string;
  readonly message: string;
  readonly requestId: string;
}

/** Seconds a client is told to wait (Retry-After) before retrying a request refused during an outage. */
export const RETRY_AFTER_SECONDS = 5;

/** A domain error a service throws to answer with a given status and code. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** The status of each way the orchestrator refuses a request about a query. */
const QUERY_REFUSAL_STATUS: Record<QueryRefusalCode, number> = {
  not_found: 404,
  forbidden: 403,
  not_paillier: 409,
  not_custodial: 409,
  custodial: 409,
  not_ready: 409,
  not_awaiting_nonce: 409,
  invalid_partial: 422,
  invalid_decryption: 422,
};

function describeHttpException(e: HttpException): string {
  const body = e.getResponse();
  if (typeof body === 'string') return body;
  const message = (body as { message?: unknown }).message;
  if (Array.isArray(message)) return message.map(String).join('; ');
  return typeof message === 'string' ? message : e.message;
}

/**
 * One global exception filter: maps known errors to 4xx with a message that names the problem, and
 * anything else to 500 with a generic message — the real error and stack go to the log only.
 */
@Catch()
export class ErrorFilter implements ExceptionFilter {
  constructor(
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(DEPENDENCIES) private readonly dependencies: Dependencies,
  ) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    const ctx = host.switchToHttp();
    const req = ctx.getRequest<Request & { id?: string }>();
    const res = ctx.getResponse<Response>();
    const requestId = req.id ?? randomUUID();
    let status: number = HttpStatus.INTERNAL_SERVER_ERROR;
    let error = 'internal';
    let message = 'internal error';
    if (exception instanceof ApiError) {
      ({ status, code: error, message } = exception);
    } else if (exception instanceof QueryRefusal) {
      status = QUERY_REFUSAL_STATUS[exception.code];
      error = exception.code;
      message = exception.message;
    } else if (exception instanceof HttpException) {
      status = exception.getStatus();
      error = status === 400 ? 'bad_request' : status === 401 ? 'unauthenticated' : status === 403 ? 'forbidden' : status === 404 ? 'not_found' : 'http_error';
      message = describeHttpException(exception);
    } else if (exception instanceof QueryError) {
      status = 400;
      error = 'invalid_query';
      message = exception.message;
    } else if (exception instanceof SchemaError) {
      status = 400;
      error = 'invalid_study';
      message = exception.message;
    } else if (exception instanceof ProtocolError) {
      status = exception.code === 'MIN_PARTICIPANTS' || exception.code === 'OVERFLOW' ? 400 : 409;
      error = exception.code.toLowerCase();
      message = exception.message;
    } else if (isRedisOutage(exception) && isDatabaseOutage(exception)) {
      // A bare socket error (connect ECONNREFUSED, say) does not tell which server refused.
      status = 503;
      error = 'unavailable';
      message = 'the database or the queue (Redis) is unavailable; try again shortly';
    } else if (isRedisOutage(exception)) {
      status = 503;
      error = 'unavailable';
      message = 'the queue (Redis) is unavailable; try again shortly';
    } else if (isDatabaseOutage(exception)) {
      status = 503;
      error = 'unavailable';
      message = 'the database is unavailable; try again shortly';
    } else if (exception instanceof LeaseLostError) {
      // Another replica took the query over while this one served the request: nothing was committed, and the
      // request is safe to repeat (each one takes the lease).
      status = 503;
      error = 'handed_over';
      message = 'another coordinator replica took this query over meanwhile; try again';
    } else if (exception instanceof ConflictError) {
      status = 409;
      error = 'conflict';
      message = (exception as Error).message;
    }
    let details: Record<string, unknown> = {};
    if (exception instanceof HttpException && typeof exception.getResponse() === 'object') {
      // Fields a route adds to its error body (/health names what is down) are kept; Nest's own are not repeated.
      const { message: _m, error: _e, statusCode: _s, requestId: _r, ...rest } = exception.getResponse() as Record<string, unknown>;
      details = rest;
    }
    if (status === 503) {
      // An outage, not a bug, and not news per request: its dependency's reporter logs one line per outage
      // (health/dependencies.ts); each refusal is at debug. The client is told when to retry.
      // Redis's outages are seen on its connections' own events; the database's here too, as it has no such events.
      if (error === 'unavailable' && !isRedisOutage(exception)) this.dependencies.databaseError(exception);
      this.logger.debug({ requestId, path: req.path, error, reason: message }, 'request refused: unavailable');
    } else if (status >= 500) {
      this.logger.error({ err: exception, requestId, path: req.path }, 'request failed');
    } else {
      this.logger.info({ requestId, path: req.path, status, error }, 'request refused');
    }
    const body: ErrorBody = { ...details, error, message, requestId };
    // An outage is temporary: say when to try again (RFC 9110 §10.2.3).
    if (status === 503) res.setHeader('Retry-After', String(RETRY_AFTER_SECONDS));
    res.status(status).json(body);
  }
}
