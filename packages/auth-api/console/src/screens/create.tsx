import type { CreateM2MClientResponse, PermissionRecord } from '@rw3iss/auth-client';
import { useEffect, useState } from 'preact/hooks';
import { type Problem, problemsOf, splitList } from '../api.js';
import { Field, Problems, ScreenTitle, SecretOnce } from '../components.js';
import { href } from '../router.js';
import { SessionEnded, useSession } from '../session.js';

/** Groups catalog permissions by service, in the server's order (service, then code). */
function byService(permissions: PermissionRecord[]): [string, PermissionRecord[]][] {
  const groups = new Map<string, PermissionRecord[]>();
  for (const p of permissions) groups.set(p.service, [...(groups.get(p.service) ?? []), p]);
  return [...groups];
}

/**
 * Create a credential: scopes picked from the permission catalogs, others typed
 * (namespaces without a catalog). The secret is then shown once, on this screen only.
 */
export function CreateScreen() {
  const session = useSession();
  const [clientId, setClientId] = useState('');
  const [name, setName] = useState('');
  const [description, setDescription] = useState('');
  const [picked, setPicked] = useState<Set<string>>(new Set());
  const [otherScopes, setOtherScopes] = useState('');
  const [audiences, setAudiences] = useState('');
  const [catalog, setCatalog] = useState<PermissionRecord[] | null>(null);
  const [problems, setProblems] = useState<Problem[]>([]);
  const [busy, setBusy] = useState(false);
  const [created, setCreated] = useState<CreateM2MClientResponse | null>(null);

  useEffect(() => {
    session.call((c) => c.permissions.list()).then(setCatalog, (err) => {
      if (err instanceof SessionEnded) return;
      setCatalog([]);
      setProblems(problemsOf(err));
    });
  }, [session]);

  const toggle = (code: string, on: boolean) => {
    const next = new Set(picked);
    if (on) next.add(code);
    else next.delete(code);
    setPicked(next);
  };

  const submit = async (e: Event) => {
    e.preventDefault();
    const body = {
      client_id: clientId.trim(),
      name: name.trim(),
      ...(description.trim() ? { description: description.trim() } : {}),
      scopes: [...new Set([...picked, ...splitList(otherScopes)])],
      allowed_audiences: splitList(audiences),
    };
    setBusy(true);
    setProblems([]);
    try {
      setCreated(await session.call((c) => c.services.create(body)));
    } catch (err) {
      if (!(err instanceof SessionEnded)) setProblems(problemsOf(err, body));
    } finally {
      setBusy(false);
    }
  };

  if (created) {
    return (
      <section>
        <ScreenTitle title="Credential created">Credential {created.client.client_id} created</ScreenTitle>
        <SecretOnce clientId={created.client.client_id} secret={created.client_secret} heading="Its client secret" />
        <p>
          <a href={href.credential(created.client.id)}>Open {created.client.client_id}</a> · <a href={href.credentials}>All credentials</a>
        </p>
      </section>
    );
  }

  return (
    <section>
      <ScreenTitle title="New credential">New credential</ScreenTitle>
      <form onSubmit={submit} noValidate class="stack">
        <Problems problems={problems} />
        <Field id="client_id" label="Client ID" hint="3 to 100 lower-case letters, digits, dots, dashes or underscores, e.g. billing-svc. It cannot be changed or reused." problems={problems}>
          {(aria) => <input {...aria} class="mono" autoComplete="off" spellcheck={false} required value={clientId} onInput={(e) => setClientId(e.currentTarget.value)} />}
        </Field>
        <Field id="name" label="Name" problems={problems}>
          {(aria) => <input {...aria} required value={name} onInput={(e) => setName(e.currentTarget.value)} />}
        </Field>
        <Field id="description" label="Description (optional)" problems={problems}>
          {(aria) => <textarea {...aria} rows={2} value={description} onInput={(e) => setDescription(e.currentTarget.value)} />}
        </Field>
        <fieldset class={problems.some((p) => p.field === 'scopes') ? 'invalid' : ''}>
          <legend>Scopes</legend>
          {catalog === null ? (
            <p role="status">Loading the permission catalogs…</p>
          ) : catalog.length === 0 ? (
            <p class="hint">No service has registered a permission catalog yet: type the scopes below.</p>
          ) : (
            byService(catalog).map(([service, permissions]) => (
              <fieldset key={service} class="catalog">
                <legend>{service}</legend>
                {permissions.map((p) => (
                  <div class="check" key={p.code}>
                    <input type="checkbox" id={`scope-${p.code}`} checked={picked.has(p.code)} onChange={(e) => toggle(p.code, e.currentTarget.checked)} />
                    <label for={`scope-${p.code}`}>
                      <span class="mono">{p.code}</span> {p.name}
                      {p.description ? <span class="hint"> ({p.description})</span> : null}
                    </label>
                  </div>
                ))}
              </fieldset>
            ))
          )}
          <Field
            id="scopes"
            label="Other scopes"
            hint='For services without a catalog: "service:permission", separated by spaces, e.g. "reports:read". A namespace with a catalog accepts only its scopes.'
            problems={problems}
          >
            {(aria) => <input {...aria} class="mono" autoComplete="off" spellcheck={false} value={otherScopes} onInput={(e) => setOtherScopes(e.currentTarget.value)} />}
          </Field>
        </fieldset>
        <Field id="allowed_audiences" label="Allowed audiences (optional)" hint="The receiving services it may request tokens for, separated by spaces, e.g. catalog-api." problems={problems}>
          {(aria) => <input {...aria} class="mono" autoComplete="off" spellcheck={false} value={audiences} onInput={(e) => setAudiences(e.currentTarget.value)} />}
        </Field>
        <button type="submit" disabled={busy}>
          {busy ? 'Creating…' : 'Create credential'}
        </button>
      </form>
    </section>
  );
}
