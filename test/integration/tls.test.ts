import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import os from 'node:os';
import path from 'node:path';
import type { TLSSocket } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { loadDaemonSettings } from '../../src/agent/config.ts';
import { HttpServiceClient, ServiceError } from '../../src/agent/service-client.ts';
import { loadConfig } from '../../src/config.ts';
import { type RunningService, startService } from '../../src/server/service.ts';
import { silentLogger } from '../../src/shared/logger.ts';
import { cleanEnv, startCli } from '../support/cli.ts';
import { createTestDatabase } from '../support/db.ts';

/**
 * HTTPS on the service port, over real TLS on loopback, with a CA and certificates made by the
 * openssl CLI for the test: the agent's client verifies the service with PORTALIS_CA_FILE and
 * refuses it without; a reload (SIGHUP) serves a new certificate to new connections while an
 * open keep-alive connection goes on with the old one.
 */

const dir = mkdtempSync(path.join(os.tmpdir(), 'portalis-tls-'));
const file = (name: string) => path.join(dir, name);
const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });

/** `openssl req` makes a new unencrypted P-256 key, written to the file named next. */
const NEW_EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout'];

function makeCa(): void {
  openssl(
    'req',
    '-x509',
    ...NEW_EC_KEY,
    'ca.key',
    '-out',
    'ca.pem',
    '-days',
    '2',
    '-subj',
    '/CN=Portalis test CA',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  );
}

