import { z } from 'zod';

/**
 * A date-time filter: what `Date.parse` reads, within years 1–9999. Outside them (year 0, BC, 20000,
 * ±275760) the database refuses the value: that must be this 400, not a 500.
 */
export const isoDate = (name: string) =>
  z
    .string()
    .max(100, `${name} must be an ISO 8601 date-time`)
    .refine((v) => {
      const year = new Date(Date.parse(v)).getUTCFullYear();
      return year >= 1 && year <= 9999;
    }, `${name} must be an ISO 8601 date-time between the years 1 and 9999`)
    .transform((v) => new Date(v));

/** An exact-match filter: PostgreSQL text holds no NUL, so one is a 400 here rather than a database error. */
export const text = (max: number) =>
  z
    .string()
    .min(1, 'must not be empty')
    .max(max, `must be at most ${max} characters`)
    .refine((v) => !v.includes('\u0000'), 'must not contain NUL');

/** Largest page of `GET /admin/audit-events`. */
export const MAX_AUDIT_PAGE = 500;

/**
 * `GET /admin/audit-events` query: every filter optional and exact; unknown
 * parameters refused. `since`/`until`/`limit` as `GET /admin/auth-events`.
 */
export const auditEventsQuerySchema = z.strictObject({
  actor: text(320).optional().describe("Only entries by this actor: an admin's email, `cli` or `server`, exactly as recorded"),
  action: text(100).optional().describe('Only this action, e.g. `m2m_client.create` (docs/API.md lists them)'),
  target_type: z.enum(['m2m_client', 'user', 'signing_key', 'permission_catalog'], 'must be one of m2m_client, user, signing_key, permission_catalog').optional().describe('Only entries about this kind of target'),
  target: text(200).optional().describe("Only entries about this target: a credential's or user's record id, a key's kid, a catalog's service name"),
  since: isoDate('since').optional().describe('From this time on (ISO 8601)'),
  until: isoDate('until').optional().describe('Before this time (ISO 8601)'),
  limit: z.coerce
    .number('must be a whole number')
    .int(`must be a whole number from 1 to ${MAX_AUDIT_PAGE}`)
    .min(1, `must be a whole number from 1 to ${MAX_AUDIT_PAGE}`)
    .max(MAX_AUDIT_PAGE, `must be a whole number from 1 to ${MAX_AUDIT_PAGE}`)
    .default(100)
    .describe(`Page size, 1–${MAX_AUDIT_PAGE} (default 100)`),
  // Ids are bigserials; 18 digits stay inside bigint, so a made-up cursor is a 400, never a database error.
  cursor: z.string().regex(/^[1-9][0-9]{0,17}$/, 'is not a cursor this server issued').optional().describe('`next_cursor` of the previous page'),
});

export const auditEventSchema = z.object({
  id: z.string().describe('Increasing with time; stable'),
  at: z.string().describe('When, ISO 8601'),
  actor: z.string().describe("Who: an admin's email (for a failed sign-in, the email as typed), `cli` or `server`"),
  actor_id: z.string().nullable().describe("The actor's user id, when the actor is a known user"),
  action: z.string().describe('What, e.g. `m2m_client.create`, `m2m_client.update`, `m2m_client.revoke`, `login.failure`'),
  target_type: z.string().nullable(),
  target_id: z.string().nullable(),
  ip: z.string().nullable().describe("The actor's address"),
  details: z.record(z.string(), z.unknown()).nullable().describe('What changed (never a secret)'),
});

export const auditEventsResponseSchema = z.object({
  events: z.array(auditEventSchema),
  next_cursor: z.string().nullable().describe('Pass as `cursor` for the next (older) page; `null` on the last page'),
});

export type AuditEventsQuery = z.output<typeof auditEventsQuerySchema>;
