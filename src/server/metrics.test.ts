import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DriverError } from '../driver/errors.ts';
import type { StorageBackend } from '../driver/ports.ts';
import { instrumentBackend, ServiceMetrics } from './metrics.ts';

describe('backend metrics', () => {
  it('count the adapter’s errors by code, and not a failure of a promise the caller passed in', async () => {
    const m = new ServiceMetrics(null);
    const fake = {
      async attachAccess(_uuid: string, _host: string, ready?: Promise<unknown>) {
        await ready;
        return { changed: true, volume: {}, paths: [] };
      },
      async getVolume() {
        throw new DriverError('backend_unavailable', 'LightOS getVolume(volume x): refused');
      },
    };
    const backend = instrumentBackend(fake as unknown as StorageBackend, m);
    const refused = new Error('the attaching insert failed (a database error)');
    await assert.rejects(backend.attachAccess('u', 'h', Promise.reject(refused)), (e) => e === refused);
    await assert.rejects(backend.getVolume('u'), { code: 'backend_unavailable' });
    const text = (await m.scrape()).text;
    const errors = text.split('\n').filter((l) => l.startsWith('portalis_backend_errors_total{'));
    assert.deepEqual(errors, ['portalis_backend_errors_total{operation="getVolume",code="backend_unavailable"} 1']);
    assert.match(text, /portalis_backend_calls_total\{operation="attachAccess"\} 1/);
  });
});
