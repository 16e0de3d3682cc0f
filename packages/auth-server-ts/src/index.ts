export { ACCESS_TOKEN_TYP } from './claims.js';
export type { ServiceTokenClaims } from './claims.js';
export { keyIdForSecret } from './keys.js';
export type { Clock } from './clock.js';
export { AuthServerError, TokenRequestError, TokenVerificationError } from './errors.js';
export type {
  AuthServerErrorCode,
  TokenRequestErrorCode,
  TokenVerificationErrorCode,
  TokenVerificationReason,
} from './errors.js';
export { ServiceTokenManager } from './token-manager.js';
export type {
  ClientAuthMethod,
  GetTokenOptions,
  RefreshOptions,
  RetryOptions,
  ServiceFetchInit,
  ServiceTokenEvent,
  ServiceTokenManagerOptions,
} from './token-manager.js';
export { createServiceTokenVerifier } from './verifier.js';
export type {
  FeedTokenSource,
  PublicJwk,
  RevocationEvent,
  RevocationOptions,
  ScopeRequirement,
  Secret,
  ServicePrincipal,
  ServiceTokenAlgorithm,
  ServiceTokenVerifier,
  ServiceTokenVerifierOptions,
} from './verifier.js';
export { bearerErrorResponse } from './lib/guard.js';
export type { GuardResponse, RefusalListener } from './lib/guard.js';
