/**
 * The fake kernel's model rendered into its MemFs as the real sysfs and /dev show it (kernel
 * 6.1, with the switches of FakeKernelOptions for older layouts): controllers under
 * nvme-fabrics, subsystems with their head disks, per-path devices, dm maps with their
 * slaves/holders links. Written attributes (iopolicy, delete_controller) call back into the model.
 */
import type { Ctrl, DmMap, FakeKernel, Head, Subsys } from './kernel.ts';

/** Rebuilds every NVMe and dm entry of /sys and /dev from the kernel's model. */
export function renderSysfs(k: FakeKernel): void {
  const fs = k.fs;
  for (const p of [
    '/sys/devices/virtual/nvme-fabrics',
    '/sys/devices/virtual/nvme-subsystem',
    '/sys/class/nvme',
    '/sys/class/nvme-fabrics',
    '/sys/class/nvme-subsystem',
    '/dev/mapper',
  ])
    fs.rm(p);
  for (const n of fs.list('/sys/block')) if (/^(nvme|dm-)/.test(n)) fs.rm(`/sys/block/${n}`);
  for (const n of fs.list('/sys/devices/virtual/block'))
    if (n.startsWith('dm-')) fs.rm(`/sys/devices/virtual/block/${n}`);
  for (const n of fs.list('/sys/dev/block')) if (/^(259|253):/.test(n)) fs.rm(`/sys/dev/block/${n}`);
  for (const n of fs.list('/dev')) if (/^(nvme|ng|dm-)/.test(n)) fs.rm(`/dev/${n}`);
  fs.mkdirp('/sys/class/nvme-subsystem');
  fs.mkdirp('/sys/class/nvme');
  fs.mkdirp('/sys/block');
  fs.mkdirp('/dev/mapper');

  const blockDirs = new Map<string, string>(); // block name → its real sysfs dir
  for (const ctrl of k.ctrls.values()) renderCtrl(k, ctrl);
  for (const subsys of k.subsystems.values()) {
    const sdir = `/sys/devices/virtual/nvme-subsystem/nvme-subsys${subsys.instance}`;
    fs.writeFile(`${sdir}/subsysnqn`, `${subsys.nqn}\n`);
    fs.writeFile(`${sdir}/subsystype`, 'nvm\n');
    fs.writeFile(`${sdir}/model`, 'Portalis fake\n');
    fs.writeFile(`${sdir}/iopolicy`, `${subsys.iopolicy}\n`, {
      onWrite: (v) => {
        if (!['numa', 'round-robin', 'queue-depth'].includes(v.trim()))
          throw Object.assign(new Error('EINVAL'), { code: 'EINVAL' });
        subsys.iopolicy = v.trim();
        k.render();
      },
    });
    fs.link(`/sys/class/nvme-subsystem/nvme-subsys${subsys.instance}`, sdir);
    for (const ctrl of k.ctrls.values()) {
      if (ctrl.nqn === subsys.nqn)
        fs.link(`${sdir}/nvme${ctrl.instance}`, `/sys/devices/virtual/nvme-fabrics/ctl/nvme${ctrl.instance}`);
    }
    for (const head of subsys.heads.values()) renderHead(k, subsys, head, sdir, blockDirs);
  }
  for (const m of k.maps.values()) renderMap(k, m, blockDirs);
  for (const [dev, holders] of k.extraHolders) {
    const dir = blockDirs.get(dev);
    for (const h of holders) if (dir) fs.link(`${dir}/holders/${h}`, `/sys/devices/virtual/block/${h}`);
  }
}

function renderCtrl(k: FakeKernel, ctrl: Ctrl): void {
  const fs = k.fs;
  const dir = `/sys/devices/virtual/nvme-fabrics/ctl/nvme${ctrl.instance}`;
  const p = ctrl.portal;
  const kv = [`traddr=${ctrl.traddr}`, `trsvcid=${p.port}`];
  if (k.opts.addressStyle === 'src_addr' && p.transport === 'tcp')
    kv.push(`src_addr=${ctrl.hostTraddr ?? k.opts.srcAddr}`);
  if (k.opts.addressStyle === 'host_traddr') kv.push(`host_traddr=${ctrl.hostTraddr ?? k.opts.srcAddr}`);
  fs.writeFile(`${dir}/address`, `${kv.join(k.opts.addressStyle === 'space' ? ' ' : ',')}\n`);
  fs.writeFile(`${dir}/state`, `${ctrl.state}\n`);
  fs.writeFile(`${dir}/subsysnqn`, `${ctrl.nqn}\n`);
  fs.writeFile(`${dir}/transport`, `${p.transport}\n`);
  fs.writeFile(`${dir}/cntlid`, `${ctrl.cntlid}\n`);
  if (k.opts.deleteController)
    fs.writeFile(`${dir}/delete_controller`, '', { mode: 0o200, onWrite: () => k.disconnect(ctrl) });
  if (k.opts.ctrlHostnqn) fs.writeFile(`${dir}/hostnqn`, `${ctrl.hostNqn}\n`);
  // 6.1 `nvme_ctrl_dhchap_secret_store`: EINVAL unless the text starts with `DHHC-1:` and the
  // controller was connected with a secret; otherwise the key is replaced and re-authentication runs.
  for (const [attr, field] of [
    ['dhchap_secret', 'dhchapSecret'],
    ['dhchap_ctrl_secret', 'dhchapCtrlSecret'],
  ] as const)
    fs.writeFile(`${dir}/${attr}`, `${ctrl[field]}\n`, {
      mode: 0o644,
      onWrite: (v) => {
        const name = `nvme${ctrl.instance}`;
        if (k.failDhchapWrite.has(name) || (attr === 'dhchap_ctrl_secret' && k.failDhchapCtrlWrite.has(name)))
          throw Object.assign(new Error('EIO'), { code: 'EIO' });
        if (!v.trim().startsWith('DHHC-1:') || ctrl[field] === 'none')
          throw Object.assign(new Error('EINVAL'), { code: 'EINVAL' });
        ctrl[field] = v.trim();
        k.render();
      },
    });
  for (const [k, v] of Object.entries(ctrl.opts)) fs.writeFile(`${dir}/${k}`, `${v}\n`);
  fs.writeFile(`/dev/nvme${ctrl.instance}`, '');
  fs.link(`/sys/class/nvme/nvme${ctrl.instance}`, dir);
  fs.link(`/sys/class/nvme-fabrics/ctl/nvme${ctrl.instance}`, dir);
}

