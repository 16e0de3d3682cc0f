import type { CatalogSummary, M2MClientRecord, PermissionRecord } from '@rw3iss/auth-client';
import { useEffect, useState } from 'preact/hooks';
import { type Problem, problemsOf } from '../api.js';
import { Problems, ScreenTitle, Time } from '../components.js';
import { href } from '../router.js';
import { SessionEnded, useSession } from '../session.js';

interface Data {
  services: CatalogSummary[];
  permissions: PermissionRecord[];
  clients: M2MClientRecord[];
}

const Holders = ({ clients }: { clients: M2MClientRecord[] }) =>
  clients.length === 0 ? (
    <>none</>
  ) : (
    <ul class="inline">
      {clients.map((c) => (
        <li key={c.id}>
          <a class="mono" href={href.credential(c.id)}>
            {c.client_id}
          </a>
        </li>
      ))}
    </ul>
  );

/** Permission catalogs: each service and its permissions, who holds each, and scopes no catalog defines any more. */
export function CatalogsScreen() {
  const session = useSession();
  const [data, setData] = useState<Data | null>(null);
  const [problems, setProblems] = useState<Problem[]>([]);

  useEffect(() => {
    Promise.all([
      session.call((c) => c.permissions.services()),
      session.call((c) => c.permissions.list()),
      // Every credential that is not revoked: who holds what (revoked ones hold nothing).
      session.call((c) => c.services.list()),
    ]).then(
      ([services, permissions, clients]) => setData({ services, permissions, clients }),
      (err) => {
        if (!(err instanceof SessionEnded)) setProblems(problemsOf(err));
      },
    );
  }, [session]);

  const holders = (scope: string) => (data?.clients ?? []).filter((c) => c.scopes.includes(scope));
  const orphaned = (data?.clients ?? []).filter((c) => c.orphaned_scopes.length > 0);
  // Scopes in namespaces no catalog covers: any value is accepted there, so they are worth a look.
  const covered = new Set((data?.permissions ?? []).map((p) => p.code.split(':')[0]));
  const uncatalogued = new Map<string, M2MClientRecord[]>();
  for (const c of data?.clients ?? []) {
    for (const scope of c.scopes) if (!covered.has(scope.split(':')[0])) uncatalogued.set(scope, [...(uncatalogued.get(scope) ?? []), c]);
  }

  return (
    <section>
      <ScreenTitle title="Permission catalogs">Permission catalogs</ScreenTitle>
      <p class="hint">
        Services register the scopes they check. Once a namespace has a catalog, credentials may hold only the scopes it defines.
      </p>
      <Problems problems={problems} />
      {data === null ? (
        problems.length === 0 && <p role="status">Loading…</p>
      ) : data.services.length === 0 ? (
        <p>No service has registered a catalog yet.</p>
      ) : (
        data.services.map((s) => (
          <section key={s.service} aria-labelledby={`catalog-${s.service}`}>
            <h2 id={`catalog-${s.service}`}>
              <span class="mono">{s.service}</span>
            </h2>
            <p class="hint">
              {s.count} permission{s.count === 1 ? '' : 's'}, last changed <Time iso={s.updated_at} /> by {s.registered_by}
            </p>
            <div class="table-wrap" tabIndex={0} role="region" aria-label={`Permissions of ${s.service}`}>
              <table>
                <caption>Permissions of {s.service}</caption>
                <thead>
                  <tr>
                    <th scope="col">Scope</th>
                    <th scope="col">Name</th>
                    <th scope="col">Description</th>
                    <th scope="col">Held by</th>
                  </tr>
                </thead>
                <tbody>
                  {data.permissions
                    .filter((p) => p.service === s.service)
                    .map((p) => (
                      <tr key={p.code}>
                        <td class="mono">{p.code}</td>
                        <td>{p.name}</td>
                        <td>{p.description ?? ''}</td>
                        <td>
                          <Holders clients={holders(p.code)} />
                        </td>
                      </tr>
                    ))}
                </tbody>
              </table>
            </div>
          </section>
        ))
      )}
      {data !== null && uncatalogued.size > 0 && (
        <section aria-labelledby="uncatalogued-heading">
          <h2 id="uncatalogued-heading">Scopes without a catalog</h2>
          <p class="hint">No service has registered a catalog for these namespaces, so any scope there is accepted as typed.</p>
          <ul>
            {[...uncatalogued].sort(([a], [b]) => a.localeCompare(b)).map(([scope, clients]) => (
              <li key={scope}>
                <span class="mono">{scope}</span>: <Holders clients={clients} />
              </li>
            ))}
          </ul>
        </section>
      )}
      {data !== null && (
        <section aria-labelledby="orphaned-heading">
          <h2 id="orphaned-heading">Orphaned scopes</h2>
          {orphaned.length === 0 ? (
            <p>No credential holds a scope its catalog no longer defines.</p>
          ) : (
            <>
              <p class="hint">These scopes are never granted: their catalog dropped them. Edit or replace the credentials that hold them.</p>
              <ul>
                {orphaned.map((c) => (
                  <li key={c.id}>
                    <a class="mono" href={href.credential(c.id)}>
                      {c.client_id}
                    </a>
                    : <span class="mono">{c.orphaned_scopes.join(' ')}</span>
                  </li>
                ))}
              </ul>
            </>
          )}
        </section>
      )}
    </section>
  );
}
