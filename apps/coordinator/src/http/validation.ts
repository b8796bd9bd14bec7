import { BadRequestException, StandardSchemaValidationPipe } from '@nestjs/common';

/**
 * Global validation of bodies, queries and params declared with `{ schema }` (Nest 12 Standard Schema):
 * every schema is strict (unknown fields rejected), and a failure is a 400 whose message names each field.
 */
export function validationPipe(): StandardSchemaValidationPipe {
  return new StandardSchemaValidationPipe({
    exceptionFactory: (issues) =>
      new BadRequestException(
        issues
          .slice(0, 10)
          .map((i) => {
            const path = (i.path ?? []).map((p) => (typeof p === 'object' ? String(p.key) : String(p))).join('.');
            return path ? `${path}: ${i.message}` : i.message;
          })
          .join('; '),
      ),
  });
}
