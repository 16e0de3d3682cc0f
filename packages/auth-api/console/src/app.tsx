import type { AuthClient, AuthUser } from '@rw3iss/auth-client';
import { useCallback, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { createConsoleClient } from './api.js';
import { href, type Route, useRoute } from './router.js';
import { AuditScreen } from './screens/audit.js';
import { CatalogsScreen } from './screens/catalogs.js';
import { CreateScreen } from './screens/create.js';
import { CredentialScreen } from './screens/credential.js';
import { CredentialsScreen } from './screens/credentials.js';
import { SignInScreen } from './screens/sign-in.js';
import { isUnauthorized, type Session, SessionContext, SessionEnded } from './session.js';

const ENDED = 'Your session has ended, so you were signed out. Sign in again to continue.';

/**
 * The console: sign-in, or the signed-in screens. The session token lives in the
 * SDK's memory storage only: a reload, a new tab or closing the page signs out.
 */
export function App() {
  // A new client (and so an empty token store) per sign-in: nothing of an old session survives.
  const [client, setClient] = useState<AuthClient>(() => createConsoleClient());
  const [user, setUser] = useState<AuthUser | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const route = useRoute();
  const expiry = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);

  const end = useCallback((message: string | null) => {
    clearTimeout(expiry.current);
    setUser(null);
    setNotice(message);
    setClient(createConsoleClient());
  }, []);

  const signedIn = useCallback((who: AuthUser, expiresInSec: number) => {
    setNotice(null);
    setUser(who);
    clearTimeout(expiry.current);
    // The server ends the session at USER_TOKEN_TTL: say so then, rather than at the next failed call.
    expiry.current = setTimeout(() => end(ENDED), Math.min(expiresInSec * 1000, 2 ** 31 - 1));
  }, [end]);

  useEffect(() => () => clearTimeout(expiry.current), []);

  const session = useMemo<Session | null>(
    () =>
      user && {
        client,
        user,
        async call(fn) {
          try {
            return await fn(client);
          } catch (err) {
            if (isUnauthorized(err)) {
              end(ENDED);
              throw new SessionEnded();
            }
            throw err;
          }
        },
      },
    [client, user, end],
  );

  const signOut = async () => {
    try {
      await client.auth.logout();
    } catch {
      // The token is forgotten locally either way; the server ends it at expiry.
    }
    end('You are signed out.');
  };

  if (!session) return <SignInScreen client={client} notice={notice} onSignedIn={signedIn} />;
  return (
    <SessionContext.Provider value={session}>
      <a class="skip" href="#main">Skip to content</a>
      <header class="top">
        <span class="brand">auth-api console</span>
        <nav aria-label="Main">
          <a href={href.credentials} aria-current={route.screen === 'credentials' || route.screen === 'credential' ? 'page' : undefined}>Credentials</a>
          <a href={href.create} aria-current={route.screen === 'create' ? 'page' : undefined}>New credential</a>
          <a href={href.catalogs} aria-current={route.screen === 'catalogs' ? 'page' : undefined}>Catalogs</a>
          <a href={href.audit} aria-current={route.screen === 'audit' ? 'page' : undefined}>Audit log</a>
        </nav>
        <span class="who">
          {session.user.email} <button type="button" class="link" onClick={signOut}>Sign out</button>
        </span>
      </header>
      <main id="main">
        <Screen route={route} />
      </main>
    </SessionContext.Provider>
  );
}

function Screen({ route }: { route: Route }) {
  switch (route.screen) {
    case 'credentials':
      return <CredentialsScreen />;
    case 'create':
      return <CreateScreen />;
    case 'credential':
      // Keyed: another credential is a new screen, with nothing (no secret) carried over.
      return <CredentialScreen key={route.id} id={route.id} />;
    case 'catalogs':
      return <CatalogsScreen />;
    case 'audit':
      return <AuditScreen />;
    default:
      return (
        <section>
          <h1 tabIndex={-1}>Page not found</h1>
          <p>
            There is no page at {route.path}. Go to the <a href={href.credentials}>credentials</a>.
          </p>
        </section>
      );
  }
}
