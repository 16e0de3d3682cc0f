import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { pendingResponse, rawErrorResponse } from '../plugins/error-handler.js';

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
  const open = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    accepted += 1;
    lastConnectionAt = performance.now();
    open.add(socket);
    socket.once('close', () => open.delete(socket));
  });

  const closeIdleNow = server.closeIdleConnections.bind(server);
  draining.set(server, { open, closeIdleNow });
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

/** What answerUnfinished needs of a draining server: the connections it accepted and has not closed, and Node's own idle sweep. */
const draining = new WeakMap<Server, { open: Set<Socket>; closeIdleNow: () => void }>();

/**
 * At the shutdown deadline, before the process exits: every accepted connection still waiting
 * for its answer gets one, so none is reset by the exit. Node stops its request-timeout check when
 * the server closes, so a client still sending its request (a body or headers trickled a byte at a
 * time) would hold the drain to the deadline and then lose its connection unanswered. A request
 * still arriving gets 408 `request_timeout`; one received but not answered yet gets 503
 * `service_unavailable`; each in the management format, then the connection is ended (FIN, not a
 * reset). A connection whose response has begun is left to finish. Resolves with the number
 * answered once each of them has closed, or after `flushMs`.
 */
export async function answerUnfinished(server: Server, flushMs: number): Promise<number> {
  const state = draining.get(server);
  if (!state) return 0;
  // Connections with no request under way (Node's own idle list) are closed, not answered: a
  // keep-alive connection the deferred sweep has not reached yet must not get an unasked-for 408.
  state.closeIdleNow();
  const answered: Socket[] = [];
  for (const socket of state.open) {
    const response = pendingResponse(socket);
    if (socket.destroyed || response?.headersSent) continue;
    if (socket.writable) socket.write(rawErrorResponse(response?.req.complete ? 'service_unavailable' : 'request_timeout', randomUUID()));
    socket.end();
    answered.push(socket);
  }
  if (answered.length === 0) return 0;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    // 'close' only (it follows an 'error' too): events.once would reject on a reset.
    Promise.all(answered.map((socket) => (socket.closed ? undefined : new Promise((resolve) => socket.once('close', resolve))))),
    new Promise((resolve) => (timer = setTimeout(resolve, flushMs))),
  ]);
  clearTimeout(timer);
  return answered.length;
}
