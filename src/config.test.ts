import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig, plainSecretsWarning } from './config.ts';

describe('loadConfig', () => {
  it('has working defaults with nothing set', () => {
    const c = loadConfig({}, '/srv');
    assert.equal(c.port, 8080);
    assert.equal(c.host, '127.0.0.1');
    assert.equal(c.adminToken, null);
    assert.equal(c.databaseUrl, null);
    assert.equal(c.dataDir, '/srv/.portalis');
    assert.equal(c.backend, 'sim');
    assert.equal(c.simUrl, null);
    assert.equal(c.defaultReplicas, 3);
    assert.equal(c.lightos.requestTimeoutMs, 30000);
    assert.equal(c.lightos.operationTimeoutMs, null);
    assert.equal(c.lightos.pollIntervalMs, 100);
    assert.equal(c.lightos.tlsVerify, true);
  });

  it('reads lightos settings', () => {
    const c = loadConfig({
      PORTALIS_BACKEND: 'lightos',
      PORTALIS_LIGHTOS_ENDPOINTS: 'https://10.0.0.1:443, https://10.0.0.2:443/',
      PORTALIS_LIGHTOS_JWT: 'jwt',
      PORTALIS_LIGHTOS_TLS_VERIFY: 'false',
    });
    assert.deepEqual(c.lightos.endpoints, ['https://10.0.0.1:443', 'https://10.0.0.2:443']);
    assert.equal(c.lightos.jwt, 'jwt');
    assert.equal(c.lightos.pollIntervalMs, 1000);
    assert.equal(c.lightos.tlsVerify, false);
  });

  const bad: [Record<string, string>, string][] = [
    [{ PORTALIS_PORT: 'eighty' }, 'PORTALIS_PORT'],
    [{ PORTALIS_PORT: '70000' }, 'PORTALIS_PORT'],
    [{ PORTALIS_BACKEND: 'ceph' }, 'PORTALIS_BACKEND'],
    [{ PORTALIS_BACKEND: 'lightos' }, 'PORTALIS_LIGHTOS_ENDPOINTS'],
    [{ PORTALIS_LIGHTOS_ENDPOINTS: 'ftp://x' }, 'PORTALIS_LIGHTOS_ENDPOINTS'],
    [{ PORTALIS_ADMIN_TOKEN: 'short' }, 'PORTALIS_ADMIN_TOKEN'],
    [{ DATABASE_URL: 'mysql://x' }, 'DATABASE_URL'],
    [{ PORTALIS_SIM_URL: 'not a url' }, 'PORTALIS_SIM_URL'],
    [{ PORTALIS_DEFAULT_REPLICAS: '4' }, 'PORTALIS_DEFAULT_REPLICAS'],
    [{ PORTALIS_LIGHTOS_TLS_VERIFY: 'maybe' }, 'PORTALIS_LIGHTOS_TLS_VERIFY'],
  ];
  for (const [env, variable] of bad) {
    it(`rejects ${JSON.stringify(env)} naming ${variable}`, () => {
      assert.throws(
        () => loadConfig(env),
        (e) => e instanceof ConfigError && e.variable === variable && e.message.startsWith(variable),
      );
    });
  }
});

describe('loadConfig: capabilities settings', () => {
  it('defaults: backend name portalis, 60 s refresh, 0 % reserved; and reads the variables', () => {
    assert.deepEqual(loadConfig({}).capabilities, {
      backendName: 'portalis',
      refreshMs: 60_000,
      reservedPercentage: 0,
    });
    const c = loadConfig({
      PORTALIS_VOLUME_BACKEND_NAME: 'lightos-rack2',
      PORTALIS_CAPABILITIES_REFRESH_MS: '5000',
      PORTALIS_RESERVED_PERCENTAGE: '10',
    });
    assert.deepEqual(c.capabilities, { backendName: 'lightos-rack2', refreshMs: 5000, reservedPercentage: 10 });
  });

  for (const [env, variable] of [
    [{ PORTALIS_CAPABILITIES_REFRESH_MS: '-1' }, 'PORTALIS_CAPABILITIES_REFRESH_MS'],
    [{ PORTALIS_RESERVED_PERCENTAGE: '101' }, 'PORTALIS_RESERVED_PERCENTAGE'],
    [{ PORTALIS_VOLUME_BACKEND_NAME: 'has space' }, 'PORTALIS_VOLUME_BACKEND_NAME'],
  ] as const) {
    it(`rejects ${JSON.stringify(env)} naming ${variable}`, () => {
      assert.throws(
        () => loadConfig(env),
        (e) => e instanceof ConfigError && e.variable === variable,
      );
    });
  }
});

