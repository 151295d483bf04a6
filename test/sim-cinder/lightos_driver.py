"""Cinder's own LightOS volume driver against `portalis sim`, for lightos-driver.test.ts.

Runs under Debian's /usr/bin/python3 with python3-cinder. stdin: {"url", "jwt", "host_nqn",
"lock_dir"}; stdout: a JSON report of every step, every HTTP request the driver sent (method,
path, headers, status) and the simulator's own view (its /sim/v1/state) after each step.

Real Cinder code throughout: LightOSVolumeDriver and its LightOSConnection, Cinder's volume and
snapshot objects (cinder.tests.unit.fake_volume/fake_snapshot build real OVOs without a
database), Cinder's coordination lock (file backend). Two things are adapted, both outside what
the simulator sees:
- the driver always builds https:// URLs (whatever lightos_api_port says); the issue allows
  plain HTTP for this test, so a requests.Session subclass turns the scheme into http just
  before sending. Method, path, headers and body stay exactly as the driver prepared them;
- check_for_setup_error asks the host-side os-brick LightOS connector for this host's NQN (it
  reads /etc/nvme/hostnqn and probes a discovery client on localhost:6060); it answers the test's
  host NQN instead.
"""

import json
import sys
import time

import requests


REQUESTS = []
_real_send = requests.Session.send


class StopScenario(Exception):
    pass


class PlainHttpSession(requests.Session):
    def send(self, request, **kwargs):
        if request.url.startswith('https://'):
            request.url = 'http://' + request.url[len('https://'):]
        entry = {
            'method': request.method,
            'url': request.url,
            'headers': dict(request.headers),
            'body': request.body.decode() if isinstance(request.body, bytes) else request.body,
        }
        REQUESTS.append(entry)
        response = _real_send(self, request, **kwargs)
        entry['status'] = response.status_code
        try:
            entry['response'] = response.json()
        except ValueError:
            entry['response'] = response.text
        return response


