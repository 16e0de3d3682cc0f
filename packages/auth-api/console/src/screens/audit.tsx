import { useState } from 'preact/hooks';
import { AuditTable, Field, Problems, ScreenTitle } from '../components.js';
import { usePagedList } from '../paged-list.js';
import { useSession } from '../session.js';

const PAGE_SIZE = 25;
/** Suggestions for the action filter (the server records these; docs/API.md lists them). */
const ACTIONS = [
  'm2m_client.create',
  'm2m_client.update',
  'm2m_client.revoke',
  'm2m_client.scopes_orphaned',
  'permission_catalog.register',
  'login.success',
  'login.failure',
  'logout',
  'user.create',
  'user.disable',
  'user.enable',
  'user.password_change',
  'user.sessions_revoke',
  'signing_key.rotate',
  'signing_key.activate',
  'signing_key.retire',
];

interface Filters {
  actor: string;
  action: string;
  target: string;
}

/** The audit log of admin actions, newest first, a page at a time, with filters. */
export function AuditScreen() {
  const session = useSession();
  const [filters, setFilters] = useState<Filters>({ actor: '', action: '', target: '' });
  const list = usePagedList(filters, (applied: Filters, cursor) => {
    const query = {
      limit: PAGE_SIZE,
      ...(cursor ? { cursor } : {}),
      ...(applied.actor.trim() ? { actor: applied.actor.trim() } : {}),
      ...(applied.action.trim() ? { action: applied.action.trim() } : {}),
      ...(applied.target.trim() ? { target: applied.target.trim() } : {}),
    };
    return session.call((c) => c.audit.list(query)).then((page) => ({ rows: page.events, next: page.next_cursor }));
  });
  const { rows: events, problems } = list;

  const apply = (e: Event) => {
    e.preventDefault();
    list.apply(filters);
  };

  return (
    <section>
      <ScreenTitle title="Audit log">Audit log</ScreenTitle>
      <form class="filters" onSubmit={apply} role="search" aria-label="Filter the audit log">
        <Field id="actor" label="Who (email, exactly)" problems={problems}>
          {(aria) => <input {...aria} type="search" value={filters.actor} onInput={(e) => setFilters({ ...filters, actor: e.currentTarget.value })} />}
        </Field>
        <Field id="action" label="Action" problems={problems}>
          {(aria) => (
            <>
              <input {...aria} list="action-options" class="mono" value={filters.action} onInput={(e) => setFilters({ ...filters, action: e.currentTarget.value })} />
              <datalist id="action-options">
                {ACTIONS.map((a) => (
                  <option key={a} value={a} />
                ))}
              </datalist>
            </>
          )}
        </Field>
        <Field id="target" label="Target id" problems={problems}>
          {(aria) => <input {...aria} class="mono" value={filters.target} onInput={(e) => setFilters({ ...filters, target: e.currentTarget.value })} />}
        </Field>
        <button type="submit">Apply filters</button>
      </form>
      <Problems problems={problems.filter((p) => !p.field || !['actor', 'action', 'target'].includes(p.field))} />
      {events === null ? <p role="status">Loading…</p> : <AuditTable events={events} caption={`Audit log, newest first (page ${list.page})`} />}
      <nav class="pager" aria-label="Pages">
        <button type="button" disabled={list.page === 1} onClick={list.previous}>
          Newer
        </button>
        <button type="button" disabled={!list.hasNext} onClick={list.next}>
          Older
        </button>
      </nav>
    </section>
  );
}
