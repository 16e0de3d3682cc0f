import { z } from 'zod';

/**
 * The token request (RFC 6749 §4.4.2), form-encoded or JSON. Each parameter
 * must be one string: a repeated parameter arrives as an array and fails
 * here (§3.2: parameters MUST NOT be included more than once). Parameters
 * not listed are ignored (§3.2).
 */
export const tokenRequestSchema = z.object({
  grant_type: z.string({ error: 'grant_type is required (once)' }).max(200, 'grant_type is too long'),
  client_id: z.string({ error: 'client_id must be given once' }).max(200, 'client_id is too long').optional(),
  client_secret: z.string({ error: 'client_secret must be given once' }).max(200, 'client_secret is too long').optional(),
  scope: z.string({ error: 'scope must be given once' }).max(8000, 'scope is too long').optional(),
  audience: z.string({ error: 'audience must be given once' }).max(200, 'audience is too long').optional(),
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

export const metadataSchema = z.object({
  issuer: z.string(),
  token_endpoint: z.string(),
  grant_types_supported: z.array(z.string()),
  token_endpoint_auth_methods_supported: z.array(z.string()),
  response_types_supported: z.array(z.string()),
  scopes_supported: z.array(z.string()).optional(),
  service_documentation: z.string(),
  code_challenge_methods_supported: z.array(z.string()),
});
