import { AuthClientError, type AuditEvent, type M2MClientSecretRecord, type M2MClientRecord, type RotateSecretResponse } from '@rw3iss/auth-client';
import { useCallback, useEffect, useState } from 'preact/hooks';
import { type Problem, problemsOf } from '../api.js';
import { AuditTable, ConfirmDialog, Field, Problems, ScreenTitle, SecretOnce, Status, Time } from '../components.js';
import { href } from '../router.js';
import { SessionEnded, useSession } from '../session.js';

/** `null`: not known yet; `false`: this server has no secrets API (rotation not deployed). */
type Secrets = M2MClientSecretRecord[] | null | false;

const EXPIRY_CHOICES: [string, string][] = [
  ['', 'Keep working until deleted'],
  ['0', 'Stop working at once'],
  ['3600', 'Keep working for 1 hour'],
  ['86400', 'Keep working for 1 day'],
  ['604800', 'Keep working for 7 days'],
];

/** One credential: its record, status and revocation, its secrets (rotation), and its audit trail. */
export function CredentialScreen({ id }: { id: string }) {
  const session = useSession();
  const [record, setRecord] = useState<M2MClientRecord | null>(null);
  const [trail, setTrail] = useState<AuditEvent[]>([]);
  const [secrets, setSecrets] = useState<Secrets>(null);
  const [problems, setProblems] = useState<Problem[]>([]);
  const [busy, setBusy] = useState(false);
  const [confirm, setConfirm] = useState<'revoke' | { deleteSecret: M2MClientSecretRecord } | null>(null);
  const [expiry, setExpiry] = useState('');
  const [rotated, setRotated] = useState<RotateSecretResponse | null>(null);
  const [done, setDone] = useState<string | null>(null);

  const fail = (err: unknown, sent?: Record<string, unknown>) => {
    if (!(err instanceof SessionEnded)) setProblems(problemsOf(err, sent));
  };

  const load = useCallback(async () => {
    try {
      const found = await session.call((c) => c.services.get(id));
      setRecord(found);
      setTrail((await session.call((c) => c.audit.list({ target: id, limit: 50 }))).events);
      if (found.revoked_at !== null) return setSecrets(false);
      try {
        setSecrets(await session.call((c) => c.services.secrets(id)));
      } catch (err) {
        // The credential answered a moment ago: a 404 here is the route missing (a server
        // from before secret rotation), so the rotation part of the screen stays hidden.
        if (err instanceof AuthClientError && err.code === 'not_found') setSecrets(false);
        else throw err;
      }
    } catch (err) {
      fail(err);
    }
  }, [session, id]);

  useEffect(() => {
    void load();
  }, [load]);

  const act = async (what: string, fn: () => Promise<unknown>, sent?: Record<string, unknown>) => {
    setBusy(true);
    setProblems([]);
    setDone(null);
    try {
      await fn();
      setDone(what);
      await load();
    } catch (err) {
      fail(err, sent);
    } finally {
      setBusy(false);
    }
  };

  if (!record) {
    return (
      <section>
        <ScreenTitle title="Credential">Credential</ScreenTitle>
        <Problems problems={problems} />
        {problems.length === 0 && <p role="status">Loading…</p>}
        <p>
          <a href={href.credentials}>Back to the credentials</a>
        </p>
      </section>
    );
  }

  const revoked = record.revoked_at !== null;
  const setStatus = (status: 'active' | 'disabled') =>
    act(status === 'disabled' ? `${record.client_id} is disabled: it obtains no tokens until enabled.` : `${record.client_id} is enabled.`, () =>
      session.call((c) => c.services.update(record.id, { status })),
    );
  const revoke = () =>
    act(`${record.client_id} is revoked. It obtains no more tokens; services reading the revocation feed refuse the tokens it already has within seconds, others until they expire.`, async () => {
      await session.call((c) => c.services.revoke(record.id));
      setConfirm(null);
    });
  const rotate = async (e: Event) => {
    e.preventDefault();
    const options = expiry === '' ? {} : { expire_previous_in: Number(expiry) };
    setBusy(true);
    setProblems([]);
    setDone(null);
    try {
      setRotated(await session.call((c) => c.services.rotateSecret(record.id, options)));
      setSecrets(await session.call((c) => c.services.secrets(record.id)));
      setTrail((await session.call((c) => c.audit.list({ target: id, limit: 50 }))).events);
    } catch (err) {
      fail(err, options);
    } finally {
      setBusy(false);
    }
  };
  const creation = trail.find((e) => e.action === 'm2m_client.create');

  return (
    <section>
      <ScreenTitle title={record.client_id}>
        <span class="mono">{record.client_id}</span> <Status status={record.status} revoked={revoked} />
      </ScreenTitle>
      <p>
        <a href={href.credentials}>Back to the credentials</a>
      </p>
      <Problems problems={problems} />
      {done && (
        <p class="done" role="status">
          {done}
        </p>
      )}
      <dl class="record">
        <dt>Name</dt>
        <dd>{record.name}</dd>
        <dt>Description</dt>
        <dd>{record.description || 'none'}</dd>
        <dt>Scopes</dt>
        <dd class="mono">{record.scopes.join(' ') || 'none'}</dd>
        {record.orphaned_scopes.length > 0 && (
          <>
            <dt>Orphaned scopes</dt>
            <dd>
              <span class="mono">{record.orphaned_scopes.join(' ')}</span>: no catalog defines them any more, so they are never granted.
            </dd>
          </>
        )}
        <dt>Allowed audiences</dt>
        <dd class="mono">{record.allowed_audiences.join(' ') || 'any (the server default)'}</dd>
        <dt>Last used</dt>
        <dd>
          <Time iso={record.last_used_at} empty="never" />
        </dd>
        <dt>Created</dt>
        <dd>
          <Time iso={record.created_at} />
          {creation ? ` by ${creation.actor}` : ''}
        </dd>
        <dt>Updated</dt>
        <dd>
          <Time iso={record.updated_at} />
        </dd>
        {revoked && (
          <>
            <dt>Revoked</dt>
            <dd>
              <Time iso={record.revoked_at} />
            </dd>
          </>
        )}
        <dt>Record id</dt>
        <dd class="mono">{record.id}</dd>
      </dl>

      {!revoked && (
        <div class="actions">
          {record.status === 'active' ? (
            <button type="button" disabled={busy} onClick={() => setStatus('disabled')}>
              Disable
            </button>
          ) : (
            <button type="button" disabled={busy} onClick={() => setStatus('active')}>
              Enable
            </button>
          )}
          <button type="button" class="danger" disabled={busy} onClick={() => setConfirm('revoke')}>
            Revoke…
          </button>
        </div>
      )}

      {secrets !== false && secrets !== null && (
        <section aria-labelledby="secrets-heading">
          <h2 id="secrets-heading">Secrets</h2>
          <SecretsTable secrets={secrets} onDelete={(s) => setConfirm({ deleteSecret: s })} busy={busy} />
          {rotated ? (
            <SecretOnce clientId={record.client_id} secret={rotated.client_secret} heading="The new client secret" />
          ) : (
            <form onSubmit={rotate} class="rotate">
              <Field id="expire_previous_in" label="The current secret, once the new one exists" problems={problems}>
                {(aria) => (
                  <select {...aria} value={expiry} onChange={(e) => setExpiry(e.currentTarget.value)}>
                    {EXPIRY_CHOICES.map(([value, label]) => (
                      <option key={value} value={value}>
                        {label}
                      </option>
                    ))}
                  </select>
                )}
              </Field>
              <button type="submit" disabled={busy}>
                Rotate secret
              </button>
            </form>
          )}
        </section>
      )}
      {secrets === false && !revoked && <p class="hint">This server has no secret rotation; to replace a secret, create a new credential and revoke this one.</p>}

      <section aria-labelledby="trail-heading">
        <h2 id="trail-heading">Audit trail</h2>
        <AuditTable events={trail} caption={`What happened to ${record.client_id}, newest first`} showTarget={false} />
      </section>

      <ConfirmDialog
        open={confirm === 'revoke'}
        title={`Revoke ${record.client_id}?`}
        action={`Revoke ${record.client_id}`}
        typed={record.client_id}
        busy={busy}
        onConfirm={revoke}
        onCancel={() => setConfirm(null)}
      >
        <p>
          Revoking is final: <strong class="mono">{record.client_id}</strong> obtains no more tokens, and its client ID can never be used again. Services reading the
          revocation feed refuse the tokens it already has within seconds; others accept them until they expire.
        </p>
      </ConfirmDialog>
      <ConfirmDialog
        open={typeof confirm === 'object' && confirm !== null}
        title="Delete this secret?"
        action="Delete secret"
        busy={busy}
        onConfirm={() => {
          if (typeof confirm !== 'object' || confirm === null) return;
          const secretId = confirm.deleteSecret.id;
          void act('The secret is deleted: it authenticates no more.', async () => {
            await session.call((c) => c.services.deleteSecret(record.id, secretId));
            setConfirm(null);
          });
        }}
        onCancel={() => setConfirm(null)}
      >
        <p>Services still using the secret {typeof confirm === 'object' && confirm ? `“${confirm.deleteSecret.hint}…”` : ''} can no longer obtain tokens.</p>
      </ConfirmDialog>
    </section>
  );
}

function SecretsTable({ secrets, onDelete, busy }: { secrets: M2MClientSecretRecord[]; onDelete: (s: M2MClientSecretRecord) => void; busy: boolean }) {
  if (secrets.length === 0) return <p>No live secret.</p>;
  return (
    <div class="table-wrap" tabIndex={0} role="region" aria-label="Secrets">
      <table>
        <caption>Live secrets, newest first (never their values)</caption>
        <thead>
          <tr>
            <th scope="col">Hint</th>
            <th scope="col">Created</th>
            <th scope="col">Last used</th>
            <th scope="col">Expires</th>
            <th scope="col">
              <span class="visually-hidden">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {secrets.map((s) => (
            <tr key={s.id}>
              <td class="mono">{s.hint || '(none yet)'}</td>
              <td>
                <Time iso={s.created_at} />
              </td>
              <td>
                <Time iso={s.last_used_at} empty="never" />
              </td>
              <td>
                <Time iso={s.expires_at} empty="no expiry" />
              </td>
              <td>
                <button type="button" class="link" disabled={busy || secrets.length < 2} onClick={() => onDelete(s)}>
                  Delete<span class="visually-hidden"> secret {s.hint}</span>
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