describe('loadConfig: health settings', () => {
  it('defaults: 7 days of path-health history, no metrics token; and reads the variables', () => {
    assert.equal(loadConfig({}).eventRetentionDays, 7);
    assert.equal(loadConfig({}).metricsToken, null);
    const c = loadConfig({ PORTALIS_EVENT_RETENTION_DAYS: '30', PORTALIS_METRICS_TOKEN: 'scrape-token-0123456789' });
    assert.equal(c.eventRetentionDays, 30);
    assert.equal(c.metricsToken, 'scrape-token-0123456789');
  });

  for (const [env, variable] of [
    [{ PORTALIS_EVENT_RETENTION_DAYS: '0' }, 'PORTALIS_EVENT_RETENTION_DAYS'],
    [{ PORTALIS_EVENT_RETENTION_DAYS: 'week' }, 'PORTALIS_EVENT_RETENTION_DAYS'],
    [{ PORTALIS_METRICS_TOKEN: 'short' }, 'PORTALIS_METRICS_TOKEN'],
  ] as const) {
    it(`rejects ${JSON.stringify(env)} naming ${variable}`, () => {
      assert.throws(
        () => loadConfig(env),
        (e) => e instanceof ConfigError && e.variable === variable,
      );
    });
  }
});

describe('loadConfig: portal refresh', () => {
  it('defaults to 30 s and reads PORTALIS_PORTAL_REFRESH_MS', () => {
    assert.equal(loadConfig({}).portalRefreshMs, 30_000);
    assert.equal(loadConfig({ PORTALIS_PORTAL_REFRESH_MS: '500' }).portalRefreshMs, 500);
  });

  for (const value of ['0', '99', 'soon', '86400001']) {
    it(`rejects PORTALIS_PORTAL_REFRESH_MS=${value}`, () => {
      assert.throws(
        () => loadConfig({ PORTALIS_PORTAL_REFRESH_MS: value }),
        (e) => e instanceof ConfigError && e.variable === 'PORTALIS_PORTAL_REFRESH_MS',
      );
    });
  }

  it('in-band auth is off by default; required without a secrets key stops start-up naming the key', () => {
    const c = loadConfig({});
    assert.equal(c.inbandAuth, 'off');
    assert.equal(c.secrets, null);
    assert.throws(
      () => loadConfig({ PORTALIS_INBAND_AUTH: 'required' }),
      (e: unknown) => e instanceof ConfigError && e.variable === 'PORTALIS_SECRETS_KEY',
    );
    assert.throws(
      () => loadConfig({ PORTALIS_INBAND_AUTH: 'yes' }),
      (e: unknown) => e instanceof ConfigError && e.variable === 'PORTALIS_INBAND_AUTH',
    );
    const on = loadConfig({
      PORTALIS_INBAND_AUTH: 'required',
      PORTALIS_SECRETS_KEY: Buffer.alloc(32, 7).toString('base64'),
    });
    assert.equal(on.inbandAuth, 'required');
    assert.ok(on.secrets);
    assert.equal(
      JSON.stringify(on).includes(Buffer.alloc(32, 7).toString('base64')),
      false,
      'the key is not printable',
    );
  });
});

describe('plainSecretsWarning', () => {
  it('warns, naming PORTALIS_TLS_CERT, when auth is required without TLS off loopback', () => {
    const tls = { certFile: '/c.pem', keyFile: '/k.pem' };
    const w = (inbandAuth: 'off' | 'required', host: string, withTls = false) =>
      plainSecretsWarning({ inbandAuth, host, tls: withTls ? tls : null });
    assert.match(w('required', '0.0.0.0') ?? '', /PORTALIS_TLS_CERT/);
    assert.match(w('required', '10.0.0.5') ?? '', /plain HTTP/);
    assert.match(w('required', '::') ?? '', /PORTALIS_TLS_CERT/);
    assert.equal(w('required', '0.0.0.0', true), null, 'TLS on');
    assert.equal(w('off', '0.0.0.0'), null, 'auth off');
    for (const lo of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost']) assert.equal(w('required', lo), null, lo);
  });
});
