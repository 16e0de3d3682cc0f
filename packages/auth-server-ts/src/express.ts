import type { IncomingMessage, ServerResponse } from 'node:http';
import { AuthServerError } from './errors.js';
import { authenticate, toRequirement } from './lib/guard.js';
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
 */
export function requireServiceToken(verifier: ServiceTokenVerifier, ...scopes: string[]): ServiceTokenMiddleware;
export function requireServiceToken(verifier: ServiceTokenVerifier, requirement: ScopeRequirement): ServiceTokenMiddleware;
export function requireServiceToken(
  verifier: ServiceTokenVerifier,
  ...args: Array<string | ScopeRequirement>
): ServiceTokenMiddleware {
  if (typeof verifier?.verify !== 'function') {
    throw new AuthServerError('invalid_options', 'requireServiceToken: the first argument must be a ServiceTokenVerifier');
  }
  const requirement = toRequirement(args, 'requireServiceToken');
  return function serviceTokenGuard(req, res, next) {
    authenticate(verifier, req.headers.authorization, requirement).then((outcome) => {
      if ('principal' in outcome) {
        (req as IncomingMessage & { servicePrincipal?: ServicePrincipal }).servicePrincipal = outcome.principal;
        next();
        return;
      }
      const { status, headers, body } = outcome.response;
      res.writeHead(status, headers).end(JSON.stringify(body));
    }, next);
  };
}
