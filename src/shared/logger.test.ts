import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { generateDhchapSecret } from '../driver/dhchap-key.ts';
import { createLogger } from './logger.ts';

/** The logger's redaction list, on objects shaped as the service, the LightOS adapter and the agent hold secrets. */
describe('createLogger redaction', () => {
  it('never writes a DH-HMAC-CHAP secret under any of its field names, at the top or nested', () => {
    let out = '';
    const destination = new Writable({
      write(chunk, _enc, done) {
        out += String(chunk);
        done();
      },
    });
    const log = createLogger({ level: 'info', destination });
    const secrets: string[] = [];
    const s = () => {
      const v = generateDhchapSecret();
      secrets.push(v);
      return v;
    };
    const pair = () => ({ generation: 1, host_secret: s(), ctrl_secret: s() });
    log.info({ hostSecret: s(), ctrlSecret: s(), targetSecret: s() }, 'top');
    log.info({ body: { hostSecret: s(), targetSecret: s() } }, 'a LightOS request body');
    log.info({ list: { dhchap: { current: pair(), previous: pair() } } }, 'a poll answer');
    log.info({ dhchap: { current: pair(), previous: null } }, 'the poll field');
    log.info({ entry: { dhchap_key: s(), port: { dhchap_ctrl_key: s() } } }, 'config.json');
    log.info(
      { pair: { host_secret: s(), ctrl_secret: s() }, dhchap_secret: s(), ctrl: { dhchap_ctrl_secret: s() } },
      'sysfs',
    );
    assert.equal(out.split('\n').filter(Boolean).length, 6);
    for (const v of secrets) assert.equal(out.includes(v.split(':')[2]!), false, `${v} logged: ${out}`);
    assert.match(out, /\[redacted\]/);
  });
});
