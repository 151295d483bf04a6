"""os-brick as a Nova compute host runs it, for the kernel scenarios of test/kernel/guest/nova-native.ts.

Runs under Debian's /usr/bin/python3 with Debian's python3-os-brick (6.1.0, OpenStack Zed) in the
kernel-test guest, as root, against the real NVMe/TCP initiator. It is one long-lived process, as
nova-compute is: it imports os-brick once and then answers requests, one JSON object per line on
stdin, one JSON answer per line on stdout.

Every call is the one Nova makes (Debian's python3-nova 26.2.2, the Zed release that ships with
os-brick 6.1):
- `connector`: nova/virt/libvirt/driver.py get_volume_connector →
  connector.get_connector_properties(root_helper, my_block_storage_ip, volume_use_multipath,
  enforce_multipath=True, host=CONF.host);
- `connect`: nova/virt/libvirt/volume/nvme.py → InitiatorConnector.factory('NVME', root_helper,
  use_multipath=volume_use_multipath, device_scan_attempts=num_nvme_discover_tries)
  .connect_volume(connection_info['data']); Nova then stores the path as data['device_path'];
- `disconnect`: the same connector's disconnect_volume(connection_info['data'], None) (Nova
  passes no device_info: os-brick takes the path from data['device_path']).

One fix is applied to os-brick, the upstream one for its bug #2035811 (released after 6.1;
not in Debian's 6.1.0-3): Linux 6.1 shows an NVMe/TCP controller's sysfs `address` as
`traddr=…,trsvcid=…,src_addr=…`, and os-brick 6.1 compares that whole string with
`traddr=…,trsvcid=…`, so it never finds a controller: connect_volume runs its three
`nvme connect`s, then finds no device, retries (its connects now fail "already connected",
which 6.1 does not recognise in nvme-cli 2.3's form) and raises VolumeDeviceNotFound after
~25 s, leaving the three controllers behind (its clean-up finds none of them either); and
disconnect_volume would find no controller to disconnect. `backport_src_addr_fix` makes the one sysfs read that comparison uses return only
`traddr` and `trsvcid`, as the upstream fix parses it. Everything else is os-brick 6.1's own.

Nothing else of os-brick is replaced. Only what a deployment configures is set here:
- privsep runs in this process (`privileged.default.set_client_mode(False)`): the guest runs as
  root, as the privsep daemon would, and there is no rootwrap configuration to start one with;
- os-brick's lock folder (Nova sets oslo_concurrency.lock_path and calls os_brick.setup).

Every answer carries what os-brick logged at WARNING or above during the call (`warnings`) and
the commands it ran (`commands`, from oslo.concurrency's "Running cmd" debug lines), so the
scenario can assert that a connect saw no race with another program and which nvme commands
os-brick issued. The whole DEBUG log goes to the file named by --log.

Requests: {"op": "connector", "ip": "...", "host": "..."}
          {"op": "connect", "data": {...}, "use_multipath": true, "device_scan_attempts": 5}
          {"op": "disconnect", "data": {... "device_path": "/dev/nvme0n1"}}
          {"op": "ping"}
Answers:  {"ok": true, "result": ..., "ms": 12.3, "warnings": [...], "commands": [...]}
          {"ok": false, "error": "<exception class>", "message": "...", "traceback": "...", ...}
"""

import argparse
import json
import logging
import os
import sys
import time
import traceback

# Nova's defaults: [libvirt] volume_use_multipath (set to True on a multipath host) and
# num_nvme_discover_tries (5).
ROOT_HELPER = 'sudo nova-rootwrap /etc/nova/rootwrap.conf'


