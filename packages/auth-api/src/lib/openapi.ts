import { readFileSync } from 'node:fs';
import type { RouteOptions } from 'fastify';
import { z } from 'zod';
import type { ApiErrorCode } from '../errors.js';
import { STATUS_BY_CODE } from '../errors.js';

/** The server's version, as its package declares it: the OpenAPI document's `info.version`. */
export const PACKAGE_VERSION: string = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

const WHEN: Partial<Record<ApiErrorCode, string>> = {
  validation_failed: 'A malformed body, path or query parameter, or an unknown one; `details` names each ({path, message})',
  unauthorized: 'No bearer token, or an invalid or expired one (`WWW-Authenticate: Bearer`)',
  forbidden: 'A user token without the system_admin role, or a service token',
  not_found: 'No record with that id',
  conflict: 'The client_id is taken (never reused), or the credential is revoked and cannot change',
  secret_limit: 'The credential has two live secrets already: delete one or let it expire first',
  last_secret: "The credential's only live secret cannot be deleted: add a new one first",
  payload_too_large: 'The body is over 64 KiB',
  headers_too_large: 'The request headers are over the server\'s limit (Node\'s, 16 KiB by default)',
  request_timeout: 'The request did not arrive within the server\'s header and request timeouts',
  unsupported_media_type: 'The body is not application/json',
  rate_limited: 'Too many requests or failed sign-ins from this address; `Retry-After` says when to retry',
  service_unavailable: 'The database is unreachable; retry later',
  internal_error: 'A server fault; the body carries nothing more (the log has the request id)',
};

/**
 * The management API's error body, for the document. The error handler
 * serializes error bodies itself (plain JSON), so a code added later can never
 * be refused by a schema written before it.
 */
function errorBody(codes: ApiErrorCode[], when?: string) {
  return z
    .looseObject({
      error: z.enum(codes),
      message: z.string(),
      details: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
    })
    .describe(codes.map((code) => `\`${code}\`: ${when ?? WHEN[code] ?? 'see docs/API.md'}`).join('; '));
}

/**
 * Response schemas for `codes`, keyed by status, to spread into a route's
 * `response`. Codes of one status share its entry: `errorResponses('validation_failed', 'unknown_scope')`.
 * `[code, when]` replaces the generic description of `code`.
 */
export function errorResponses(...codes: (ApiErrorCode | [ApiErrorCode, string])[]): Record<number, z.ZodType> {
  const byStatus = new Map<number, { codes: ApiErrorCode[]; when: string[] }>();
  for (const entry of codes) {
    const [code, when] = typeof entry === 'string' ? [entry, undefined] : entry;
    const status = STATUS_BY_CODE[code];
    const group = byStatus.get(status) ?? { codes: [], when: [] };
    group.codes.push(code);
    group.when.push(`\`${code}\`: ${when ?? WHEN[code] ?? 'see docs/API.md'}`);
    byStatus.set(status, group);
  }
  const responses: Record<number, z.ZodType> = {};
  for (const [status, group] of byStatus) responses[status] = errorBody(group.codes).describe(group.when.join('; '));
  return responses;
}

/** Route `config` of a route that documents every error itself, in its own shape (the token endpoint: RFC 6749 §5.2). */
export const OWN_ERROR_DOCS = { ownErrorDocs: true } as const;

/**
 * onRoute hook: documents the errors every route can answer, from what the route
 * declares (a body, parameters, bearer security), so no route's OpenAPI entry
 * lists only its success. A route's own entries win. Routes whose errors are
 * not the management API's shape carry {@link OWN_ERROR_DOCS} in their config
 * and are left alone.
 */
export function documentErrorResponses(apiPrefix: string) {
  return (route: RouteOptions) => {
    const schema = route.schema as (Record<string, unknown> & { response?: Record<string, unknown>; hide?: boolean }) | undefined;
    if (!schema || schema.hide || route.url.startsWith('/docs')) return;
    const response = (schema.response ??= {});
    if ((route.config as { ownErrorDocs?: boolean } | undefined)?.ownErrorDocs || '4xx' in response || '4XX' in response) return;
    const codes: ApiErrorCode[] = ['internal_error'];
    if (route.url.startsWith(apiPrefix)) {
      codes.push('rate_limited', 'service_unavailable');
      if (schema.body || schema.params || schema.querystring) codes.push('validation_failed');
      if (schema.body) codes.push('payload_too_large', 'unsupported_media_type');
      if (schema.params) codes.push('not_found');
      const security = schema.security as Record<string, unknown>[] | undefined;
      if (security?.some((s) => 'bearerAuth' in s)) codes.push('unauthorized', 'forbidden');
    }
    for (const [status, body] of Object.entries(errorResponses(...codes))) response[status] ??= body;
  };
}
