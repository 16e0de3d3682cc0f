import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import { isUniqueViolation } from '../../db/errors.js';
import type { Database, UserRow } from '../../db/schema.js';
import { ApiError } from '../../errors.js';
import type { Clock } from '../../lib/clock.js';
import type { PasswordHasher } from '../../lib/password.js';
import { type Attempt, networkKey, type FailureThrottle } from '../../lib/throttle.js';
import { BudgetExceededError, type WorkBudget } from '../../lib/work-budget.js';
import { generateSessionToken, hashSessionToken, isSessionTokenShape } from '../../lib/secrets.js';
import { type Actor, insertAuditEntry } from '../audit/audit.repository.js';
import { type PublicUser, SYSTEM_ADMIN } from './admin-auth.schemas.js';
import { deleteExpiredSessions, findLiveSession, insertSessionIfUserUnchanged, type LiveSession, revokeSessionByHash, revokeUserSessions, touchSession } from './sessions.repository.js';
import { findUserByEmail, findUserById, insertUser, updateUser } from './users.repository.js';

export function toPublicUser(row: UserRow): PublicUser {
  return { id: row.id, email: row.email, roles: row.roles, created_at: row.created_at.toISOString() };
}

export interface AdminAuthDeps {
  db: Kysely<Database>;
  hasher: PasswordHasher;
  clock: Clock;
  /** Bounds bcrypt work across the server; a shed sign-in answers 503. */
  budget: WorkBudget;
  /** Failed logins and failed current-password checks, per (email, IP) and per IP. */
  throttle: FailureThrottle;
  /** Lifetime of a session, from sign-in; there is no sliding renewal. */
  userTokenTtlSec: number;
}

/** Where a request came from, kept with the session it opens. */
export interface Origin {
  ip: string;
  userAgent?: string | undefined;
}

/** Stored user agents are cut here: enough to recognise a browser, never a large column. */
const USER_AGENT_MAX = 256;
/** last_seen_at is written at most this often per session: one write a minute, not one per request. */
const TOUCH_INTERVAL_MS = 60_000;

/**
 * Admin sign-in as server-side sessions. The bearer token is 256 random bits
 * with a prefix; only its SHA-256 is stored, so neither a database reader nor
 * anyone holding a signing key (JWT_ACCESS_SECRET) can produce a valid one.
 */