def main():
    req = json.load(sys.stdin)
    url = req['url']
    host_port = url.split('://', 1)[1]
    api_host, api_port = host_port.rsplit(':', 1)

    from oslo_config import cfg

    from cinder import context
    from cinder import coordination
    from cinder import objects
    from cinder.tests.unit import fake_snapshot
    from cinder.tests.unit import fake_volume
    from cinder.volume import configuration
    from cinder.volume.drivers import lightos

    objects.register_all()
    CONF = cfg.CONF
    CONF([], project='cinder', default_config_files=[])
    CONF.set_override('backend_url', 'file://' + req['lock_dir'], group='coordination')
    coordination.COORDINATOR.start()

    group = 'lightos-sim'
    conf = configuration.Configuration(lightos.LightOSVolumeDriver.get_driver_options(), config_group=group)
    CONF.set_override('lightos_api_address', [api_host], group=group)
    CONF.set_override('lightos_api_port', int(api_port), group=group)
    CONF.set_override('lightos_jwt', req['jwt'], group=group)
    CONF.set_override('lightos_default_num_replicas', 3, group=group)
    CONF.set_override('lightos_api_service_timeout', 10, group=group)
    CONF.set_override('volume_backend_name', 'lightos-sim', group=group)

    requests.Session = PlainHttpSession
    report = {'steps': {}, 'requests': REQUESTS}

    def step(name, fn):
        start = len(REQUESTS)
        t0 = time.monotonic()
        try:
            result = fn()
            outcome = {'ok': True, 'result': result}
        except Exception as e:  # reported to the test, which names the failing step
            outcome = {'ok': False, 'error': type(e).__name__, 'message': str(e)}
        outcome['seconds'] = round(time.monotonic() - t0, 3)
        outcome['requests'] = [r['method'] + ' ' + r['url'].split(host_port, 1)[1] for r in REQUESTS[start:]]
        # The simulator's admin API, read outside the driver (not recorded as a driver request).
        outcome['state'] = requests.get(url + '/sim/v1/state', timeout=10).json()
        report['steps'][name] = outcome
        if not outcome['ok']:
            # Later steps build on this one and would only add the driver's minute-long retries.
            raise StopScenario()
        return outcome

    ctx = context.get_admin_context()
    driver = lightos.LightOSVolumeDriver(configuration=conf)
    driver.connector.get_connector_properties = lambda *a, **k: {'nqn': req['host_nqn']}

    vtype = fake_volume.fake_volume_type_obj(
        ctx, extra_specs={'lightos:num_replicas': '2', 'compression': '<is> True'})

    def volume(**kw):
        v = fake_volume.fake_volume_obj(ctx, **kw)
        v.volume_type = vtype
        return v

    vol = volume(id='3f0b8c58-0d57-4d1e-9d64-6a2c4e1f0a01', size=1)
    from_snap = volume(id='3f0b8c58-0d57-4d1e-9d64-6a2c4e1f0a02', size=3)
    clone = volume(id='3f0b8c58-0d57-4d1e-9d64-6a2c4e1f0a03', size=2)
    snap = fake_snapshot.fake_snapshot_obj(ctx, id='7c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e04', volume=vol,
                                           volume_id=vol.id, volume_size=vol.size)
    connector = {'nqn': req['host_nqn'], 'found_dsc': 'found', 'host_ips': ['192.0.2.30'], 'host': 'nova-1'}

    def setup():
        driver.do_setup(ctx)
        driver.check_for_setup_error()
        return {'subsystemNQN': driver.cluster.subsystemNQN, 'cluster_uuid': driver.cluster.lightos_cluster_uuid,
                'targets': driver.cluster.targets}

    def cluster_stats():
        stats = driver.get_cluster_stats()
        # What the driver's (disabled) capacity report computes from them.
        return {'statistics': stats, 'total_capacity_gb': driver.byte_to_gb(stats['effectivePhysicalStorage']),
                'free_capacity_gb': driver.byte_to_gb(stats['freePhysicalStorage'])}

    try:
        step('do_setup', setup)
        step('get_node', lambda: driver.cluster.send_cmd(
            'get_node', timeout=30, UUID=next(iter(driver.cluster.targets))))
        step('create_volume', lambda: driver.create_volume(vol))
        step('create_volume_again', lambda: driver.create_volume(vol))
        step('list_volumes', lambda: driver.cluster.send_cmd('list_volumes', timeout=30, project_name='default'))
        step('initialize_connection', lambda: driver.initialize_connection(vol, connector))
        step('extend_volume', lambda: driver.extend_volume(vol, 2))
        step('create_snapshot', lambda: driver.create_snapshot(snap))
        step('create_volume_from_snapshot', lambda: driver.create_volume_from_snapshot(from_snap, snap))
        step('create_cloned_volume', lambda: driver.create_cloned_volume(clone, vol))
        step('terminate_connection', lambda: driver.terminate_connection(vol, connector, force=False))
        step('initialize_connection_again', lambda: driver.initialize_connection(vol, connector))
        step('terminate_connection_force', lambda: driver.terminate_connection(vol, None, force=True))
        step('get_cluster_stats', cluster_stats)
        step('get_volume_stats', lambda: driver.get_volume_stats(refresh=True))
        step('delete_snapshot', lambda: driver.delete_snapshot(snap))
        step('delete_snapshot_again', lambda: driver.delete_snapshot(snap))
        for name, v in (('clone', clone), ('from_snapshot', from_snap), ('volume', vol)):
            step('delete_volume_' + name, lambda v=v: driver.delete_volume(v))
        step('delete_volume_again', lambda: driver.delete_volume(vol))
    except StopScenario:
        pass
    coordination.COORDINATOR.stop()
    report['names'] = {'volume': 'volume-' + vol.id, 'from_snapshot': 'volume-' + from_snap.id,
                       'clone': 'volume-' + clone.id, 'snapshot': 'snapshot-' + snap.id,
                       'clone_snapshot': 'for_clone_' + clone.id}
    json.dump(report, sys.stdout, default=str)


if __name__ == '__main__':
    main()
