import {
  createServer,
  type IncomingMessage,
  type Server as HttpServer,
  type ServerResponse,
  STATUS_CODES,
} from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import { DriverError, type ErrorCode } from '../driver/errors.ts';
import type { Logger } from '../shared/logger.ts';
import type { ErrorBody } from './error-mapper.ts';

type RequestListener = (req: IncomingMessage, res: ServerResponse) => void;

/** An HTTP server for the app, with the hardening every server of the service gets. */
export function createHttpServer(app: RequestListener, log: Logger): HttpServer {
  return hardenServer(createServer(app), log);
}

/**
 * What Node's HTTP server does on its own, before any route runs, made to answer like the app:
 * parser errors get the JSON error body, and `Expect` headers other than `100-continue` reach the
 * app. For every server the service creates, plain or TLS.
 */
export function hardenServer<S extends HttpServer | HttpsServer>(server: S, log: Logger): S {
  const s = server as unknown as HttpServer;
  answerClientErrorsAsJson(s, log);
  serveAnyExpectation(s);
  boundPipelining(s, log);
  return server;
}

/**
 * Requests of one connection that may wait for their answers at once. No client of the service
 * pipelines (Cinder's requests, the agent's fetch, browsers and Prometheus each wait for the
 * answer), so this only bounds a client that sends without reading. 16 rather than 32: the flood
 * below grew the service by 40-60 MB with 16 and 44-76 MB with 32 (the rest is the requests Node
 * parses before the connection closes, garbage until the next collection).
 */
export const MAX_PIPELINED = 16;

/**
 * Node's HTTP server parses every request of a chunk it reads and hands each to the app, which
 * builds and queues the answer until the client reads the ones before it: 100 sockets each sending
 * 200 `GET /openapi.json` and reading nothing took the service from 103 to 581 MB (5 MB a
 * socket) and `/healthz` to 3.7 s. Here a connection with `max` requests unanswered that sends one
 * more is closed; that request never reaches the app, and what was queued for the connection is
 * freed with it. Node's own backpressure (it stops reading a socket whose queued answers pass the
 * high-water mark) only applies to the chunks after the one in hand, so it cannot bound this alone.
 */
export function boundPipelining(server: HttpServer, log: Logger, max = MAX_PIPELINED): void {
  // Every 'request' listener so far (the app's among them) runs only for admitted requests.
  const listeners = server.listeners('request') as RequestListener[];
  server.removeAllListeners('request');
  const waiting = new WeakMap<Duplex, number>();
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const socket = req.socket;
    const n = (waiting.get(socket) ?? 0) + 1;
    if (n > max) {
      if (!socket.destroyed)
        log.warn({ max }, 'closing a connection that pipelines requests without reading the answers');
      socket.destroy();
      return;
    }
    waiting.set(socket, n);
    let done = false;
    const answered = () => {
      if (done) return;
      done = true;
      waiting.set(socket, (waiting.get(socket) ?? 1) - 1);
    };
    res.once('finish', answered);
    res.once('close', answered);
    for (const l of listeners) l.call(server, req, res);
  });
}

/**
 * Node answers a request carrying `Expect` with anything but `100-continue` with a bare 417 unless
 * the server handles 'checkExpectation' (Node docs, http "Event: 'checkExpectation'"); when it is
 * handled, 'request' is not emitted. RFC 9110 section 10.1.1 lets a server ignore an expectation it
 * does not know, and clients send them (Cinder's LightOS driver sends an empty `Expect` on every
 * call), so the request goes to the app as any other.
 */
export function serveAnyExpectation(server: HttpServer): void {
  server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => {
    server.emit('request', req, res);
  });
}

/** The status and stable code of an error Node's HTTP parser (llhttp) raised. */
function parserErrorAnswer(err: NodeJS.ErrnoException): { code: ErrorCode; message: string } {
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW':
      return { code: 'headers_too_large', message: 'the request headers are larger than the server accepts' };
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return { code: 'payload_too_large', message: 'the chunk extensions are larger than the server accepts' };
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return { code: 'request_timeout', message: 'the request did not arrive in time' };
    default: {
      // llhttp's reason ("Invalid character in chunk size", "Invalid method encountered", …), a
      // fixed text of the parser, never the client's bytes.
      const reason = (err as { reason?: unknown }).reason;
      const why = typeof reason === 'string' && reason ? reason : (err.code ?? 'parse error');
      return { code: 'invalid_request', message: `malformed HTTP request: ${why}` };
    }
  }
}

/** A complete HTTP/1.1 response with the service's JSON error body, closing the connection. */
export function rawErrorResponse(code: ErrorCode, message: string): string {
  const status = new DriverError(code, message).httpStatus;
  const body = JSON.stringify({ error: { code, message } } satisfies ErrorBody);
  return (
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n` +
    'Content-Type: application/json; charset=utf-8\r\n' +
    `Content-Length: ${Buffer.byteLength(body)}\r\n` +
    'Connection: close\r\n\r\n' +
    body
  );
}

/**
 * The client went away: a reset, or (HPE_INVALID_EOF_STATE) it closed its side in the middle of a
 * request. Nobody reads an answer; the request in flight, if any, logs the abort itself.
 */
const GONE = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ERR_STREAM_DESTROYED', 'HPE_INVALID_EOF_STATE']);

/**
 * Node emits 'clientError' for what its HTTP parser refuses (bad chunked encoding, a NUL or a space
 * in the request target, headers over `--max-http-header-size`, 16 KiB by default) and for sockets
 * that fail; without a listener it writes a bare `400 Bad Request` (431 for the headers). Here the
 * answer carries the same JSON body as every other error. As Node does itself, a response is only
 * written when the socket is writable and no response of this connection has started, since bytes
 * after a started response would corrupt what the client reads.
 */
export function answerClientErrorsAsJson(server: HttpServer, log: Logger): void {
  const inFlight = new WeakMap<Duplex, ServerResponse>();
  const answered = new WeakSet<Duplex>();
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    inFlight.set(req.socket, res);
    res.once('finish', () => {
      if (inFlight.get(req.socket) === res) inFlight.delete(req.socket);
    });
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    if (GONE.has(err.code ?? '') || !socket.writable || answered.has(socket)) {
      log.debug({ code: err.code }, 'client connection closed before a complete request');
      socket.destroy();
      return;
    }
    const started = inFlight.get(socket)?.headersSent ?? false;
    const answer = parserErrorAnswer(err);
    log.warn({ code: answer.code, parser: err.code }, 'request refused by the HTTP parser');
    if (started) {
      socket.destroy();
      return;
    }
    answered.add(socket);
    // end(), as the Node docs' own clientError example does: the response is flushed and our side
    // closed. HTTP server sockets allow half-open connections, so one the client keeps open is
    // dropped once it has been idle a moment.
    socket.end(rawErrorResponse(answer.code, answer.message));
    (socket as Duplex & { setTimeout?: (ms: number, cb: () => void) => void }).setTimeout?.(2000, () =>
      socket.destroy(),
    );
  });
}
