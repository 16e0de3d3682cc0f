import { useEffect, useState } from 'preact/hooks';
import { type Problem, problemsOf } from './api.js';
import { SessionEnded, useSession } from './session.js';

/** One page of a cursor-paged listing: its rows, and the cursor of the next page (null on the last). */
export interface Page<T> {
  rows: T[];
  next: string | null;
}

export interface PagedList<F, T> {
  /** The current page's rows; null while it loads. */
  rows: T[] | null;
  /** Why the page could not be loaded (then `rows` is empty). */
  problems: Problem[];
  /** 1 for the first page. */
  page: number;
  hasNext: boolean;
  /** Shows the first page under these filters (again, when they did not change). */
  apply(filters: F): void;
  previous(): void;
  next(): void;
}

/**
 * A listing paged by the API's opaque cursors, under filters the user applies: keeps the cursors
 * of the pages seen so far (so Previous works without the API paging backwards) and loads the
 * page on top. `load` fetches one page through the session (`session.call`).
 */
export function usePagedList<F, T>(initial: F, load: (filters: F, cursor: string | undefined) => Promise<Page<T>>): PagedList<F, T> {
  const session = useSession();
  const [applied, setApplied] = useState(initial);
  // Cursors of the pages seen so far: [undefined (first), cursor of page 2, …].
  const [cursors, setCursors] = useState<(string | undefined)[]>([undefined]);
  const [rows, setRows] = useState<T[] | null>(null);
  const [next, setNext] = useState<string | null>(null);
  const [problems, setProblems] = useState<Problem[]>([]);

  useEffect(() => {
    // An answer that comes after the filters or the page changed is dropped.
    let live = true;
    setProblems([]);
    setRows(null);
    load(applied, cursors[cursors.length - 1]).then(
      (page) => {
        if (!live) return;
        setRows(page.rows);
        setNext(page.next);
      },
      (err) => {
        if (!live || err instanceof SessionEnded) return;
        setRows([]);
        setNext(null);
        setProblems(problemsOf(err));
      },
    );
    return () => {
      live = false;
    };
  }, [session, applied, cursors]);

  return {
    rows,
    problems,
    page: cursors.length,
    hasNext: Boolean(next),
    apply: (filters) => {
      setApplied(filters);
      setCursors([undefined]);
    },
    previous: () => setCursors(cursors.slice(0, -1)),
    next: () => {
      if (next) setCursors([...cursors, next]);
    },
  };
}
