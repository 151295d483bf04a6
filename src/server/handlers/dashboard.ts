import { readFile } from 'node:fs/promises';
import { cacheOnSuccess } from '../../driver/deps.ts';
import type { BytesReply, ErrorReply, Handlers } from '../call.ts';
import type { ServiceMetrics } from '../metrics.ts';

const DIR = new URL('../../dashboard/', import.meta.url);

/** The dashboard's files: a fixed list (the spec's enum), never a path from the request. */
const ASSETS: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'style.css': 'text/css; charset=utf-8',
};

/**
 * The page holds no data and no token: it asks for the admin token and calls the API with it.
 * Everything is served from here (no CDN), and the policy forbids any other origin.
 */
const PAGE_HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; " +
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache',
};

/**
 * Each file read once, on its first request, and that one buffer sent to every later one: the page
 * needs no token, and reading it per request let anyone make the service allocate a copy per request.
 * A failed read is not kept; the next request reads again.
 */
const FILES = Object.fromEntries(
  Object.keys(ASSETS).map((name) => [name, cacheOnSuccess(() => readFile(new URL(name, DIR)))]),
);

async function asset(name: string): Promise<BytesReply | ErrorReply> {
  const type = ASSETS[name];
  const file = FILES[name];
  if (!type || !file) return { status: 404, body: { error: { code: 'not_found', message: 'no such file' } } };
  return { status: 200, body: await file(), contentType: type, headers: PAGE_HEADERS };
}

export function dashboardHandlers(
  metrics: ServiceMetrics | undefined,
): Handlers<'getDashboard' | 'getDashboardAsset' | 'getMetrics'> {
  return {
    getDashboard: () => asset('index.html'),
    getDashboardAsset: (c) => asset(c.params.file),
    async getMetrics() {
      if (!metrics) return { status: 404, body: { error: { code: 'not_found', message: 'metrics are off' } } };
      const m = await metrics.scrape();
      return { status: 200, body: m.text, contentType: m.contentType };
    },
  };
}