/** A service certificate for 127.0.0.1 signed by the test CA, with this serial; written to `<name>.pem`/`.key`. */
function makeCert(name: string, serial: number): void {
  writeFileSync(file('ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  openssl('req', ...NEW_EC_KEY, `${name}.key`, '-out', `${name}.csr`, '-subj', '/CN=127.0.0.1');
  openssl(
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-set_serial',
    String(serial),
    '-days',
    '2',
    '-extfile',
    'ext.cnf',
    '-out',
    `${name}.pem`,
  );
}

/** Installs `<name>.pem`/`.key` as the files the service is configured with. */
function install(name: string): void {
  writeFileSync(file('service.pem'), readFileSync(file(`${name}.pem`)));
  writeFileSync(file('service.key'), readFileSync(file(`${name}.key`)));
}

interface Answer {
  status: number;
  body: unknown;
  serial: string;
  reused: boolean;
}

/** One HTTPS request through `agent`, with the certificate serial the server presented. */
function get(url: string, agent: Agent, headers: Record<string, string> = {}, method = 'GET', body?: unknown) {
  return new Promise<Answer>((resolve, reject) => {
    const req = request(url, { agent, method, headers: { 'content-type': 'application/json', ...headers } }, (res) => {
      const serial = (res.socket as TLSSocket).getPeerCertificate().serialNumber;
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () =>
        resolve({ status: res.statusCode!, body: text ? JSON.parse(text) : null, serial, reused: req.reusedSocket }),
      );
    });
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

// openssl prints serials in hex, upper case; Node's getPeerCertificate does too.
const hex = (n: number) => n.toString(16).toUpperCase().padStart(2, '0');

describe('TLS on the service port', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let svc: RunningService;
  let ca: string;
  const adminToken = 'tls-test-admin-token-0123456789';

  before(async () => {
    makeCa();
    makeCert('one', 1);
    makeCert('two', 2);
    makeCert('mismatch', 3);
    install('one');
    ca = readFileSync(file('ca.pem'), 'utf8');
    database = await createTestDatabase();
    svc = await startService(
      loadConfig({
        DATABASE_URL: database.url,
        PORTALIS_PORT: '0',
        PORTALIS_ADMIN_TOKEN: adminToken,
        PORTALIS_TLS_CERT: file('service.pem'),
        PORTALIS_TLS_KEY: file('service.key'),
      }),
      silentLogger,
    );
  });
  after(async () => {
    await svc?.close();
    await database?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  const admin = { authorization: `Bearer ${adminToken}` };

  async function hostToken(agent: Agent): Promise<string> {
    const nqn = `nqn.2014-08.org.nvmexpress:uuid:${crypto.randomUUID()}`;
    const r = await get(`${svc.url}/v1/hosts`, agent, admin, 'POST', { nqn });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return (r.body as { token: string }).token;
  }

  it('serves https; the agent client verifies it with the CA file and refuses it without', async () => {
    assert.match(svc.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    const token = await hostToken(new Agent({ ca }));
    const trusted = new HttpServiceClient({ url: svc.url, token, ca });
    const list = await trusted.listAttachments(null, 0);
    assert.deepEqual(list.attachments, []);

    const untrusted = new HttpServiceClient({ url: svc.url, token });
    await assert.rejects(untrusted.listAttachments(null, 0), (e: unknown) => {
      assert.ok(e instanceof ServiceError);
      assert.equal(e.status, null, 'no answer: the TLS handshake failed');
      assert.match(e.message, /CERT|SIGNATURE|ISSUER/);
      assert.doesNotMatch(e.message, new RegExp(token), 'the token is not in the error');
      return true;
    });
    // A CA file that is not the service's issuer is refused as well.
    const otherCa = new HttpServiceClient({ url: svc.url, token, ca: readFileSync(file('one.pem'), 'utf8') });
    await assert.rejects(otherCa.listAttachments(null, 0), ServiceError);
  });

  it('a reload serves the new certificate to new connections; an open keep-alive connection goes on', async () => {
    install('one');
    await svc.reloadTls();
    const kept = new Agent({ ca, keepAlive: true, maxSockets: 1 });
    const first = await get(`${svc.url}/healthz`, kept);
    assert.equal(first.status, 200);
    assert.equal(first.serial, hex(1));

    install('two');
    await svc.reloadTls();
    const onOld = await get(`${svc.url}/v1/hosts`, kept, admin);
    assert.equal(onOld.status, 200);
    assert.equal(onOld.reused, true, 'the same connection, not a new one');
    assert.equal(onOld.serial, hex(1), 'the open connection keeps the certificate it was made with');
    const fresh = await get(`${svc.url}/healthz`, new Agent({ ca }));
    assert.equal(fresh.status, 200);
    assert.equal(fresh.serial, hex(2), 'a new connection gets the new certificate');
    kept.destroy();
  });

  it('a reload with a key that does not fit the certificate is refused and the current pair stays', async () => {
    install('two');
    await svc.reloadTls();
    writeFileSync(file('service.pem'), readFileSync(file('two.pem')));
    writeFileSync(file('service.key'), readFileSync(file('mismatch.key')));
    await assert.rejects(svc.reloadTls(), /PORTALIS_TLS_CERT/);
    const r = await get(`${svc.url}/healthz`, new Agent({ ca }));
    assert.deepEqual([r.status, r.serial], [200, hex(2)]);
  });

  it('start-up refuses a certificate without its key, and a pair that does not match', async () => {
    const bad = [
      [{ PORTALIS_TLS_CERT: file('one.pem') }, /PORTALIS_TLS_KEY: required with PORTALIS_TLS_CERT/],
      [{ PORTALIS_TLS_KEY: file('one.key') }, /PORTALIS_TLS_CERT: required with PORTALIS_TLS_KEY/],
    ] as const;
    for (const [env, message] of bad) assert.throws(() => loadConfig({ ...env }), message);
    const env = { DATABASE_URL: database.url, PORTALIS_PORT: '0', PORTALIS_ADMIN_TOKEN: adminToken };
    const mismatched = loadConfig({
      ...env,
      PORTALIS_TLS_CERT: file('one.pem'),
      PORTALIS_TLS_KEY: file('mismatch.key'),
    });
    await assert.rejects(startService(mismatched, silentLogger), /PORTALIS_TLS_CERT: .*one\.pem with .*mismatch\.key/);
    const missing = loadConfig({ ...env, PORTALIS_TLS_CERT: file('nope.pem'), PORTALIS_TLS_KEY: file('one.key') });
    await assert.rejects(startService(missing, silentLogger), /PORTALIS_TLS_CERT: cannot read .*nope\.pem: ENOENT/);
  });

  it("the agent's PORTALIS_CA_FILE must be a readable PEM certificate file", () => {
    const base = { PORTALIS_URL: svc.url, PORTALIS_TOKEN: 'pth_x' };
    assert.equal(loadDaemonSettings({ ...base, PORTALIS_CA_FILE: file('ca.pem') }).caPem, ca);
    assert.equal(loadDaemonSettings(base).caPem, undefined);
    assert.throws(
      () => loadDaemonSettings({ ...base, PORTALIS_CA_FILE: file('nope.pem') }),
      /PORTALIS_CA_FILE: cannot read .*nope\.pem: ENOENT/,
    );
    assert.throws(
      () => loadDaemonSettings({ ...base, PORTALIS_CA_FILE: file('ext.cnf') }),
      /PORTALIS_CA_FILE: .*holds no PEM certificate/,
    );
  });

  it('portalis serve re-reads the certificate on SIGHUP', async () => {
    install('one');
    const p = startCli(
      ['serve'],
      cleanEnv({
        DATABASE_URL: database.url,
        PORTALIS_PORT: '0',
        PORTALIS_ADMIN_TOKEN: adminToken,
        PORTALIS_TLS_CERT: file('service.pem'),
        PORTALIS_TLS_KEY: file('service.key'),
        PORTALIS_DATA_DIR: dir,
      }),
    );
    try {
      const [, url] = await p.waitFor(/listening on (https:\/\/127\.0\.0\.1:\d+)/);
      const kept = new Agent({ ca, keepAlive: true, maxSockets: 1 });
      assert.equal((await get(`${url}/healthz`, kept)).serial, hex(1));
      install('two');
      p.child.kill('SIGHUP');
      await p.waitFor(/TLS certificate reloaded/);
      const onOld = await get(`${url}/healthz`, kept);
      assert.deepEqual([onOld.status, onOld.reused, onOld.serial], [200, true, hex(1)]);
      assert.equal((await get(`${url}/healthz`, new Agent({ ca }))).serial, hex(2));
      kept.destroy();
    } finally {
      assert.equal(await p.stop(), 0);
    }
  });
});
