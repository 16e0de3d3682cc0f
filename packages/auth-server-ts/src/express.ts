import type { IncomingMessage, ServerResponse } from 'node:http';
import { AuthServerError } from './errors.js';
import { authenticate, notifyRefused, type RefusalListener, toRequirement } from './lib/guard.js';
import type { ScopeRequirement, ServicePrincipal, ServiceTokenVerifier } from './verifier.js';

declare global {
  // Express merges its Request type from this global namespace (as passport does).
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      /** The verified service; set by `requireServiceToken`. */
      servicePrincipal?: ServicePrincipal;
    }
  }
}

/** Express/Connect middleware signature; uses only Node's `http` types so it needs neither installed. */
export type ServiceTokenMiddleware = (
  req: IncomingMessage,
  res: ServerResponse,
  next: (err?: unknown) => void,
) => void;

/** The verifier, and a listener told why each request was refused (for logs; the response never says). */
export interface ExpressGuardOptions {
  verifier: ServiceTokenVerifier;
  onRefused?: RefusalListener<IncomingMessage>;
}

/**
 * Express (4 and 5) or Connect middleware: verifies the `Authorization: Bearer`
 * service token and the scopes, sets `req.servicePrincipal`, or answers
 * 401/403 per RFC 6750 §3 with a `WWW-Authenticate` header and a JSON body.
 *
 * @example
 * app.post('/publish', requireServiceToken(verifier, 'gsku:publish'), (req, res) => {
 *   res.json({ by: req.servicePrincipal!.clientId });
 * });
 * // one of several scopes:
 * requireServiceToken(verifier, { scopes: ['gsku:publish', 'gsku:admin'], mode: 'any' });
 * // see why tokens are refused (err.reason), without telling the caller:
 * const guarded = { verifier, onRefused: (err, req) => logger.info({ code: err.code, reason: err.reason, path: req.url }, 'service token refused') };
 * app.post('/publish', requireServiceToken(guarded, 'gsku:publish'), handler);
 */
export function requireServiceToken(verifier: ServiceTokenVerifier | ExpressGuardOptions, ...scopes: string[]): ServiceTokenMiddleware;
export function requireServiceToken(verifier: ServiceTokenVerifier | ExpressGuardOptions, requirement: ScopeRequirement): ServiceTokenMiddleware;
export function requireServiceToken(
  verifierOrOptions: ServiceTokenVerifier | ExpressGuardOptions,
  ...args: Array<string | ScopeRequirement>
): ServiceTokenMiddleware {
  const options: Partial<ExpressGuardOptions> =
    verifierOrOptions !== null && typeof verifierOrOptions === 'object' && 'verifier' in verifierOrOptions
      ? verifierOrOptions
      : { verifier: verifierOrOptions as ServiceTokenVerifier };
  const { verifier, onRefused } = options;
  if (typeof verifier?.verify !== 'function') {
    throw new AuthServerError('invalid_options', 'requireServiceToken: the first argument must be a ServiceTokenVerifier or { verifier, onRefused? }');
  }
  if (onRefused !== undefined && typeof onRefused !== 'function') {
    throw new AuthServerError('invalid_options', 'requireServiceToken: onRefused must be a function');
  }
  const requirement = toRequirement(args, 'requireServiceToken');
  return function serviceTokenGuard(req, res, next) {
    authenticate(verifier, req.headers.authorization, requirement).then((outcome) => {
      if ('principal' in outcome) {
        (req as IncomingMessage & { servicePrincipal?: ServicePrincipal }).servicePrincipal = outcome.principal;
        next();
        return;
      }
      notifyRefused(onRefused, outcome.error, req);
      const { status, headers, body } = outcome.response;
      res.writeHead(status, headers).end(JSON.stringify(body));
    }, next);
  };
}
