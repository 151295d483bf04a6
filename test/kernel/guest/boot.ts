/**
 * Guest scenario `boot`: the guest environment alone, for debugging the harness. Checks what
 * every other scenario relies on: the kernel, the loaded modules, configfs, a writable run
 * folder and a writable (overlay) root.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { check, list, observe, readSys, runDir, scenario, step } from './lib.ts';

await scenario('boot', async () => {
  await step('environment', () => {
    observe('kernel', readSys('/proc/sys/kernel/osrelease'));
    observe('cmdline', readSys('/proc/cmdline'));
    observe('nvme_core.multipath', readSys('/sys/module/nvme_core/parameters/multipath'));
    observe('nvmet configfs', list('/sys/kernel/config/nvmet'));
    check(list('/sys/kernel/config/nvmet').includes('subsystems'), 'nvmet is loaded and configfs mounted');
    writeFileSync('/etc/portalis-guest-write-test', 'overlay\n');
    writeFileSync(path.join(runDir, 'hello'), 'from the guest\n');
    console.log(JSON.stringify({ kernel: readSys('/proc/sys/kernel/osrelease'), node: process.version }));
  });
});
