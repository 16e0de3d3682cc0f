export { ACCESS_TOKEN_TYP } from './claims.js';
export type { ServiceTokenClaims, UserTokenClaims } from './claims.js';
export { keyIdForSecret } from './keys.js';
