import type { Kysely, Updateable } from 'kysely';
import type { Database, UserRow, UsersTable } from '../../db/schema.js';

export function findUserByEmail(db: Kysely<Database>, email: string): Promise<UserRow | undefined> {
  return db.selectFrom('users').selectAll().where('email', '=', email).executeTakeFirst();
}

export function findUserById(db: Kysely<Database>, id: string): Promise<UserRow | undefined> {
  return db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function countUsers(db: Kysely<Database>): Promise<number> {
  const { count } = await db.selectFrom('users').select((eb) => eb.fn.countAll<string>().as('count')).executeTakeFirstOrThrow();
  return Number(count);
}

export async function insertUser(
  db: Kysely<Database>,
  user: { id: string; email: string; password_hash: string; roles: string[] },
): Promise<UserRow> {
  const now = new Date();
  return db.insertInto('users').values({ ...user, created_at: now, updated_at: now }).returningAll().executeTakeFirstOrThrow();
}

export function updateUser(db: Kysely<Database>, id: string, changes: Updateable<UsersTable>): Promise<UserRow | undefined> {
  return db.updateTable('users').set(changes).where('id', '=', id).returningAll().executeTakeFirst();
}

/** Every user, oldest first. */
export function listUsers(db: Kysely<Database>): Promise<UserRow[]> {
  return db.selectFrom('users').selectAll().orderBy('created_at').orderBy('email').execute();
}
