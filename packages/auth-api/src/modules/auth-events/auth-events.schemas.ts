import { z } from 'zod';
import { isoDate, text } from '../audit/audit.schemas.js';

/** `GET /admin/auth-events` query: every filter optional; unknown parameters refused. */
export const authEventsQuerySchema = z
  .object({
    client_id: text(100).optional().describe('Only this client_id (as sent)'),
    address: text(100).optional().describe('Only this address (IPv4, or an IPv6 /64 as recorded)'),
    outcome: text(50).optional().describe('Only this outcome'),
    since: isoDate('since').optional().describe('From this minute (ISO 8601)'),
    until: isoDate('until').optional().describe('Before this time (ISO 8601)'),
    limit: z.coerce.number().int().min(1).max(1000).default(100).describe('At most this many rows (1-1000, default 100)'),
  })
  .strict();

export const authEventSchema = z.object({
  minute: z.string().describe('Start of the minute, ISO 8601'),
  client_id: z.string().describe('As sent (cut to 100 characters); `*` for counts past the per-minute bound (AUTH_EVENTS_MAX_KEYS_PER_MINUTE), which keep their address'),
  address: z.string().describe('Client address: IPv4, or an IPv6 /64; `*` only past the per-minute bound of client_ids and again of addresses'),
  outcome: z.string().describe('`granted`, an RFC 6749 error code (`invalid_client`, `invalid_scope`, …), `throttled` or `shed`'),
  count: z.number().int(),
});

export const authEventsResponseSchema = z.object({ events: z.array(authEventSchema) });
