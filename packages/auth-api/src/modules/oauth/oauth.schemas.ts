import { z } from 'zod';
import { MAX_PARAM_LENGTH } from './client-auth.js';

/** RFC 6749 §3.1: a parameter sent without a value is treated as omitted. */
const optionalParam = (name: string, max: number) =>
  z
    .string({ error: `${name} must be given once` })
    .max(max, `${name} is too long`)
    .optional()
    .transform((v) => (v === '' ? undefined : v));

/**
 * The token request (RFC 6749 §4.4.2), form-encoded or JSON. Each parameter
 * must be one string: a repeated parameter arrives as an array and fails
 * here (§3.2: parameters MUST NOT be included more than once). Parameters
 * not listed are ignored (§3.2).
 */
export const tokenRequestSchema = z.object({
  grant_type: z.string({ error: 'grant_type is required (once)' }).min(1, 'grant_type is required').max(200, 'grant_type is too long'),
  client_id: optionalParam('client_id', MAX_PARAM_LENGTH),
  client_secret: optionalParam('client_secret', MAX_PARAM_LENGTH),
  scope: optionalParam('scope', 8000),
  audience: optionalParam('audience', 200),
});

export type TokenRequest = z.infer<typeof tokenRequestSchema>;

export const tokenResponseSchema = z.object({
  access_token: z.string(),
  token_type: z.literal('Bearer'),
  expires_in: z.number().int(),
  scope: z.string(),
});

export const oauthErrorSchema = z.object({
  error: z.string().describe('RFC 6749 §5.2 error code'),
  error_description: z.string(),
});

/** An RFC 6749 §5.2 error body for the OpenAPI document: these codes, answered when. */
export const oauthErrorFor = (codes: string[], when: string) =>
  z.object({ error: z.enum(codes).describe('RFC 6749 §5.2 error code'), error_description: z.string() }).describe(`${codes.map((c) => `\`${c}\``).join(', ')}: ${when}`);

/** The token endpoint's answers besides 200, for the OpenAPI document (RFC 6749 §5.2). Always `Cache-Control: no-store`. */
export const tokenErrorResponses = {
  400: oauthErrorFor(
    ['invalid_request', 'unsupported_grant_type', 'invalid_scope', 'invalid_target'],
    'a malformed or repeated parameter, both client authentication methods at once, a grant other than client_credentials, a scope the credential does not hold, or an audience it may not use',
  ),
  401: oauthErrorFor(['invalid_client'], 'unknown client, wrong secret, disabled or revoked credential, or no client authentication: one answer and one timing for all. Carries `WWW-Authenticate: Basic`'),
  413: oauthErrorFor(['invalid_request'], 'the body is over 8 KiB'),
  429: oauthErrorFor(['slow_down'], 'too many failed requests from this address or for this client_id; `Retry-After` says when to retry'),
  500: oauthErrorFor(['server_error'], 'a server fault'),
  503: oauthErrorFor(['temporarily_unavailable'], 'the database is unreachable (`Retry-After: 5`), or the server is busy checking other secrets (the bcrypt budget is full; `Retry-After` says when to retry)'),
};

export const metadataSchema = z.object({
  issuer: z.string(),
  token_endpoint: z.string(),
  jwks_uri: z.string(),
  grant_types_supported: z.array(z.string()),
  token_endpoint_auth_methods_supported: z.array(z.string()),
  revocation_endpoint: z.string(),
  revocation_endpoint_auth_methods_supported: z.array(z.string()),
  introspection_endpoint: z.string(),
  introspection_endpoint_auth_methods_supported: z.array(z.string()),
  response_types_supported: z.array(z.string()),
  service_documentation: z.string(),
});
