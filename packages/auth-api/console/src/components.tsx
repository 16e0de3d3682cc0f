import type { AuditEvent } from '@rw3iss/auth-client';
import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { formatTime, type Problem } from './api.js';
import { href } from './router.js';

/**
 * A screen's heading. It takes the focus when the screen opens, so keyboard and screen
 * reader users start at the new content (a hash change moves no focus by itself).
 */
export function ScreenTitle({ children, title }: { children: ComponentChildren; title: string }) {
  const ref = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    document.title = `${title} · auth-api console`;
    ref.current?.focus();
  }, [title]);
  return (
    <h1 ref={ref} tabIndex={-1}>
      {children}
    </h1>
  );
}

/** Problems not tied to one field (or all of them, as a summary): announced, and focused when they appear. */
export function Problems({ problems, id }: { problems: Problem[]; id?: string }) {
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (problems.length > 0) ref.current?.focus();
  }, [problems]);
  if (problems.length === 0) return null;
  return (
    <div class="problems" role="alert" tabIndex={-1} ref={ref} id={id}>
      {problems.length === 1 ? (
        <p>{problems[0]!.message}</p>
      ) : (
        <ul>
          {problems.map((p) => (
            <li key={p.message}>{p.message}</li>
          ))}
        </ul>
      )}
    </div>
  );
}

/** A labelled form field; its problems (from the API) are shown under it and tied to it for assistive tech. */
export function Field(props: { id: string; label: string; hint?: string; problems?: Problem[]; children: (aria: Record<string, unknown>) => ComponentChildren }) {
  const mine = (props.problems ?? []).filter((p) => p.field === props.id);
  const describedBy = [props.hint ? `${props.id}-hint` : '', mine.length ? `${props.id}-error` : ''].filter(Boolean).join(' ') || undefined;
  return (
    <div class={`field${mine.length ? ' invalid' : ''}`}>
      <label for={props.id}>{props.label}</label>
      {props.hint && (
        <p class="hint" id={`${props.id}-hint`}>
          {props.hint}
        </p>
      )}
      {props.children({ id: props.id, name: props.id, 'aria-describedby': describedBy, 'aria-invalid': mine.length ? 'true' : undefined })}
      {mine.length > 0 && (
        <p class="field-error" id={`${props.id}-error`}>
          {mine.map((p) => p.message).join(' ')}
        </p>
      )}
    </div>
  );
}

export function Time({ iso, empty = '' }: { iso: string | null | undefined; empty?: string }) {
  if (!iso) return <>{empty}</>;
  return <time dateTime={iso}>{formatTime(iso)}</time>;
}

export function Status({ status, revoked }: { status: string; revoked?: boolean }) {
  const text = revoked ? 'revoked' : status;
  return <span class={`status status-${text}`}>{text}</span>;
}

async function copy(text: string): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    return false;
  }
}

/**
 * A secret shown this once: the value, a copy button, the same as environment variables
 * for the SDK (`CLIENT_ID`, `CLIENT_SECRET`, `AUTH_URL`, the names its README and examples use),
 * and a plain warning. It lives in this component's state only: leaving the screen drops it.
 */
export function SecretOnce({ clientId, secret, heading }: { clientId: string; secret: string; heading: string }) {
  const [copied, setCopied] = useState<string | null>(null);
  const ref = useRef<HTMLHeadingElement>(null);
  useEffect(() => ref.current?.focus(), []);
  const env = `AUTH_URL=${location.origin}\nCLIENT_ID=${clientId}\nCLIENT_SECRET=${secret}\n`;
  const doCopy = async (text: string, what: string) => setCopied((await copy(text)) ? `${what} copied to the clipboard.` : 'The browser refused the clipboard: select the text and copy it.');
  return (
    <section class="secret" aria-labelledby="secret-heading">
      <h2 id="secret-heading" ref={ref} tabIndex={-1}>
        {heading}
      </h2>
      <p class="warning">
        <strong>Copy this secret now. It will not be shown again:</strong> the server keeps only a hash of it. If it is lost, rotate the secret.
      </p>
      <label for="client-secret">Client secret of {clientId}</label>
      <input id="client-secret" class="mono" readOnly value={secret} autoComplete="off" spellcheck={false} onFocus={(e) => e.currentTarget.select()} />
      <div class="actions">
        <button type="button" onClick={() => doCopy(secret, 'The secret is')}>
          Copy secret
        </button>
        <button type="button" onClick={() => doCopy(env, 'The environment variables are')}>
          Copy as environment variables
        </button>
      </div>
      <label for="client-env">As environment variables (for @rw3iss/auth-server-ts)</label>
      <textarea id="client-env" class="mono" readOnly rows={3} value={env} spellcheck={false} />
      <p class="copied" role="status">
        {copied ?? ''}
      </p>
    </section>
  );
}

