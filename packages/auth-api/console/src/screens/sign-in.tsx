import type { AuthClient, AuthUser } from '@rw3iss/auth-client';
import { useEffect, useRef, useState } from 'preact/hooks';
import { type Problem, problemsOf } from '../api.js';
import { Field, Problems } from '../components.js';

export function SignInScreen({ client, notice, onSignedIn }: { client: AuthClient; notice: string | null; onSignedIn: (user: AuthUser, expiresInSec: number) => void }) {
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [problems, setProblems] = useState<Problem[]>([]);
  const [busy, setBusy] = useState(false);
  const emailRef = useRef<HTMLInputElement>(null);
  useEffect(() => {
    document.title = 'Sign in · auth-api console';
    if (!notice) emailRef.current?.focus();
  }, [notice]);

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setProblems([]);
    try {
      const answer = await client.auth.login({ email, password });
      if (!answer.roles.includes('system_admin')) {
        await client.auth.logout().catch(() => {});
        setProblems([{ message: 'Your account is not a system administrator: the console needs that role.' }]);
        return;
      }
      setPassword('');
      onSignedIn(answer.user, answer.tokens.expires_in);
    } catch (err) {
      setProblems(problemsOf(err, { email }));
    } finally {
      setBusy(false);
    }
  };

  return (
    <main id="main" class="sign-in">
      <h1>Sign in to the auth-api console</h1>
      {notice && (
        <p class="notice" role="status">
          {notice}
        </p>
      )}
      <form onSubmit={submit} noValidate>
        <Problems problems={problems.filter((p) => !p.field)} />
        <Field id="email" label="Email" problems={problems}>
          {(aria) => <input {...aria} ref={emailRef} type="email" autoComplete="username" required value={email} onInput={(e) => setEmail(e.currentTarget.value)} />}
        </Field>
        <Field id="password" label="Password" problems={problems}>
          {(aria) => <input {...aria} type="password" autoComplete="current-password" required value={password} onInput={(e) => setPassword(e.currentTarget.value)} />}
        </Field>
        <button type="submit" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
      <p class="hint">The session is kept in this page only: reloading it or closing it signs you out.</p>
    </main>
  );
}
