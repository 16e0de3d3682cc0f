import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import { isUniqueViolation } from '../../db/errors.js';
import type { Database, UserRow } from '../../db/schema.js';
import { ApiError } from '../../errors.js';
import type { PasswordHasher } from '../../lib/password.js';
import { networkKey, type FailureThrottle } from '../../lib/throttle.js';
import { BudgetExceededError, type WorkBudget } from '../../lib/work-budget.js';
import type { TokenIssuer } from '../../lib/tokens.js';
import { type Actor, insertAuditEntry } from '../audit/audit.repository.js';
import { type PublicUser, SYSTEM_ADMIN } from './admin-auth.schemas.js';
import { findUserByEmail, findUserById, insertUser } from './users.repository.js';

export function toPublicUser(row: UserRow): PublicUser {
  return { id: row.id, email: row.email, roles: row.roles, created_at: row.created_at.toISOString() };
}

export interface AdminAuthDeps {
  db: Kysely<Database>;
  hasher: PasswordHasher;
  /** Bounds bcrypt work across the server; a shed sign-in answers 503. */
  budget: WorkBudget;
  tokens: TokenIssuer;
  /** Failed logins, per (email, IP) and per IP. */
  throttle: FailureThrottle;
  userTokenTtlSec: number;
}

export function createAdminAuthService({ db, hasher, budget, tokens, throttle, userTokenTtlSec }: AdminAuthDeps) {
  return {
    /**
     * Email + password → a user token. Unknown email and wrong password give
     * the same error after the same bcrypt work.
     */
    async login(email: string, password: string, ip: string) {
      // Counted as a failure from the start, taken back on success: parallel guesses cannot outrun the limit.
      const attempt = await throttle.begin(email, ip);
      if (attempt.retryAfterSec !== undefined) {
        throw new ApiError('rate_limited', 'Too many failed sign-in attempts; retry later', undefined, { retryAfterSec: attempt.retryAfterSec });
      }
      let user: UserRow | undefined;
      let ok: boolean;
      try {
        // The read inside the budget too, so a flood's reads are bounded by its concurrency.
        ({ user, ok } = await budget.run(networkKey(ip), async () => {
          const found = await findUserByEmail(db, email);
          return { user: found, ok: found ? await hasher.verify(password, found.password_hash) : (await hasher.burn(password), false) };
        }));
      } catch (err) {
        if (!(err instanceof BudgetExceededError)) throw err;
        // Never checked: not a failure of this user (its key is dropped), but it counts against the address.
        await attempt.abandoned();
        throw new ApiError('service_unavailable', 'The server is busy; retry later', undefined, { retryAfterSec: err.retryAfterSec, cause: err });
      }
      if (!user || !ok) {
        await insertAuditEntry(db, { id: user?.id ?? null, label: email, ip }, { action: 'login.failure', targetType: 'user', ...(user ? { targetId: user.id } : {}) });
        throw new ApiError('unauthorized', 'Invalid email or password');
      }
      await attempt.succeeded();
      await insertAuditEntry(db, { id: user.id, label: user.email, ip }, { action: 'login.success', targetType: 'user', targetId: user.id });
      const { token } = tokens.userToken({ sub: user.id, email: user.email, roles: user.roles }, userTokenTtlSec);
      return {
        user: toPublicUser(user),
        tokens: { access_token: token, token_type: 'Bearer' as const, expires_in: userTokenTtlSec },
        roles: user.roles,
      };
    },

    findUser: (id: string) => findUserById(db, id),

  };
}

export type AdminAuthService = ReturnType<typeof createAdminAuthService>;

/** Creates a user with the system_admin role (start-up bootstrap and the CLI); `conflict` if the email exists. */
export async function createAdminUser(db: Kysely<Database>, hasher: PasswordHasher, email: string, password: string, actor: Actor): Promise<UserRow> {
  if (await findUserByEmail(db, email)) throw new ApiError('conflict', 'A user with that email already exists');
  const password_hash = await hasher.hash(password);
  try {
    return await db.transaction().execute(async (trx) => {
      const user = await insertUser(trx, { id: randomUUID(), email, password_hash, roles: [SYSTEM_ADMIN] });
      await insertAuditEntry(trx, actor, { action: 'user.create', targetType: 'user', targetId: user.id, details: { roles: user.roles } });
      return user;
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw new ApiError('conflict', 'A user with that email already exists');
    throw err;
  }
}