/**
 * A modal confirmation (native `<dialog>`: focus is trapped and returned, Escape cancels).
 * With `typed`, the action is enabled only once that exact text is typed, as GitHub asks
 * for a repository's name before deleting it.
 */
export function ConfirmDialog(props: {
  open: boolean;
  title: string;
  children: ComponentChildren;
  action: string;
  typed?: string;
  busy?: boolean;
  onConfirm: () => void;
  onCancel: () => void;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  const [text, setText] = useState('');
  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    if (props.open && !dialog.open) {
      setText('');
      dialog.showModal();
    }
    if (!props.open && dialog.open) dialog.close();
  }, [props.open]);
  const ready = props.typed === undefined || text === props.typed;
  return (
    <dialog ref={ref} aria-labelledby="confirm-title" onClose={props.onCancel}>
      <form
        method="dialog"
        onSubmit={(e) => {
          e.preventDefault();
          if (ready && !props.busy) props.onConfirm();
        }}
      >
        <h2 id="confirm-title">{props.title}</h2>
        {props.children}
        {props.typed !== undefined && (
          <div class="field">
            <label for="confirm-text">
              Type <strong class="mono">{props.typed}</strong> to confirm
            </label>
            <input id="confirm-text" class="mono" autoComplete="off" spellcheck={false} value={text} onInput={(e) => setText(e.currentTarget.value)} />
          </div>
        )}
        <div class="actions">
          <button type="submit" class="danger" disabled={!ready || props.busy}>
            {props.action}
          </button>
          <button type="button" onClick={props.onCancel}>
            Cancel
          </button>
        </div>
      </form>
    </dialog>
  );
}

const targetLink = (e: AuditEvent) =>
  e.target_type === 'm2m_client' && e.target_id ? <a href={href.credential(e.target_id)}>{String(e.details?.client_id ?? e.target_id)}</a> : e.target_id ? `${e.target_type}: ${e.target_id}` : '';

/** What an entry's details say, in one line (never a secret: the server records none). */
function describe(details: Record<string, unknown> | null): string {
  if (!details) return '';
  const changed = details.changed;
  if (Array.isArray(changed)) return changed.length ? `changed ${changed.join(', ')}` : 'no change';
  return Object.entries(details)
    .filter(([key]) => key !== 'client_id')
    .map(([key, value]) => `${key.replace(/_/g, ' ')}: ${Array.isArray(value) ? value.join(' ') || 'none' : typeof value === 'object' ? JSON.stringify(value) : String(value)}`)
    .join('; ');
}

export function AuditTable({ events, caption, showTarget = true }: { events: AuditEvent[]; caption: string; showTarget?: boolean }) {
  if (events.length === 0) return <p>No entries.</p>;
  return (
    <div class="table-wrap" tabIndex={0} role="region" aria-label={caption}>
      <table>
        <caption>{caption}</caption>
        <thead>
          <tr>
            <th scope="col">When</th>
            <th scope="col">Who</th>
            <th scope="col">Action</th>
            {showTarget && <th scope="col">Target</th>}
            <th scope="col">Details</th>
            <th scope="col">Address</th>
          </tr>
        </thead>
        <tbody>
          {events.map((e) => (
            <tr key={e.id}>
              <td>
                <Time iso={e.at} />
              </td>
              <td>{e.actor}</td>
              <td class="mono">{e.action}</td>
              {showTarget && <td>{targetLink(e)}</td>}
              <td>{describe(e.details)}</td>
              <td class="mono">{e.ip ?? ''}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
