/** Injection token of the `ServiceTokenVerifier` (receiving side). Use `@InjectServiceTokenVerifier()`. */
export const SERVICE_TOKEN_VERIFIER = Symbol.for('@rw3iss/auth-server-nest:verifier');

/** Metadata keys of the decorators. */
export const PUBLIC_KEY = '@rw3iss/auth-server-nest:public';
export const SCOPES_KEY = '@rw3iss/auth-server-nest:scopes';

/** Internal: the checked options with the verifier, manager and catalog they describe. */
export const RESOLVED_OPTIONS = Symbol.for('@rw3iss/auth-server-nest:resolved-options');
