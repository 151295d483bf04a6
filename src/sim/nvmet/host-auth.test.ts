import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { generateDhchapSecret } from '../../driver/dhchap-key.ts';
import type { SimNodeEndpoint } from '../data-plane.ts';
import { NvmetDataPlane } from './nvmet-data-plane.ts';
import { ConfigfsStandIn } from './testing/configfs-stand-in.ts';

const NQN = 'nqn.2016-01.com.lightbitslabs:uuid:7b0c5b1e-3f0a-4c55-9b86-2f5d0cbd1a11';
const HOST = 'nqn.2014-08.org.nvmexpress:uuid:aaaaaaaa-0000-4000-8000-000000000001';
const NODES: SimNodeEndpoint[] = [{ nodeId: 'node-1', index: 0, address: '127.0.0.1', port: 4420 }];
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

async function plane(hostAuth: boolean, dhgroup?: string) {
  const fs = await ConfigfsStandIn.create({ hostAuth });
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'nvmet-auth-'));
  cleanups.push(
    () => fs.destroy(),
    () => rm(dataDir, { recursive: true, force: true }),
  );
  const dp = new NvmetDataPlane({ configfs: fs, dataDir, dhgroup });
  await dp.start(NQN, NODES);
  cleanups.unshift(() => dp.stop());
  return { fs, dp };
}

const secrets = () => ({ hostSecret: generateDhchapSecret(), ctrlSecret: generateDhchapSecret() });

describe('NvmetDataPlane host secrets (DH-HMAC-CHAP in configfs)', () => {
  it("writes dhchap_key, dhchap_ctrl_key and dhchap_hash into the host's entry, and replaces them on rotation", async () => {
    const { fs, dp } = await plane(true);
    const s1 = secrets();
    assert.equal(await dp.setHostSecrets(HOST, s1), 'written');
    const dir = `hosts/${HOST}`;
    assert.equal(await fs.read(`${dir}/dhchap_key`), s1.hostSecret);
    assert.equal(await fs.read(`${dir}/dhchap_ctrl_key`), s1.ctrlSecret);
    assert.equal(await fs.read(`${dir}/dhchap_hash`), 'hmac(sha256)');
    assert.equal(await fs.read(`${dir}/dhchap_dhgroup`), 'null', 'the kernel default is left alone');
    const s2 = secrets();
    await dp.setHostSecrets(HOST, s2);
    assert.equal(await fs.read(`${dir}/dhchap_key`), s2.hostSecret);
    assert.equal(await fs.read(`${dir}/dhchap_ctrl_key`), s2.ctrlSecret);
  });

  it('writes the DH group when one is configured', async () => {
    const { fs, dp } = await plane(true, 'ffdhe2048');
    await dp.setHostSecrets(HOST, secrets());
    assert.equal(await fs.read(`hosts/${HOST}/dhchap_dhgroup`), 'ffdhe2048');
  });

  it('a host revoked and allowed again gets its secrets back in its new entry (revoking removes hosts/<nqn>)', async () => {
    const { fs, dp } = await plane(true, 'ffdhe2048');
    const s1 = secrets();
    await dp.setHostSecrets(HOST, s1);
    await dp.setAllowedHosts([HOST]);
    await dp.setAllowedHosts([]);
    assert.equal((await fs.list('hosts')).includes(HOST), false, 'the revoke removed the entry');
    await dp.setAllowedHosts([HOST]);
    const dir = `hosts/${HOST}`;
    assert.equal(await fs.read(`${dir}/dhchap_key`), s1.hostSecret);
    assert.equal(await fs.read(`${dir}/dhchap_ctrl_key`), s1.ctrlSecret);
    assert.equal(await fs.read(`${dir}/dhchap_dhgroup`), 'ffdhe2048');
    const before = fs.writes.length;
    await dp.setAllowedHosts([HOST]);
    assert.deepEqual(fs.writes.slice(before), [], 'an entry that stayed is not rewritten');
  });

  it('a kernel without CONFIG_NVME_TARGET_AUTH is reported unsupported and nothing is written', async () => {
    const { fs, dp } = await plane(false);
    assert.equal(await dp.setHostSecrets(HOST, secrets()), 'unsupported');
    assert.deepEqual(
      fs.writes.filter((w) => w.rel.startsWith('hosts/')),
      [],
    );
  });
});
