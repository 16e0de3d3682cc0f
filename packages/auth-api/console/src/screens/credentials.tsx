import type { M2MClientStatus, PermissionRecord } from '@rw3iss/auth-client';
import { useEffect, useState } from 'preact/hooks';
import { Field, Problems, ScreenTitle, Status, Time } from '../components.js';
import { usePagedList } from '../paged-list.js';
import { href } from '../router.js';
import { useSession } from '../session.js';

const PAGE_SIZE = 20;

interface Filters {
  search: string;
  status: '' | M2MClientStatus;
  scope: string;
  includeRevoked: boolean;
}

/** Credentials, newest first, a page at a time (the listing's cursor), with search and filters. */
export function CredentialsScreen() {
  const session = useSession();
  const [filters, setFilters] = useState<Filters>({ search: '', status: '', scope: '', includeRevoked: false });
  const [catalog, setCatalog] = useState<PermissionRecord[]>([]);
  useEffect(() => {
    session.call((c) => c.permissions.list()).then(setCatalog, () => {});
  }, [session]);

  const list = usePagedList(filters, (applied: Filters, cursor) => {
    const query = {
      limit: PAGE_SIZE,
      ...(cursor ? { cursor } : {}),
      ...(applied.search.trim() ? { client_id_prefix: applied.search.trim().toLowerCase() } : {}),
      ...(applied.status ? { status: applied.status } : {}),
      ...(applied.scope.trim() ? { scope: applied.scope.trim() } : {}),
      ...(applied.includeRevoked ? { include_revoked: true } : {}),
    };
    return session.call((c) => c.services.listPage(query)).then((answer) => ({ rows: answer.clients, next: answer.next_cursor }));
  });
  const { rows, page } = list;
  const apply = (e: Event) => {
    e.preventDefault();
    list.apply(filters);
  };
  const creator = (id: string | null) => (id === null ? 'unknown' : id === session.user.id ? 'you' : `user ${id.slice(0, 8)}`);
  // Problems about a filter show under it; the listing's parameter names map to the form's fields.
  const fieldProblems = list.problems.map((p) => ({ ...p, field: p.field === 'client_id_prefix' ? 'search' : p.field }));

  return (
    <section>
      <ScreenTitle title="Credentials">Credentials</ScreenTitle>
      <p>
        <a class="button" href={href.create}>
          New credential
        </a>
      </p>
      <form class="filters" onSubmit={apply} role="search" aria-label="Filter credentials">
        <Field id="search" label="Client ID starts with" problems={fieldProblems}>
          {(aria) => <input {...aria} type="search" value={filters.search} onInput={(e) => setFilters({ ...filters, search: e.currentTarget.value })} />}
        </Field>
        <Field id="status" label="Status" problems={fieldProblems}>
          {(aria) => (
            <select {...aria} value={filters.status} onChange={(e) => setFilters({ ...filters, status: e.currentTarget.value as Filters['status'] })}>
              <option value="">Any</option>
              <option value="active">Active</option>
              <option value="disabled">Disabled</option>
            </select>
          )}
        </Field>
        <Field id="scope" label="Holds scope" problems={fieldProblems}>
          {(aria) => (
            <>
              <input {...aria} list="scope-options" placeholder="e.g. gsku:publish" value={filters.scope} onInput={(e) => setFilters({ ...filters, scope: e.currentTarget.value })} />
              <datalist id="scope-options">
                {catalog.map((p) => (
                  <option key={p.code} value={p.code} />
                ))}
              </datalist>
            </>
          )}
        </Field>
        <div class="field check">
          <input id="include-revoked" type="checkbox" checked={filters.includeRevoked} onChange={(e) => setFilters({ ...filters, includeRevoked: e.currentTarget.checked })} />
          <label for="include-revoked">Include revoked</label>
        </div>
        <button type="submit">Apply filters</button>
      </form>
      <Problems problems={fieldProblems.filter((p) => !p.field || !['search', 'status', 'scope'].includes(p.field))} />
      {rows === null ? (
        <p role="status">Loading…</p>
      ) : rows.length === 0 ? (
        <p role="status">{page > 1 ? 'No more credentials.' : 'No credential matches.'}</p>
      ) : (
        <div class="table-wrap" tabIndex={0} role="region" aria-label="Credentials list">
          <table>
            <caption>
              Credentials, newest first (page {page})
            </caption>
            <thead>
              <tr>
                <th scope="col">Client ID</th>
                <th scope="col">Name</th>
                <th scope="col">Status</th>
                <th scope="col">Scopes</th>
                <th scope="col">Last used</th>
                <th scope="col">Created by</th>
                <th scope="col">Created</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((r) => (
                <tr key={r.id}>
                  <td>
                    <a class="mono" href={href.credential(r.id)}>
                      {r.client_id}
                    </a>
                  </td>
                  <td>{r.name}</td>
                  <td>
                    <Status status={r.status} revoked={r.revoked_at !== null} />
                  </td>
                  <td class="mono scopes">{r.scopes.join(' ') || 'none'}</td>
                  <td>
                    <Time iso={r.last_used_at} empty="never" />
                  </td>
                  <td>{creator(r.created_by)}</td>
                  <td>
                    <Time iso={r.created_at} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <nav class="pager" aria-label="Pages">
        <button type="button" disabled={page === 1} onClick={list.previous}>
          Previous page
        </button>
        <button type="button" disabled={!list.hasNext} onClick={list.next}>
          Next page
        </button>
      </nav>
    </section>
  );
}