export function createAdminAuthService({ db, hasher, clock, budget, throttle, userTokenTtlSec }: AdminAuthDeps) {
  /** Counted as a failure from the start, taken back on success: parallel guesses cannot outrun the limit. */
  async function beginAttempt(email: string, ip: string) {
    const attempt = await throttle.begin(email, ip);
    if (attempt.retryAfterSec !== undefined) {
      throw new ApiError('rate_limited', 'Too many failed sign-in attempts; retry later', undefined, { retryAfterSec: attempt.retryAfterSec });
    }
    return attempt;
  }

  /**
   * Runs a password check (the user read too, so a flood's reads are bounded by
   * its concurrency) within the bcrypt budget. Shed: 503, and the attempt is
   * abandoned: not a failure of this user (its key is dropped), but it still
   * counts against the address.
   */
  async function checked<T>(attempt: Attempt, ip: string, check: () => Promise<T>): Promise<T> {
    try {
      return await budget.run(networkKey(ip), check);
    } catch (err) {
      if (!(err instanceof BudgetExceededError)) throw err;
      await attempt.abandoned();
      throw new ApiError('service_unavailable', 'The server is busy; retry later', undefined, { retryAfterSec: err.retryAfterSec, cause: err });
    }
  }

  return {
    /**
     * Email + password → a new session. Unknown email, wrong password and a
     * disabled user give the same error after the same bcrypt work.
     */
    async login(email: string, password: string, origin: Origin) {
      const { ip } = origin;
      const attempt = await beginAttempt(email, ip);
      const { user, ok } = await checked(attempt, ip, async () => {
        const found = await findUserByEmail(db, email);
        return { user: found, ok: found ? await hasher.verify(password, found.password_hash) : (await hasher.burn(password), false) };
      });
      if (!user || !ok || user.disabled_at !== null) {
        const details = user && ok ? { reason: 'disabled' } : undefined;
        await insertAuditEntry(db, { id: user?.id ?? null, label: email, ip }, { action: 'login.failure', targetType: 'user', ...(user ? { targetId: user.id } : {}), ...(details ? { details } : {}) });
        throw new ApiError('unauthorized', 'Invalid email or password');
      }
      await attempt.succeeded();
      const token = generateSessionToken();
      const now = new Date(clock());
      const created = await db.transaction().execute(async (trx) => {
        await deleteExpiredSessions(trx, user.id, now);
        const inserted = await insertSessionIfUserUnchanged(
          trx,
          {
            id: randomUUID(),
            token_hash: hashSessionToken(token),
            user_id: user.id,
            created_at: now,
            expires_at: new Date(now.getTime() + userTokenTtlSec * 1000),
            last_seen_at: now,
            ip,
            user_agent: origin.userAgent?.slice(0, USER_AGENT_MAX) ?? null,
          },
          user,
        );
        if (inserted) await insertAuditEntry(trx, { id: user.id, label: user.email, ip }, { action: 'login.success', targetType: 'user', targetId: user.id });
        return inserted;
      });
      // The password changed, the user was disabled or its sessions were ended while the password was
      // being checked: the answer of a wrong password (the old one no longer opens a session).
      if (!created) throw new ApiError('unauthorized', 'Invalid email or password');
      return {
        user: toPublicUser(user),
        tokens: { access_token: token, token_type: 'Bearer' as const, expires_in: userTokenTtlSec },
        roles: user.roles,
      };
    },

    /**
     * The live session of a bearer token, with its user read fresh from the
     * database (a removed role or a disabled user takes effect at once).
     * Anything that is not a session token, a JWT included, is undefined
     * before any query.
     */
    async authenticate(token: string): Promise<LiveSession | undefined> {
      if (!isSessionTokenShape(token)) return undefined;
      const now = clock();
      const session = await findLiveSession(db, hashSessionToken(token), new Date(now));
      if (session && (session.lastSeenAt === null || now - session.lastSeenAt.getTime() >= TOUCH_INTERVAL_MS)) {
        await touchSession(db, session.sessionId, new Date(now));
      }
      return session;
    },

    /** Ends the session of this token, if it is live. Idempotent: an ended, expired or unknown token is not an error. */
    async logout(token: string, ip: string): Promise<void> {
      await db.transaction().execute(async (trx) => {
        const userId = await revokeSessionByHash(trx, hashSessionToken(token), new Date(clock()));
        if (userId === undefined) return;
        const user = await findUserById(trx, userId);
        await insertAuditEntry(trx, { id: userId, label: user?.email ?? userId, ip }, { action: 'logout', targetType: 'user', targetId: userId });
      });
    },

    /** Ends every session of the caller, the current one included; returns how many. */
    async revokeAllSessions(user: UserRow, ip: string): Promise<number> {
      return db.transaction().execute(async (trx) => {
        const count = await revokeUserSessions(trx, user.id, new Date(clock()));
        await insertAuditEntry(trx, { id: user.id, label: user.email, ip }, { action: 'user.sessions_revoke', targetType: 'user', targetId: user.id, details: { sessions_revoked: count } });
        return count;
      });
    },

    /**
     * Changes the caller's password after checking the current one (throttled
     * like a login), and ends the caller's other sessions: whoever else held
     * one is signed out, this session stays.
     */
    async changePassword(user: UserRow, sessionId: string, currentPassword: string, newPassword: string, ip: string): Promise<void> {
      const attempt = await beginAttempt(user.email, ip);
      if (!(await checked(attempt, ip, () => hasher.verify(currentPassword, user.password_hash)))) {
        await insertAuditEntry(db, { id: user.id, label: user.email, ip }, { action: 'user.password_change_failure', targetType: 'user', targetId: user.id });
        throw new ApiError('validation_failed', 'The current password is wrong', [{ path: 'body.current_password', message: 'is not the current password' }]);
      }
      await attempt.succeeded();
      const passwordHash = await budget.run(networkKey(ip), () => hasher.hash(newPassword), { trusted: true });
      await db.transaction().execute(async (trx) => {
        const now = new Date(clock());
        await updateUser(trx, user.id, { password_hash: passwordHash, updated_at: now });
        const count = await revokeUserSessions(trx, user.id, now, sessionId);
        await insertAuditEntry(trx, { id: user.id, label: user.email, ip }, { action: 'user.password_change', targetType: 'user', targetId: user.id, details: { sessions_revoked: count } });
      });
    },
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
