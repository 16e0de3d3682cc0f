import type { Kysely } from 'kysely';
import type { Database, UserRow } from '../../db/schema.js';
import { ApiError } from '../../errors.js';
import { type Clock, iso } from '../../lib/clock.js';
import type { PasswordHasher } from '../../lib/password.js';
import { type Actor, insertAuditEntry } from '../audit/audit.repository.js';
import { SYSTEM_ADMIN } from './admin-auth.schemas.js';
import { revokeUserSessions, sessionStatsByUser } from './sessions.repository.js';
import { findUserByEmail, listUsers, updateUser } from './users.repository.js';

/** A user as the operator CLI lists it: never the password hash. */
export interface UserSummary {
  id: string;
  email: string;
  roles: string[];
  status: 'active' | 'disabled';
  disabled_at: string | null;
  created_at: string;
  /** Sessions not ended and not expired. */
  active_sessions: number;
  last_seen_at: string | null;
}

export interface AdminUsersDeps {
  db: Kysely<Database>;
  hasher: PasswordHasher;
  clock: Clock;
}

/**
 * Operator actions on admin users (the CLI's `admin …` commands), each
 * audited: containing a compromised admin means disabling it or replacing its
 * password, and every one of these ends the user's sessions at once.
 */
export function createAdminUsersService({ db, hasher, clock }: AdminUsersDeps) {
  async function byEmail(email: string): Promise<UserRow> {
    const user = await findUserByEmail(db, email);
    if (!user) throw new ApiError('not_found', 'No user with that email');
    return user;
  }

  return {
    async list(): Promise<UserSummary[]> {
      const now = new Date(clock());
      const [users, stats] = await Promise.all([listUsers(db), sessionStatsByUser(db, now)]);
      return users.map((u) => ({
        id: u.id,
        email: u.email,
        roles: u.roles,
        status: u.disabled_at === null ? 'active' : 'disabled',
        disabled_at: iso(u.disabled_at),
        created_at: u.created_at.toISOString(),
        active_sessions: stats.get(u.id)?.live ?? 0,
        last_seen_at: iso(stats.get(u.id)?.lastSeenAt ?? null),
      }));
    },

    /**
     * Disables a user: sign-in refused, every session ended. Returns the
     * user, the sessions ended, and whether it was already disabled (then
     * nothing changes and nothing is audited).
     */
    async disable(email: string, actor: Actor): Promise<{ user: UserRow; sessionsRevoked: number; already: boolean }> {
      const user = await byEmail(email);
      return db.transaction().execute(async (trx) => {
        const now = new Date(clock());
        // Sessions are ended even when already disabled: cheap, and it settles a login that raced the first disable.
        const sessionsRevoked = await revokeUserSessions(trx, user.id, now);
        if (user.disabled_at !== null) return { user, sessionsRevoked, already: true };
        const updated = (await updateUser(trx, user.id, { disabled_at: now, updated_at: now }))!;
        await insertAuditEntry(trx, actor, { action: 'user.disable', targetType: 'user', targetId: user.id, details: { sessions_revoked: sessionsRevoked } });
        return { user: updated, sessionsRevoked, already: false };
      });
    },

    /** Lets a disabled user sign in again (no session comes back). */
    async enable(email: string, actor: Actor): Promise<{ user: UserRow; already: boolean }> {
      const user = await byEmail(email);
      if (user.disabled_at === null) return { user, already: true };
      return db.transaction().execute(async (trx) => {
        const now = new Date(clock());
        const updated = (await updateUser(trx, user.id, { disabled_at: null, updated_at: now }))!;
        await insertAuditEntry(trx, actor, { action: 'user.enable', targetType: 'user', targetId: user.id });
        return { user: updated, already: false };
      });
    },

    /** Replaces a user's password and ends every session of that user. */
    async resetPassword(email: string, password: string, actor: Actor): Promise<{ user: UserRow; sessionsRevoked: number }> {
      const user = await byEmail(email);
      const passwordHash = await hasher.hash(password);
      return db.transaction().execute(async (trx) => {
        const now = new Date(clock());
        await updateUser(trx, user.id, { password_hash: passwordHash, updated_at: now });
        const sessionsRevoked = await revokeUserSessions(trx, user.id, now);
        await insertAuditEntry(trx, actor, { action: 'user.password_reset', targetType: 'user', targetId: user.id, details: { sessions_revoked: sessionsRevoked } });
        return { user, sessionsRevoked };
      });
    },

    /** Ends every session of a user; they can sign in again. */
    async revokeSessions(email: string, actor: Actor): Promise<{ user: UserRow; sessionsRevoked: number }> {
      const user = await byEmail(email);
      return db.transaction().execute(async (trx) => {
        const sessionsRevoked = await revokeUserSessions(trx, user.id, new Date(clock()));
        await insertAuditEntry(trx, actor, { action: 'user.sessions_revoke', targetType: 'user', targetId: user.id, details: { sessions_revoked: sessionsRevoked } });
        return { user, sessionsRevoked };
      });
    },

    /** How many users hold system_admin and are not disabled: the CLI warns when none is left. */
    async activeSystemAdmins(): Promise<number> {
      return (await listUsers(db)).filter((u) => u.disabled_at === null && u.roles.includes(SYSTEM_ADMIN)).length;
    },
  };
}

export type AdminUsersService = ReturnType<typeof createAdminUsersService>;