function renderHead(k: FakeKernel, subsys: Subsys, head: Head, sdir: string, blockDirs: Map<string, string>): void {
  const fs = k.fs;
  const mp = k.opts.multipath;
  k.headDisk(head);
  const pathNames: string[] = [];
  for (const [ci, minor] of head.paths) {
    const ctrl = k.ctrls.get(ci)!;
    const name = k.pathName(subsys, head, ctrl);
    const dir = `/sys/devices/virtual/nvme-fabrics/ctl/nvme${ci}/${name}`;
    renderNs(k, dir, name, head, subsys, minor);
    fs.link(`${dir}/device`, `/sys/devices/virtual/nvme-fabrics/ctl/nvme${ci}`);
    const ana = k.anaState(ctrl, head.nsid);
    if (mp && ana) {
      fs.writeFile(`${dir}/ana_state`, `${ana}\n`);
      fs.writeFile(`${dir}/ana_grpid`, `${head.nsid}\n`);
    }
    if (!mp) fs.writeFile(`/dev/${name}`, '');
    blockDirs.set(name, dir);
    pathNames.push(name);
  }
  if (mp && head.diskMinor !== null) {
    const name = k.headName(subsys, head);
    const dir = `${sdir}/${name}`;
    renderNs(k, dir, name, head, subsys, head.diskMinor);
    if (k.opts.headDeviceLink) fs.link(`${dir}/device`, sdir);
    if (k.opts.multipathLinks) for (const p of pathNames) fs.link(`${dir}/multipath/${p}`, blockDirs.get(p)!);
    fs.writeFile(`/dev/${name}`, '');
    blockDirs.set(name, dir);
  }
}

function renderNs(k: FakeKernel, dir: string, name: string, head: Head, subsys: Subsys, minor: number): void {
  const fs = k.fs;
  // sysfs `uuid` shows the NGUID when there is no UUID, and is hidden when both are zero.
  const uuidAttr = head.uuid ?? (head.nguid ? dashed(head.nguid) : undefined);
  if (uuidAttr) fs.writeFile(`${dir}/uuid`, `${uuidAttr}\n`);
  if (head.nguid) fs.writeFile(`${dir}/nguid`, `${dashed(head.nguid)}\n`);
  fs.writeFile(`${dir}/nsid`, `${head.nsid}\n`);
  const wwid = head.uuid
    ? `uuid.${head.uuid}`
    : head.nguid
      ? `eui.${head.nguid}`
      : `nvme.0000-${subsys.instance}-${head.nsid.toString(16).padStart(8, '0')}`;
  fs.writeFile(`${dir}/wwid`, `${wwid}\n`);
  fs.writeFile(`${dir}/size`, `${Math.floor(head.sizeBytes / 512)}\n`);
  fs.writeFile(`${dir}/dev`, `259:${minor}\n`);
  if (k.opts.nsSubsysnqn) fs.writeFile(`${dir}/subsysnqn`, `${subsys.nqn}\n`);
  fs.mkdirp(`${dir}/holders`);
  fs.mkdirp(`${dir}/slaves`);
  fs.link(`/sys/block/${name}`, dir);
  fs.link(`/sys/dev/block/259:${minor}`, dir);
}

function renderMap(k: FakeKernel, m: DmMap, blockDirs: Map<string, string>): void {
  const fs = k.fs;
  const dm = `dm-${m.index}`;
  const dir = `/sys/devices/virtual/block/${dm}`;
  fs.writeFile(`${dir}/dm/name`, `${m.name}\n`);
  fs.writeFile(`${dir}/dm/uuid`, `mpath-${m.wwid}\n`);
  fs.writeFile(`${dir}/dev`, `253:${m.index}\n`);
  let size = '0';
  fs.mkdirp(`${dir}/holders`);
  fs.mkdirp(`${dir}/slaves`);
  for (const p of m.paths) {
    const pdir = blockDirs.get(p);
    if (!pdir) continue;
    size = fs.read(`${pdir}/size`)?.trim() ?? size;
    fs.link(`${dir}/slaves/${p}`, pdir);
    fs.link(`${pdir}/holders/${dm}`, dir);
  }
  if (m.sectors === null && size !== '0') m.sectors = size;
  fs.writeFile(`${dir}/size`, `${m.sectors ?? size}\n`);
  fs.link(`/sys/block/${dm}`, dir);
  fs.link(`/sys/dev/block/253:${m.index}`, dir);
  fs.writeFile(`/dev/${dm}`, '');
  fs.symlink(`/dev/mapper/${m.name}`, `../${dm}`);
}

function dashed(hex: string): string {
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}
