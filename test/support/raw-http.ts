import { request as httpRequestRaw } from 'node:http';
import net from 'node:net';

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** The body parsed as JSON, or undefined when it is not JSON. */
  json: unknown;
}

/**
 * Sends `request` as raw bytes to the server at `baseUrl` and reads one HTTP/1.1 response (up to
 * its Content-Length, or until the server closes). For what an HTTP client library refuses to
 * send: NUL bytes in the target, broken chunked encoding, bodies cut short.
 */
export function rawHttp(baseUrl: string, request: string | Buffer, timeoutMs = 10_000): Promise<RawResponse> {
  const u = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(u.port || 80), u.hostname);
    let data = Buffer.alloc(0);
    let settled = false;
    const timer = setTimeout(() => finish(new Error(`no complete response within ${timeoutMs} ms`)), timeoutMs);
    const finish = (err?: Error) => {
      if (settled) return;
      const parsed = parse(data);
      if (!err && !parsed) err = new Error(`incomplete response: ${JSON.stringify(data.toString('latin1'))}`);
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(parsed!);
    };
    socket.on('connect', () => socket.write(request));
    socket.on('data', (d) => {
      data = Buffer.concat([data, d]);
      const p = parse(data);
      if (p?.complete) finish();
    });
    socket.on('error', (e) => (parse(data) ? finish() : finish(e)));
    socket.on('close', () => finish());
  });
}

function parse(data: Buffer): (RawResponse & { complete: boolean }) | null {
  let text = data.toString('utf8');
  // Interim 1xx responses (100 Continue) precede the final one.
  while (/^HTTP\/1\.[01] 1\d\d /.test(text) && text.includes('\r\n\r\n'))
    text = text.slice(text.indexOf('\r\n\r\n') + 4);
  const end = text.indexOf('\r\n\r\n');
  if (end < 0) return null;
  const [statusLine, ...lines] = text.slice(0, end).split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? '');
  if (!m) return null;
  const headers: Record<string, string> = {};
  for (const l of lines) {
    const i = l.indexOf(':');
    if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  const body = text.slice(end + 4);
  const length = headers['content-length'] === undefined ? null : Number(headers['content-length']);
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    json = undefined;
  }
  return { status: Number(m[1]), headers, body, json, complete: length !== null && Buffer.byteLength(body) >= length };
}

/**
 * One request with node:http, the body sent byte for byte (supertest serialises a Buffer body
 * as JSON when the content type is JSON). The answer's body is parsed as JSON when it is JSON.
 */
export function httpRequest(
  baseUrl: string,
  opts: { method: string; path: string; headers?: Record<string, string>; body?: string | Buffer },
): Promise<{ status: number; headers: Record<string, unknown>; body: any; text: string }> {
  const u = new URL(baseUrl);
  const headers = { ...opts.headers };
  // node:http frames a GET or DELETE body only when told its length.
  if (opts.body !== undefined && !Object.keys(headers).some((h) => h.toLowerCase() === 'content-length'))
    headers['content-length'] = String(Buffer.byteLength(opts.body));
  return new Promise((resolve, reject) => {
    const req = httpRequestRaw(
      { host: u.hostname, port: Number(u.port || 80), method: opts.method, path: opts.path, headers },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown;
          try {
            body = JSON.parse(text);
          } catch {
            body = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, text });
        });
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}
