import { AuthClientError, type AuthClient, type AuthUser } from '@rw3iss/auth-client';
import { createContext } from 'preact';
import { useContext } from 'preact/hooks';

/** Thrown by `Session.call` once the session has ended: the console is back at sign-in, the caller just stops. */
export class SessionEnded extends Error {
  override name = 'SessionEnded';
}

export interface Session {
  client: AuthClient;
  user: AuthUser;
  /**
   * Runs an API call. An `unauthorized` answer means the session ended (expired, signed
   * out elsewhere, revoked): the console forgets it, shows why and returns to sign-in.
   */
  call<T>(fn: (client: AuthClient) => Promise<T>): Promise<T>;
}

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const session = useContext(SessionContext);
  if (!session) throw new Error('useSession outside a signed-in console');
  return session;
}

export const isUnauthorized = (err: unknown) => err instanceof AuthClientError && err.code === 'unauthorized';
