import { OAuthError } from '../../errors.js';

export type ClientAuthMethod = 'client_secret_basic' | 'client_secret_post';

export interface ClientCredentials {
  clientId: string;
  clientSecret: string;
  method: ClientAuthMethod;
}

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
export const MAX_PARAM_LENGTH = 200;

/** RFC 6749 Appendix B: `application/x-www-form-urlencoded` decoding of one value. */
function formDecode(value: string): string {
  try {
    return decodeURIComponent(value.replace(/\+/g, ' '));
  } catch {
    throw new OAuthError('invalid_request', 'The Basic authorization header is not form-urlencoded');
  }
}

/**
 * The client's credentials, from an HTTP Basic header (RFC 6749 §2.3.1, id and
 * secret form-urlencoded before base64) or from the body. Using both methods
 * is `invalid_request`; using none is `invalid_client`.
 */
export function readClientCredentials(authorization: string | undefined, body: { client_id?: string | undefined; client_secret?: string | undefined }): ClientCredentials {
  if (authorization !== undefined) {
    const match = /^Basic +(\S+) *$/i.exec(authorization);
    if (!match) throw new OAuthError('invalid_request', 'Only HTTP Basic client authentication is accepted in the Authorization header');
    if (body.client_secret !== undefined) throw new OAuthError('invalid_request', 'Use one client authentication method: Basic or client_secret in the body, not both');
    const encoded = match[1]!;
    if (!BASE64.test(encoded) || encoded.length % 4 !== 0) throw new OAuthError('invalid_request', 'The Basic authorization header is not valid base64');
    const decoded = Buffer.from(encoded, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) throw new OAuthError('invalid_request', 'The Basic authorization header must hold client_id:client_secret');
    const clientId = formDecode(decoded.slice(0, colon));
    const clientSecret = formDecode(decoded.slice(colon + 1));
    // The same bounds as the body parameters: nothing longer can be a real credential.
    if (clientId.length > MAX_PARAM_LENGTH || clientSecret.length > MAX_PARAM_LENGTH) throw new OAuthError('invalid_request', 'client_id or client_secret is too long');
    if (body.client_id !== undefined && body.client_id !== clientId) throw new OAuthError('invalid_request', 'client_id in the body differs from the Basic authorization header');
    return { clientId, clientSecret, method: 'client_secret_basic' };
  }
  if (body.client_id !== undefined && body.client_secret !== undefined) {
    return { clientId: body.client_id, clientSecret: body.client_secret, method: 'client_secret_post' };
  }
  throw new OAuthError('invalid_client', 'Client authentication is required (HTTP Basic or client_id and client_secret in the body)');
}
