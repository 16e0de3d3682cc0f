/**
 * Claims of a service token: the JWT that `POST /oauth/token` issues for the
 * client_credentials grant (RFC 6749 §4.4), shaped as an RFC 9068 access token.
 *
 * Header: `{ alg, typ: "at+jwt", kid }`: alg HS256 (shared secret), ES256 or EdDSA
 * (the server's private key; SERVICE_TOKEN_ALG).
 */
export interface ServiceTokenClaims {
  iss: string;
  /** The credential's client_id. */
  sub: string;
  aud: string | string[];
  iat: number;
  nbf: number;
  exp: number;
  jti: string;
  token_type: 'service';
  client_id: string;
  service_name: string;
  /** Granted scopes, as an array. */
  scopes: string[];
  /** Granted scopes, space-delimited (RFC 9068 §2.2.3). */
  scope: string;
}

/** The `typ` header every access token carries (RFC 9068 §2.1). */
export const ACCESS_TOKEN_TYP = 'at+jwt';