class Capture(logging.Handler):
    """Keeps, per request, the records at WARNING and above and the commands run."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.reset()

    def reset(self):
        self.warnings = []
        self.commands = []

    def emit(self, record):
        try:
            msg = record.getMessage()
        except Exception:  # a record that cannot format: keep its raw text
            msg = str(record.msg)
        if record.levelno >= logging.WARNING:
            self.warnings.append({'level': record.levelname, 'logger': record.name, 'message': msg})
        elif record.name == 'oslo_concurrency.processutils' and msg.startswith('Running cmd'):
            # 'Running cmd (subprocess): nvme connect -a ...'
            self.commands.append(msg.split(': ', 1)[-1])


def backport_src_addr_fix():
    """os-brick's fix for bug #2035811: match a controller on its address's traddr and trsvcid only.

    In os-brick 6.1 `Target.set_portals_controllers` is the only reader of the `address`
    property (through the module's `sysfs_property`); upstream now parses the `k=v` pairs and
    compares `traddr` and `trsvcid`. Returning just those two pairs here gives the same match.
    """
    from os_brick.initiator.connectors import nvmeof

    original = nvmeof.sysfs_property

    def sysfs_property(prop_name, path_or_name):
        value = original(prop_name, path_or_name)
        if prop_name != 'address' or not value:
            return value
        pairs = dict(kv.split('=', 1) for kv in value.split(',') if '=' in kv)
        return 'traddr=%s,trsvcid=%s' % (pairs.get('traddr'), pairs.get('trsvcid'))

    nvmeof.sysfs_property = sysfs_property


def setup(log_file, lock_path):
    logging.basicConfig(
        filename=log_file,
        level=logging.DEBUG,
        format='%(asctime)s.%(msecs)03d %(process)d %(levelname)s %(name)s %(message)s',
        datefmt='%H:%M:%S',
    )
    capture = Capture()
    logging.getLogger().addHandler(capture)

    from oslo_config import cfg
    from oslo_concurrency import lockutils

    cfg.CONF([], project='nova', default_config_files=[])
    lockutils.set_defaults(lock_path)

    import os_brick
    from os_brick import privileged

    os_brick.setup(cfg.CONF)
    # Privileged calls run here, as root (no privsep daemon, no rootwrap configuration).
    privileged.default.set_client_mode(False)
    backport_src_addr_fix()
    return capture


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--log', required=True)
    ap.add_argument('--lock-path', required=True)
    args = ap.parse_args()

    # Answers go to the original stdout; anything a library prints goes to stderr instead.
    answers = os.fdopen(os.dup(1), 'w', buffering=1)
    os.dup2(2, 1)

    os.makedirs(args.lock_path, exist_ok=True)
    capture = setup(args.log, args.lock_path)

    from os_brick import initiator
    from os_brick.initiator import connector as brick_connector

    connectors = {}

    def nvme_connector(use_multipath, attempts):
        key = (use_multipath, attempts)
        if key not in connectors:
            connectors[key] = brick_connector.InitiatorConnector.factory(
                initiator.NVME, ROOT_HELPER, use_multipath=use_multipath, device_scan_attempts=attempts
            )
        return connectors[key]

    def handle(req):
        op = req['op']
        if op == 'ping':
            import os_brick.version

            return {'os_brick': os_brick.version.version_info.version_string()}
        if op == 'connector':
            return brick_connector.get_connector_properties(
                ROOT_HELPER, req['ip'], req.get('multipath', True), True, host=req['host']
            )
        c = nvme_connector(req.get('use_multipath', True), req.get('device_scan_attempts', 5))
        if op == 'connect':
            return c.connect_volume(req['data'])
        if op == 'disconnect':
            c.disconnect_volume(req['data'], None)
            return None
        raise ValueError('unknown op %r' % op)

    logging.getLogger('osbrick-driver').info('ready')
    answers.write(json.dumps({'ok': True, 'ready': True}) + '\n')
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        req = json.loads(line)
        capture.reset()
        log = logging.getLogger('osbrick-driver')
        log.info('request %s', line)
        t0 = time.monotonic()
        try:
            result = handle(req)
            out = {'ok': True, 'result': result}
        except Exception as e:  # every failure goes back to the scenario, which decides
            out = {'ok': False, 'error': type(e).__name__, 'message': str(e), 'traceback': traceback.format_exc()}
        out['ms'] = round((time.monotonic() - t0) * 1000, 1)
        out['warnings'] = capture.warnings
        out['commands'] = capture.commands
        log.info('answer %s', json.dumps(out))
        answers.write(json.dumps(out, default=str) + '\n')


if __name__ == '__main__':
    main()
