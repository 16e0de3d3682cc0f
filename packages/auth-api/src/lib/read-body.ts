import type { Readable } from 'node:stream';
import { errorCodes, type FastifyBodyParser, type FastifyRequest } from 'fastify';

/** Why a body could not be read: over the limit, or its connection failed before it was whole. */
export type BodyReadFailure = 'too-large' | 'gone';

/**
 * A request body as UTF-8 text, at most `limit` bytes: a declared Content-Length over the limit
 * is refused before a byte is read, a body that grows past it as soon as it does.
 *
 * A body in one chunk (the usual) is kept as it came; one in more is copied into a single buffer
 * as it arrives, never kept as the chunks Node hands over. Chunked encoding lets a client send a
 * byte per chunk, and every chunk kept (a Buffer, or Fastify's own reader's string pieces) costs
 * some 190 bytes of heap: a 64 KiB body sent that way held 12 MB until the request timed out, and
 * 600 such logins from one address took the server past its heap limit (attacker review 6).
 */
export function readBody(stream: Readable, contentLength: string | undefined, limit: number, done: (err: BodyReadFailure | null, text?: string) => void): void {
  const declared = Number(contentLength);
  if (declared > limit) return done('too-large');
  let body: Buffer = EMPTY;
  let length = 0;
  // Whether `body` is a buffer of ours (from the second chunk on) rather than the first chunk itself.
  let owned = false;
  const stop = () => {
    stream.off('data', onData);
    stream.off('end', onEnd);
    // Still listened to: a reset after the answer must not become an uncaught error.
    stream.on('error', ignore);
    stream.off('error', onError);
  };
  function onData(chunk: Buffer) {
    const end = length + chunk.length;
    if (end > limit) {
      stop();
      return done('too-large');
    }
    if (length === 0) body = chunk;
    else {
      if (!owned || end > body.length) {
        // Twice as much room each time it runs out (the copies stay linear in the body's length),
        // never sized by the declared length: a client declaring the limit and sending two bytes
        // holds about a kilobyte, not the limit.
        const grown = Buffer.allocUnsafe(Math.min(limit, Math.max(end, 2 * length, 1024)));
        body.copy(grown, 0, 0, length);
        body = grown;
        owned = true;
      }
      chunk.copy(body, length);
    }
    length = end;
  }
  function onEnd() {
    stop();
    done(null, body.toString('utf8', 0, length));
  }
  function onError() {
    stop();
    done('gone');
  }
  stream.on('data', onData);
  stream.on('end', onEnd);
  stream.on('error', onError);
}

type ParserDone = (err: Error | null, body?: unknown) => void;
const EMPTY = Buffer.alloc(0);
function ignore() {}

/**
 * Fastify's JSON parsing (`parseText`, from `app.getDefaultJsonParser`) of a body read by
 * `readBody` within the route's body limit, in place of Fastify's own reader: the same answers
 * (413 FST_ERR_CTP_BODY_TOO_LARGE, 400 for malformed or empty JSON), without the chunks.
 */
export function boundedJsonParser(parseText: FastifyBodyParser<string>) {
  const parse = parseText as (request: FastifyRequest, body: string, done: ParserDone) => void;
  return (request: FastifyRequest, payload: Readable, done: ParserDone): void => {
    readBody(payload, request.headers['content-length'], request.routeOptions.bodyLimit, (err, text) => {
      if (err === 'too-large') return done(new errorCodes.FST_ERR_CTP_BODY_TOO_LARGE());
      // The connection is gone: nothing will be answered; Fastify's reader fails the request the same way.
      if (err === 'gone') return done(new errorCodes.FST_ERR_CTP_INVALID_CONTENT_LENGTH());
      parse(request, text!, done);
    });
  };
}
