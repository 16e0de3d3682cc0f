import { AuthClientError, createAuthClient, type AuthClient } from '@rw3iss/auth-client';

/** The console's one client: same origin, the token in memory only (the SDK's default storage). */
export function createConsoleClient(): AuthClient {
  return createAuthClient({ apiBaseUrl: `${location.origin}/api/v1`, appCode: 'auth-api-console' });
}

/** A problem to show: one sentence, and the form field it concerns when there is one. */
export interface Problem {
  message: string;
  /** A form field name (`client_id`, `scopes`, …), or undefined for the form as a whole. */
  field?: string | undefined;
}

/** Readable names of the fields the API names in `details[].path` (`body.client_id`, `querystring.scope`). */
const FIELD_LABELS: Record<string, string> = {
  client_id: 'Client ID',
  client_id_prefix: 'Search',
  name: 'Name',
  description: 'Description',
  scopes: 'Scopes',
  scope: 'Scope filter',
  allowed_audiences: 'Allowed audiences',
  status: 'Status',
  email: 'Email',
  password: 'Password',
  expire_previous_in: 'Expiry of the old secret',
  actor: 'Actor',
  action: 'Action',
  target: 'Target',
  since: 'From',
  until: 'Until',
  limit: 'Page size',
  cursor: 'Page',
};

const sentence = (text: string) => {
  const trimmed = text.trim();
  const first = trimmed.charAt(0).toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(first) ? first : `${first}.`;
};

/**
 * Turns an API failure into sentences a person can act on, each with the field it
 * concerns. `sent` holds the values sent, so an item of a list (`body.scopes.2`)
 * can be named by its value. Switches on the SDK's stable codes, never on messages.
 */
export function problemsOf(err: unknown, sent: Record<string, unknown> = {}): Problem[] {
  if (!(err instanceof AuthClientError)) return [{ message: 'Something went wrong in the console itself. Reload the page and try again.' }];
  const details = err.details ?? [];
  switch (err.code) {
    case 'validation_failed':
    case 'unknown_scope':
      if (details.length > 0) {
        return details.map(({ path, message }) => {
          const [, field = '', index] = path.split('.');
          const label = FIELD_LABELS[field] ?? field.replace(/_/g, ' ');
          const list = sent[field];
          const item = index !== undefined && Array.isArray(list) ? ` "${String(list[Number(index)])}"` : '';
          // unknown_scope messages already name the scope; validation messages are predicates ("must be …").
          const text = err.code === 'unknown_scope' ? `${label}: ${message}` : `${label}${item} ${message}`;
          return { message: sentence(text), field: field || undefined };
        });
      }
      return [{ message: sentence(err.message) }];
    case 'conflict':
      if (sent.client_id !== undefined && 'name' in sent) {
        return [{ field: 'client_id', message: `Client ID "${String(sent.client_id)}" is taken: client IDs are never reused, even after a credential is revoked. Choose another.` }];
      }
      return [{ message: sentence(err.message) }];
    case 'unauthorized':
      return [{ message: 'The email or password is wrong.' }];
    case 'forbidden':
      return [{ message: 'Your account is not a system administrator: the console needs that role.' }];
    case 'not_found':
      return [{ message: 'It no longer exists, or the address is wrong.' }];
    case 'rate_limited':
      return [{ message: `Too many attempts from this address. Wait ${err.retryAfterSec ?? 60} seconds, then try again.` }];
    case 'service_unavailable':
      return [{ message: 'The server cannot handle requests right now (its database may be unreachable). Try again in a moment.' }];
    case 'network_error':
      return [{ message: 'The server could not be reached. Check the connection, then try again.' }];
    case 'payload_too_large':
      return [{ message: 'What you entered is too large to send. Shorten it, then try again.' }];
    case 'internal_error':
      return [{ message: 'The server failed while handling this. Its log has the details; try again later.' }];
    default:
      return [{ message: 'The server gave an answer the console does not understand. Reload the page and try again.' }];
  }
}

/** Splits a text field of several values (spaces, commas or new lines) into a list. */
export const splitList = (text: string) => text.split(/[\s,]+/).filter(Boolean);

const pad = (n: number) => String(n).padStart(2, '0');

/** `2026-11-26 12:01 UTC`: one format everywhere, unambiguous for operators in any time zone. */
export function formatTime(iso: string | null | undefined): string {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())} UTC`;
}
