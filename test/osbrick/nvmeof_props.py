"""os-brick's own view of Portalis's NVMe-oF wire formats, for test/osbrick/os-brick-parse.test.ts.

Runs under Debian's /usr/bin/python3 with python3-os-brick. Two commands, JSON in and out:

  connector   stdin {"multipath", "enforce_multipath", "native", "host", "nqn", "ip"}
              → the dict os-brick's connector.get_connector_properties returns for an NVMe-oF
                host. The real function runs (its key merging, the base connector's multipathd
                check, the NVMe-oF connector's keys); only the host probes that need root and
                change the machine are given fixed answers: the DMI system UUID and the
                /etc/nvme/hostnqn lookup (both privsep calls that create files when missing),
                `nvme version`, findmnt/blkid and `multipathd show status` (through os-brick's
                own `execute` parameter), and the nvme_core multipath flag (os-brick's class
                cache of /sys/module/nvme_core/parameters/multipath). The connector list is
                limited to the base and NVMe-oF connectors: the others probe iSCSI, FC, RBD and
                a LightOS discovery client on localhost, none of which an NVMe-oF host needs.
  parse       stdin [data, ...] (connection_info["data"] dicts)
              → [{"ok": true, "is_replicated", "targets": [{nqn, portals, uuid, nguid, ns_id,
                host_nqn}]} | {"ok": false, "error": "<exception class>", "message"}], from
                NVMeOFConnProps(data, find_controllers=False): no sysfs, no commands.
"""

import copy
import json
import sys


def connector(req):
    from os_brick import utils
    from os_brick.initiator import connector as brick_connector
    from os_brick.initiator.connectors import nvmeof
    from os_brick.privileged import nvmeof as priv_nvmeof
    from oslo_concurrency import processutils

    def execute(*cmd, **_kwargs):
        if cmd[:3] == ('multipathd', 'show', 'status'):
            if req.get('multipathd', True):
                return 'path checker states:\n', ''
            raise processutils.ProcessExecutionError('', 'error receiving packet', 1, ' '.join(cmd))
        if cmd[0] == 'findmnt':
            return '/dev/vda1\n', ''
        if cmd[0] == 'blkid':
            return req['root_uuid'] + '\n', ''
        raise AssertionError('unexpected command %r' % (cmd,))

    priv_nvmeof.get_system_uuid = lambda: req['system_uuid']
    utils.get_host_nqn = lambda *a, **k: req['nqn']
    nvmeof.NVMeOFConnector.nvme_present = classmethod(lambda cls: True)
    nvmeof.NVMeOFConnector.native_multipath_supported = bool(req['native'])
    brick_connector._get_connector_list = lambda: [
        'os_brick.initiator.connectors.base.BaseLinuxConnector',
        'os_brick.initiator.connectors.nvmeof.NVMeOFConnector',
    ]
    return brick_connector.get_connector_properties(
        None, req['ip'], req['multipath'], req['enforce_multipath'], host=req['host'], execute=execute
    )


def parse(datas):
    from os_brick.initiator.connectors.nvmeof import NVMeOFConnProps

    out = []
    for data in datas:
        try:
            # NVMeOFConnProps rewrites an old-format dict in place; keep the caller's intact.
            props = NVMeOFConnProps(copy.deepcopy(data), find_controllers=False)
        except Exception as e:  # every failure is reported by class: what the test asserts
            out.append({'ok': False, 'error': type(e).__name__, 'message': str(e)})
            continue
        out.append(
            {
                'ok': True,
                'is_replicated': props.is_replicated,
                'targets': [
                    {
                        'nqn': t.nqn,
                        'portals': [[p.address, p.port, p.transport] for p in t.portals],
                        'uuid': t.uuid,
                        'nguid': t.nguid,
                        'ns_id': t.ns_id,
                        'host_nqn': t.host_nqn,
                    }
                    for t in props.targets
                ],
            }
        )
    return out


def main():
    req = json.load(sys.stdin)
    if sys.argv[1] == 'connector':
        result = connector(req)
    elif sys.argv[1] == 'parse':
        result = parse(req)
    else:
        raise SystemExit('usage: nvmeof_props.py connector|parse < request.json')
    json.dump(result, sys.stdout)


if __name__ == '__main__':
    main()
