import { useEffect, useState } from 'preact/hooks';

/** Screens, by hash: `#/credentials`, `#/credentials/new`, `#/credentials/<id>`, `#/catalogs`, `#/audit`. */
export type Route =
  | { screen: 'credentials' }
  | { screen: 'create' }
  | { screen: 'credential'; id: string }
  | { screen: 'catalogs' }
  | { screen: 'audit' }
  | { screen: 'missing'; path: string };

export function parseRoute(hash: string): Route {
  const path = hash.replace(/^#/, '') || '/credentials';
  if (path === '/' || path === '/credentials') return { screen: 'credentials' };
  if (path === '/credentials/new') return { screen: 'create' };
  const detail = /^\/credentials\/([0-9a-f-]{36})$/.exec(path);
  if (detail) return { screen: 'credential', id: detail[1]! };
  if (path === '/catalogs') return { screen: 'catalogs' };
  if (path === '/audit') return { screen: 'audit' };
  return { screen: 'missing', path };
}

export const href = {
  credentials: '#/credentials',
  create: '#/credentials/new',
  credential: (id: string) => `#/credentials/${id}`,
  catalogs: '#/catalogs',
  audit: '#/audit',
};

export function navigate(to: string): void {
  location.hash = to;
}

/** The current route; follows the address bar (links, back and forward). */
export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.hash));
  useEffect(() => {
    const onChange = () => setRoute(parseRoute(location.hash));
    addEventListener('hashchange', onChange);
    return () => removeEventListener('hashchange', onChange);
  }, []);
  return route;
}
