import { sql, type RawBuilder } from 'kysely';
import { FAILURE_KINDS } from '@confide/protocol';

/**
 * The kind of a failed query's `failure_reason` as an SQL expression (libs/protocol FAILURE_KINDS: a phrase only that
 * kind's messages hold; `other` when none matches), so the database groups and counts by kind. One expression for
 * /metrics (confide_query_failures_total) and GET /v1/status/health, so both count the same kinds. It names the
 * column unqualified: use it where `failure_reason` is the queries table's only column of that name.
 */
export function failureKindSql(): RawBuilder<string> {
  return sql<string>`case ${sql.join(
    FAILURE_KINDS.map((k) => sql`when failure_reason like ${sql.lit(`%${k.phrase}%`)} then ${sql.lit(k.kind)}`),
    sql` `,
  )} else 'other' end`;
}
