import type { Server } from 'node:http';
import { performance } from 'node:perf_hooks';

export interface DrainOptions {
  /** On close, the listener stays open until its accept queue is empty and no connection has arrived for this long (ms)… */
  acceptQuietMs: number;
  /** …or at most this long (ms) after close was called. */
  acceptMaxMs: number;
  /** Once the listener is closed, a connection silent this long (ms) is closed; one that sends a request is served. */
  drainIdleMs: number;
}

/**
 * Makes `server.close()` stop without resetting a connection it accepted.
 *
 * Node's own `close()` does two things that reset connections whose client
 * already holds an established socket:
 * - it closes the listening socket at once, and the kernel resets every
 *   connection still waiting in the accept queue. The queue fills whenever
 *   the event loop is busy (PGlite runs queries on it, so a burst of new
 *   connections waits there for a while);
 * - it destroys every connection it deems idle, including one accepted a
 *   moment ago whose request bytes are still unread, and a keep-alive
 *   connection whose next request is on its way: closing a socket with unread
 *   data sends a reset.
 *
 * Here `close()` first keeps accepting until the accept queue is empty (a
 * turn of the event loop accepted nothing: Node accepts one queued connection
 * per turn) and no connection has arrived for `acceptQuietMs` (at most
 * `acceptMaxMs`), then closes the listener. Connections already accepted are served (Fastify answers each
 * request with `Connection: close` once closing, so each ends after its
 * response); those still silent after `drainIdleMs` are closed by Node's own
 * idle check, which spares a connection in the middle of a request.
 */
export function drainOnClose(server: Server, options: DrainOptions): void {
  let accepted = 0;
  let lastConnectionAt = Number.NEGATIVE_INFINITY;
  server.on('connection', () => {
    accepted += 1;
    lastConnectionAt = performance.now();
  });

  const closeIdleNow = server.closeIdleConnections.bind(server);
  let sweep: NodeJS.Timeout | undefined;
  // http.Server#close calls this: the sweep is deferred, not done at once.
  server.closeIdleConnections = () => {
    if (sweep) return;
    // From a timer, setImmediate runs right after a poll phase: bytes a client had sent by then are
    // read and parsed, so a connection the loop was too busy to read is not mistaken for a silent one.
    sweep = setTimeout(() => setImmediate(closeIdleNow), options.drainIdleMs);
    server.once('close', () => clearTimeout(sweep));
  };

  const closeNow = server.close.bind(server);
  let closing = false;
  server.close = (callback?: (err?: Error) => void) => {
    if (closing || !server.listening) return closeNow(callback);
    closing = true;
    const startedAt = performance.now();
    // Node accepts one queued connection per turn of the event loop. A turn in which none was
    // accepted (the immediate before and after it saw the same count) found the accept queue empty.
    const check = () =>
      setImmediate(() => {
        const before = accepted;
        setImmediate(() => {
          const now = performance.now();
          const drained = accepted === before && now - lastConnectionAt >= options.acceptQuietMs;
          if (drained || now - startedAt >= options.acceptMaxMs) closeNow(callback);
          else setTimeout(check, 10);
        });
      });
    check();
    return server;
  };
}
