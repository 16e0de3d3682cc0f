/** Whether `hostname` (as `URL.hostname` gives it) names this machine. */
export function isLoopback(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(hostname);
}

/**
 * Whether a URL may carry trust material: https, or plain http to a loopback
 * host (development), or any http when the caller opted in on purpose.
 */
export function isSafeOrigin(url: URL, allowInsecureHttp: boolean): boolean {
  if (url.protocol === 'https:') return true;
  return url.protocol === 'http:' && (allowInsecureHttp || isLoopback(url.hostname));
}
