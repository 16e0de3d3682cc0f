import { z } from 'zod';
import { MAX_PARAM_LENGTH } from '../oauth/client-auth.js';

/** Largest page of the feed: a full page stays far below the SDK's 64 KiB response cap. */
export const FEED_MAX_PAGE = 200;

export const feedQuerySchema = z.strictObject({
  since: z
    .string()
    .min(1, 'must not be empty')
    .max(200, 'is not a cursor this server issued')
    .optional()
    .describe('The `cursor` of the previous answer: only entries added after it. Omitted: a full snapshot of the live entries'),
  limit: z.coerce
    .number()
    .int('must be an integer')
    .min(1, `must be between 1 and ${FEED_MAX_PAGE}`)
    .max(FEED_MAX_PAGE, `must be between 1 and ${FEED_MAX_PAGE}`)
    .optional()
    .describe(`Largest number of entries (clients + tokens) in one answer; default and maximum ${FEED_MAX_PAGE}. \`has_more\`: ask again with \`since=cursor\``),
});

export type FeedQuery = z.infer<typeof feedQuerySchema>;

export const feedResponseSchema = z.object({
  cursor: z.string().describe('Opaque: pass it as `since` on the next request'),
  has_more: z.boolean().describe('More entries are waiting: ask again at once with `since=cursor`'),
  clients: z
    .array(
      z.object({
        client_id: z.string(),
        revoked_at: z.string().describe('When the credential was revoked or disabled, or its token revocations were collapsed (ISO 8601)'),
        not_before: z
          .number()
          .int()
          .nullable()
          .describe('null: refuse every token of this client_id (revoked or disabled). A number (seconds since the epoch): refuse its tokens whose `iat` is below it (enabled again, or token revocations collapsed)'),
      }),
    )
    .describe('One entry per credential revoked, disabled, enabled again or with its token revocations collapsed within the last 24 h (the longest token lifetime); a later entry for a client_id replaces the earlier one'),
  tokens: z
    .array(z.object({ jti: z.string(), client_id: z.string(), exp: z.number().int().describe('The token\'s own expiry: forget the entry after it') }))
    .describe('Single tokens revoked (RFC 7009) and not yet expired'),
});

export type FeedResponse = z.infer<typeof feedResponseSchema>;

/** RFC 6749 §3.1: a parameter sent without a value is treated as omitted. */
const optionalParam = (name: string, max: number) =>
  z
    .string({ error: `${name} must be given once` })
    .max(max, `${name} is too long`)
    .optional()
    .transform((v) => (v === '' ? undefined : v));

/** RFC 7009 §2.1 / RFC 7662 §2.1: the token, a hint, and the client's credentials when sent in the body. */
export const tokenParamsSchema = z.object({
  token: z.string({ error: 'token is required (once)' }).min(1, 'token is required').max(8000, 'token is too long'),
  token_type_hint: optionalParam('token_type_hint', 200),
  client_id: optionalParam('client_id', MAX_PARAM_LENGTH),
  client_secret: optionalParam('client_secret', MAX_PARAM_LENGTH),
});

export const introspectionResponseSchema = z
  .object({
    active: z.boolean(),
    scope: z.string().optional(),
    client_id: z.string().optional(),
    token_type: z.literal('Bearer').optional(),
    exp: z.number().int().optional(),
    iat: z.number().int().optional(),
    nbf: z.number().int().optional(),
    sub: z.string().optional(),
    aud: z.union([z.string(), z.array(z.string())]).optional(),
    iss: z.string().optional(),
    jti: z.string().optional(),
  })
  .describe('RFC 7662 §2.2: `{active: false}` alone for any token that is not a live service token of this server; the claims of one that is');

export type IntrospectionResponse = z.infer<typeof introspectionResponseSchema>;
