"""PortalisVolumeDriver against a real `portalis serve`, with Cinder's own test base and objects.

The volumes, snapshots, volume types and attachments are real Cinder objects in Cinder's test
database (cinder.tests.unit.utils); the driver talks HTTP to a `portalis serve` started for this
module, whose in-process simulator is the storage backend. What the driver did is checked on the
Portalis side through its REST API.
"""

import copy
import logging
import os
import shutil
import tempfile
import uuid

from cinder import context
from cinder import exception
from cinder.interface import volume_driver as volume_driver_interface
from cinder import objects
from cinder.tests.unit import test
from cinder.tests.unit import utils as test_utils
from cinder.volume import configuration
from cinder.volume import driver as cinder_driver

from portalis_cinder import driver as portalis_driver
from tests.portalis_service import free_port
from tests.portalis_service import PortalisService
from tests import tls_proxy

GROUP = 'portalis'
SERVICE = PortalisService()
_CONNECTOR = {}


def setUpModule():
    SERVICE.start()


def tearDownModule():
    SERVICE.stop()


def brick_connector():
    """os-brick's own connector dict of this machine, as a Nova compute host builds it.

    os-brick's get_connector_properties runs its root-only probes through privsep; as root they
    run in this process. Every key comes from os-brick (`nqn` from /etc/nvme/hostnqn, `uuid`,
    `platform`, `host`, ...) except two that depend on the machine, which the tests set to what a
    Nova host with multipath configured reports:
    - `multipath`: os-brick reports True only while `multipathd show status` answers (os-brick
      `BaseLinuxConnector.get_connector_properties`); CI's machine runs no multipathd;
    - `nvme_native_multipath`: read from /sys/module/nvme_core/parameters/multipath, True on a
      host booted with nvme_core.multipath=Y; absent in a container without nvme_core.
    """
    if not _CONNECTOR:
        from os_brick.initiator import connector as brick
        from os_brick import privileged

        if os.geteuid() == 0:
            privileged.default.set_client_mode(False)
        props = brick.get_connector_properties('sudo', '127.0.0.1', True, False, host='compute-1')
        props['multipath'] = True
        props['nvme_native_multipath'] = True
        _CONNECTOR.update(props)
    return copy.deepcopy(_CONNECTOR)


def other_host(connector, host):
    c = copy.deepcopy(connector)
    c['host'] = host
    c['nqn'] = 'nqn.2014-08.org.nvmexpress:uuid:%s' % uuid.uuid4()
    return c


class PortalisDriverTestCase(test.TestCase):
    def setUp(self):
        super(PortalisDriverTestCase, self).setUp()
        self.ctxt = context.get_admin_context()
        self.driver = self._driver()
        self.driver.do_setup(self.ctxt)
        self.driver.check_for_setup_error()

    def _driver(self, **overrides):
        conf = configuration.Configuration(cinder_driver.volume_opts, config_group=GROUP)
        drv = portalis_driver.PortalisVolumeDriver(configuration=conf)
        settings = {
            'volume_backend_name': 'portalis-test',
            'portalis_url': SERVICE.url,
            'portalis_token': SERVICE.token,
            'portalis_api_timeout': 60,
            'portalis_api_retries': 3,
            'portalis_api_retry_interval': 0.05,
        }
        settings.update(overrides)
        for name, value in settings.items():
            self.override_config(name, value, group=GROUP)
        return drv

    # Cinder objects.

    def _type(self, **specs):
        return test_utils.create_volume_type(self.ctxt, self, name='portalis-%s' % uuid.uuid4().hex[:8],
                                             extra_specs=specs)

    def _volume(self, size=1, multiattach=False, specs=None):
        vtype = self._type(**(specs or {}))
        return test_utils.create_volume(self.ctxt, size=size, volume_type_id=vtype.id, multiattach=multiattach,
                                        testcase_instance=self)

    def _created(self, size=1, multiattach=False, specs=None):
        vol = self._volume(size=size, multiattach=multiattach, specs=specs)
        self.driver.create_volume(vol)
        self.addCleanup(self._force_delete, vol.name_id)
        return vol

    def _snapshot(self, volume):
        return test_utils.create_snapshot(self.ctxt, volume.id, display_name='nightly', testcase_instance=self)

    def _reserve(self, volume, instance=None):
        """A Cinder attachment as attachment_create makes it: reserved, no connector yet."""
        att = objects.VolumeAttachment(self.ctxt, volume_id=volume.id,
                                       instance_uuid=instance or str(uuid.uuid4()), attach_status='reserved')
        att.create()
        return att

    def _attached(self, att, connector):
        """What attachment_update records after initialize_connection succeeded."""
        att.connector = connector
        att.attached_host = connector['host']
        att.attach_status = 'attached'
        att.save()

    def _reload(self, volume):
        return objects.Volume.get_by_id(self.ctxt, volume.id)

    # The Portalis side.

    def _force_delete(self, name_id):
        for snap in SERVICE.api('GET', '/v1/volumes/%s/snapshots' % name_id).json().get('snapshots', []):
            SERVICE.api('DELETE', '/v1/snapshots/%s' % snap['id'])
        SERVICE.api('DELETE', '/v1/volumes/%s?force=true' % name_id)

    def _portalis_volume(self, volume):
        resp = SERVICE.api('GET', '/v1/volumes/%s' % volume.name_id)
        return resp.json() if resp.status_code == 200 else None

    def _backend_acl(self, volume):
        """The host NQNs in the backend volume's ACL, as the simulator holds it."""
        name = 'volume-%s' % volume.name_id
        [vol] = [v for v in SERVICE.sim('GET', '/sim/v1/state').json()['volumes'] if v['name'] == name]
        return vol['acl']

    def _portalis_attachments(self, volume, status=None):
        query = '?volume_id=%s' % volume.name_id + ('&status=%s' % status if status else '')
        resp = SERVICE.api('GET', '/v1/attachments' + query)
        self.assertEqual(200, resp.status_code, resp.text)
        return resp.json()['attachments']


class SetupTest(PortalisDriverTestCase):
    def test_setup_checks_the_service_and_its_token(self):
        self.assertEqual('Portalis', self.driver._capabilities['vendor_name'])

    def test_a_wrong_token_stops_setup_with_a_clear_error_that_hides_the_token(self):
        drv = self._driver(portalis_token='not-the-token-0123456789')
        with self.assertLogs('portalis_cinder', level='DEBUG') as logs:
            err = self.assertRaises(exception.VolumeDriverException, drv.do_setup, self.ctxt)
        self.assertIn('401 unauthorized', str(err))
        self.assertIn('portalis_token', str(err))
        for text in [str(err)] + logs.output:
            self.assertNotIn('not-the-token-0123456789', text)
            self.assertNotIn(SERVICE.token, text)

    def test_an_unreachable_service_stops_setup_after_the_retries(self):
        drv = self._driver(portalis_url='http://127.0.0.1:%d' % free_port(), portalis_api_retries=2)
        with self.assertLogs('portalis_cinder', level='WARNING') as logs:
            err = self.assertRaises(exception.VolumeDriverException, drv.do_setup, self.ctxt)
        self.assertIn('unreachable', str(err))
        self.assertIn('after 3 attempt(s)', str(err))
        self.assertEqual(2, len([line for line in logs.output if 'retry' in line]))

    def test_a_missing_url_or_token_is_a_configuration_error(self):
        drv = self._driver(portalis_url=None)
        err = self.assertRaises(exception.InvalidConfigurationValue, drv.do_setup, self.ctxt)
        self.assertIn('portalis_url', str(err))
        drv = self._driver(portalis_token=None)
        err = self.assertRaises(exception.InvalidConfigurationValue, drv.do_setup, self.ctxt)
        self.assertIn('portalis_token', str(err))

    def test_check_for_setup_error_before_setup_fails(self):
        drv = self._driver()
        self.assertRaises(exception.VolumeDriverException, drv.check_for_setup_error)

    def test_the_driver_meets_cinders_volume_driver_interface(self):
        # What Cinder's compliance test (cinder/tests/compliance) checks of in-tree drivers.
        cls = portalis_driver.PortalisVolumeDriver
        self.assertTrue(issubclass(cls, volume_driver_interface.VolumeDriverCore))
        self.assertRegex(cls.VERSION, r'^\d+\.\d+\.\d+$')
        self.assertGreater(len(cls.CI_WIKI_NAME), 0)

    def test_driver_options_are_the_portalis_ones_plus_cinders(self):
        names = [o.name for o in portalis_driver.PortalisVolumeDriver.get_driver_options()]
        for name in ('portalis_url', 'portalis_token', 'portalis_ca_file', 'portalis_api_timeout',
                     'portalis_api_retries', 'volume_backend_name', 'reserved_percentage'):
            self.assertIn(name, names)
        token_opt = [o for o in portalis_driver.portalis_opts if o.name == 'portalis_token'][0]
        self.assertTrue(token_opt.secret)


class TlsTest(PortalisDriverTestCase):
    """The service behind a TLS proxy: portalis_ca_file is what verifies it."""

    @classmethod
    def setUpClass(cls):
        super(TlsTest, cls).setUpClass()
        cls.certs = tempfile.mkdtemp(prefix='portalis-cinder-tls-')
        cls.ca_file, cert, key = tls_proxy.make_certificates(cls.certs)
        cls.proxy = tls_proxy.TlsProxy(SERVICE.port, cert, key)
        cls.https_url = 'https://127.0.0.1:%d' % cls.proxy.port

    @classmethod
    def tearDownClass(cls):
        cls.proxy.close()
        shutil.rmtree(cls.certs, ignore_errors=True)
        super(TlsTest, cls).tearDownClass()

    def test_https_verified_with_the_ca_file(self):
        drv = self._driver(portalis_url=self.https_url, portalis_ca_file=self.ca_file)
        drv.do_setup(self.ctxt)
        drv.check_for_setup_error()
        vol = self._volume(size=2)
        drv.create_volume(vol)
        self.assertEqual(2, self._portalis_volume(vol)['size_gb'])
        drv.delete_volume(vol)
        self.assertIsNone(self._portalis_volume(vol))

    def test_a_certificate_the_ca_file_did_not_sign_is_a_clear_error_and_not_retried(self):
        drv = self._driver(portalis_url=self.https_url)  # the system CAs do not know the test CA
        with self.assertLogs('portalis_cinder', level='DEBUG') as logs:
            err = self.assertRaises(exception.VolumeDriverException, drv.do_setup, self.ctxt)
        self.assertIn('TLS verification failed', str(err))
        self.assertIn('portalis_ca_file', str(err))
        self.assertEqual([], [line for line in logs.output if 'retry' in line])


class VolumeTest(PortalisDriverTestCase):
    def test_create_a_plain_volume(self):
        vol = self._created(size=2)
        got = self._portalis_volume(vol)
        self.assertEqual('available', got['status'])
        self.assertEqual(2, got['size_gb'])
        self.assertEqual(3, got['replicas'])
        self.assertFalse(got['multiattach'])
        self.assertFalse(got['compression'])
        self.assertEqual('volume-%s' % vol.name_id, got['name'])

    def test_create_with_the_volume_types_extra_specs(self):
        qos = str(uuid.uuid4())
        vol = self._created(specs={'portalis:replicas': '2', 'portalis:compression': '<is> True',
                               'portalis:qos_policy': qos, 'multiattach': '<is> True'})
        got = self._portalis_volume(vol)
        self.assertEqual(2, got['replicas'])
        self.assertTrue(got['compression'])
        self.assertEqual(qos, got['qos_policy_id'])
        self.assertTrue(got['multiattach'])

    def test_a_bad_extra_spec_is_refused_before_portalis_is_asked(self):
        vol = self._volume(specs={'portalis:replicas': '5'})
        err = self.assertRaises(exception.InvalidVolumeType, self.driver.create_volume, vol)
        self.assertIn('portalis:replicas', str(err))
        vol = self._volume(specs={'portalis:compression': 'sometimes'})
        self.assertRaises(exception.InvalidVolumeType, self.driver.create_volume, vol)
        self.assertIsNone(self._portalis_volume(vol))

    def test_a_repeated_create_is_harmless(self):
        vol = self._created()
        self.driver.create_volume(vol)
        self.assertEqual('available', self._portalis_volume(vol)['status'])

    def test_extend_online(self):
        vol = self._created(size=1)
        self.driver.extend_volume(vol, 3)
        self.assertEqual(3, self._portalis_volume(vol)['size_gb'])

    def test_extend_of_a_missing_volume_is_volume_not_found(self):
        vol = self._volume()
        self.assertRaises(exception.VolumeNotFound, self.driver.extend_volume, vol, 2)

    def test_shrinking_is_invalid_input(self):
        vol = self._created(size=2)
        err = self.assertRaises(exception.InvalidInput, self.driver.extend_volume, vol, 1)
        self.assertIn('Portalis invalid_request', str(err))

    def test_delete_and_delete_again(self):
        vol = self._created()
        self.driver.delete_volume(vol)
        self.assertIsNone(self._portalis_volume(vol))
        self.driver.delete_volume(vol)  # gone already: success, as Cinder's contract says

    def test_delete_of_a_volume_portalis_never_knew_succeeds(self):
        self.driver.delete_volume(self._volume())

    def test_delete_of_a_volume_with_snapshots_is_busy(self):
        vol = self._created()
        self.driver.create_snapshot(self._snapshot(vol))
        self.assertRaises(exception.VolumeIsBusy, self.driver.delete_volume, vol)
        self.assertEqual('available', self._portalis_volume(vol)['status'])

    def test_delete_of_an_attached_volume_is_busy(self):
        vol = self._created()
        self.driver.initialize_connection(vol, brick_connector())
        err = self.assertRaises(exception.VolumeIsBusy, self.driver.delete_volume, vol)
        self.assertIn('in use', str(err))
        self.assertEqual('available', self._portalis_volume(vol)['status'])

    def test_retried_after_a_backend_failure(self):
        # The backend refuses the next volume POST once: Portalis answers 502, the driver tries again.
        vol = self._volume()
        fault = {'failNext': {'count': 1, 'status': 500, 'method': 'POST', 'path': '/volumes'}}
        self.assertEqual(200, SERVICE.sim('PUT', '/sim/v1/faults', json=fault).status_code)
        self.addCleanup(SERVICE.sim, 'DELETE', '/sim/v1/faults')
        with self.assertLogs('portalis_cinder', level='WARNING') as logs:
            self.driver.create_volume(vol)
        self.addCleanup(self._force_delete, vol.name_id)
        self.assertIn('(502 backend_', ' '.join(logs.output))
        self.assertEqual('available', self._portalis_volume(vol)['status'])

    def test_without_retries_a_backend_failure_is_a_backend_api_exception_naming_the_code(self):
        drv = self._driver(portalis_api_retries=0)
        drv.do_setup(self.ctxt)
        vol = self._volume()
        fault = {'failNext': {'count': 1, 'status': 500, 'method': 'POST', 'path': '/volumes'}}
        self.assertEqual(200, SERVICE.sim('PUT', '/sim/v1/faults', json=fault).status_code)
        self.addCleanup(SERVICE.sim, 'DELETE', '/sim/v1/faults')
        self.addCleanup(self._force_delete, vol.name_id)
        err = self.assertRaises(exception.VolumeBackendAPIException, drv.create_volume, vol)
        self.assertIn('502 backend_', str(err))


class SnapshotTest(PortalisDriverTestCase):
    def test_snapshot_then_a_larger_volume_from_it(self):
        src = self._created(size=1)
        snap = self._snapshot(src)
        self.driver.create_snapshot(snap)
        got = SERVICE.api('GET', '/v1/snapshots/%s' % snap.id).json()
        self.assertEqual(src.name_id, got['volume_id'])
        self.assertEqual('available', got['status'])

        vol = self._volume(size=2)
        self.driver.create_volume_from_snapshot(vol, snap)
        self.addCleanup(self._force_delete, vol.name_id)
        created = self._portalis_volume(vol)
        self.assertEqual(2, created['size_gb'])
        self.assertEqual({'snapshot_id': snap.id}, created['source'])

    def test_a_volume_from_a_missing_snapshot_is_snapshot_not_found(self):
        src = self._volume()
        snap = self._snapshot(src)
        vol = self._volume()
        self.assertRaises(exception.SnapshotNotFound, self.driver.create_volume_from_snapshot, vol, snap)

    def test_delete_snapshot_and_again(self):
        src = self._created()
        snap = self._snapshot(src)
        self.driver.create_snapshot(snap)
        self.driver.delete_snapshot(snap)
        self.assertEqual(404, SERVICE.api('GET', '/v1/snapshots/%s' % snap.id).status_code)
        self.driver.delete_snapshot(snap)
        self.driver.delete_volume(src)  # no snapshot left in the way

    def test_snapshot_of_a_missing_volume_is_volume_not_found(self):
        src = self._volume()
        self.assertRaises(exception.VolumeNotFound, self.driver.create_snapshot, self._snapshot(src))

    def test_clone_larger_than_its_source(self):
        src = self._created(size=1)
        vol = self._volume(size=3)
        self.driver.create_cloned_volume(vol, src)
        self.addCleanup(self._force_delete, vol.name_id)
        created = self._portalis_volume(vol)
        self.assertEqual(3, created['size_gb'])
        self.assertEqual({'volume_id': src.name_id}, created['source'])

    def test_a_clone_of_a_missing_volume_is_volume_not_found(self):
        src = self._volume()
        err = self.assertRaises(exception.VolumeNotFound, self.driver.create_cloned_volume, self._volume(), src)
        self.assertIn(src.id, str(err))


class ConnectionTest(PortalisDriverTestCase):
    def test_initialize_returns_portalis_connection_info_unchanged(self):
        vol = self._created()
        att = self._reserve(vol)
        connector = brick_connector()
        info = self.driver.initialize_connection(self._reload(vol), connector)

        self.assertEqual('nvmeof', info['driver_volume_type'])
        data = info['data']
        self.assertTrue(data['target_nqn'].startswith('nqn.'))
        self.assertEqual(3, len(data['portals']))  # one per replica
        self.assertEqual(connector['nqn'], data['host_nqn'])
        [portalis_att] = self._portalis_attachments(vol)
        self.assertEqual(portalis_att['connection_info'], info)
        self.assertEqual(att.instance_uuid, portalis_att['instance_uuid'])
        self.assertEqual('compute-1', portalis_att['host'])

        # Cinder may ask again for an attached volume: same answer, no second attachment.
        self._attached(att, connector)
        self.assertEqual(info, self.driver.initialize_connection(self._reload(vol), connector))
        self.assertEqual(1, len(self._portalis_attachments(vol)))

    def test_the_instance_is_recorded_even_from_a_volume_object_older_than_the_attachment(self):
        # The API loads the volume before it reserves an attachment created with its connector.
        vol = self._created()
        stale = self._reload(vol)
        self.assertEqual([], list(stale.volume_attachment))
        att = self._reserve(vol)
        self.driver.initialize_connection(stale, brick_connector())
        [portalis_att] = self._portalis_attachments(vol)
        self.assertEqual(att.instance_uuid, portalis_att['instance_uuid'])

    def test_terminate_after_an_initialize_made_before_the_attachment_record_revokes(self):
        # Cinder's legacy flow: os-initialize_connection, then os-attach records the instance.
        vol = self._created()
        connector = brick_connector()
        self.driver.initialize_connection(vol, connector)
        self.assertIn(connector['nqn'], self._backend_acl(vol))
        att = self._reserve(vol)
        self._attached(att, connector)

        self.assertFalse(self.driver.terminate_connection(self._reload(vol), connector, force=False))
        self.assertEqual([], self._portalis_attachments(vol, status='attached'))
        self.assertNotIn(connector['nqn'], self._backend_acl(vol))

    def test_the_connector_must_name_the_host_nqn(self):
        connector = brick_connector()
        del connector['nqn']
        self.assertRaises(exception.InvalidConnectorException, self.driver.validate_connector, connector)
        self.driver.validate_connector(brick_connector())

    def test_initialize_of_a_missing_volume_is_volume_not_found(self):
        self.assertRaises(exception.VolumeNotFound, self.driver.initialize_connection, self._volume(),
                          brick_connector())

    def test_a_second_host_on_a_volume_without_multiattach_is_refused(self):
        vol = self._created()
        self.driver.initialize_connection(vol, brick_connector())
        err = self.assertRaises(exception.VolumeBackendAPIException, self.driver.initialize_connection, vol,
                                other_host(brick_connector(), 'compute-2'))
        self.assertIn('volume_in_use', str(err))

    def test_a_live_migration_attaches_the_same_instance_on_the_destination_first(self):
        # Nova's live migration: a second attachment of the same instance, on the destination,
        # made before the source's is deleted (Cinder allows it: LP 1694530).
        vol = self._created()
        source, destination = brick_connector(), other_host(brick_connector(), 'compute-2')
        att = self._reserve(vol)
        self.driver.initialize_connection(self._reload(vol), source)
        self._attached(att, source)
        moving = self._reserve(vol, instance=att.instance_uuid)
        info = self.driver.initialize_connection(self._reload(vol), destination)
        self._attached(moving, destination)
        self.assertEqual('nvmeof', info['driver_volume_type'])
        self.assertEqual(sorted([source['nqn'], destination['nqn']]), sorted(self._backend_acl(vol)))
        self.assertEqual({att.instance_uuid},
                         {a['instance_uuid'] for a in self._portalis_attachments(vol, status='attached')})

        # The source's attachment goes: its host loses access, the destination keeps it.
        self.assertFalse(self.driver.terminate_connection(self._reload(vol), source, force=False))
        self.assertEqual([destination['nqn']], self._backend_acl(vol))

    def test_terminate_revokes_the_host_and_then_delete_works(self):
        vol = self._created()
        att = self._reserve(vol)
        connector = brick_connector()
        self.driver.initialize_connection(self._reload(vol), connector)
        self._attached(att, connector)

        self.assertIn(connector['nqn'], self._backend_acl(vol))
        self.assertFalse(self.driver.terminate_connection(self._reload(vol), connector, force=False))
        [portalis_att] = self._portalis_attachments(vol)
        self.assertEqual('detached', portalis_att['status'])
        self.assertNotIn(connector['nqn'], self._backend_acl(vol))
        self.assertEqual(att.instance_uuid, portalis_att['instance_uuid'])
        # Repeating it is harmless, and the volume can go.
        self.assertFalse(self.driver.terminate_connection(self._reload(vol), connector, force=False))
        self.driver.delete_volume(vol)
        self.assertIsNone(self._portalis_volume(vol))

    def test_terminate_with_no_connector_removes_every_host(self):
        vol = self._created(multiattach=True, specs={'multiattach': '<is> True'})
        self.driver.initialize_connection(vol, brick_connector())
        self.driver.initialize_connection(vol, other_host(brick_connector(), 'compute-2'))
        self.assertEqual(2, len(self._portalis_attachments(vol, status='attached')))

        self.driver.terminate_connection(vol, None, force=True)
        self.assertEqual([], self._portalis_attachments(vol, status='attached'))
        self.assertEqual([], [nqn for nqn in self._backend_acl(vol) if nqn.startswith('nqn.')])
        self.assertEqual(2, len(self._portalis_attachments(vol, status='detached')))

    def test_multiattach_on_two_hosts(self):
        vol = self._created(multiattach=True, specs={'multiattach': '<is> True'})
        self.assertTrue(self._portalis_volume(vol)['multiattach'])
        host1, host2 = brick_connector(), other_host(brick_connector(), 'compute-2')
        att1, att2 = self._reserve(vol), self._reserve(vol)
        info1 = self.driver.initialize_connection(self._reload(vol), host1)
        self._attached(att1, host1)
        info2 = self.driver.initialize_connection(self._reload(vol), host2)
        self._attached(att2, host2)
        self.assertEqual(info1['data']['target_nqn'], info2['data']['target_nqn'])
        self.assertEqual(host2['nqn'], info2['data']['host_nqn'])
        self.assertEqual(2, len(self._portalis_attachments(vol, status='attached')))

        # Host 1 leaves: host 2 keeps its attachment.
        self.assertFalse(self.driver.terminate_connection(self._reload(vol), host1, force=False))
        att1.attach_status = 'detached'
        att1.save()
        [left] = self._portalis_attachments(vol, status='attached')
        self.assertEqual(host2['nqn'], left['host_nqn'])
        self.assertNotIn(host1['nqn'], self._backend_acl(vol))
        self.assertIn(host2['nqn'], self._backend_acl(vol))
        self.assertFalse(self.driver.terminate_connection(self._reload(vol), host2, force=False))
        self.assertEqual([], self._portalis_attachments(vol, status='attached'))

    def test_two_instances_on_one_host_share_the_connection(self):
        vol = self._created(multiattach=True, specs={'multiattach': '<is> True'})
        connector = brick_connector()
        att1, att2 = self._reserve(vol), self._reserve(vol)
        self.driver.initialize_connection(self._reload(vol), connector)
        self._attached(att1, connector)
        self.driver.initialize_connection(self._reload(vol), connector)
        self._attached(att2, connector)

        # The first instance leaves: the host's connection stays (Cinder keeps the export).
        self.assertTrue(self.driver.terminate_connection(self._reload(vol), connector, force=False))
        self.assertEqual(1, len(self._portalis_attachments(vol, status='attached')))
        self.assertIn(connector['nqn'], self._backend_acl(vol))
        att1.attach_status = 'detached'
        att1.save()
        # The last one leaves: the host's access goes.
        self.assertFalse(self.driver.terminate_connection(self._reload(vol), connector, force=False))
        self.assertEqual([], self._portalis_attachments(vol, status='attached'))
        self.assertNotIn(connector['nqn'], self._backend_acl(vol))

    def test_export_calls_change_nothing(self):
        vol = self._created()
        before = self._portalis_volume(vol)
        self.assertIsNone(self.driver.create_export(self.ctxt, vol, brick_connector()))
        self.assertIsNone(self.driver.ensure_export(self.ctxt, vol))
        self.assertIsNone(self.driver.remove_export(self.ctxt, vol))
        self.assertEqual(before, self._portalis_volume(vol))
        self.assertEqual([], self._portalis_attachments(vol))


class StatsTest(PortalisDriverTestCase):
    def test_stats_are_portalis_capabilities_under_cinders_backend_name(self):
        stats = self.driver.get_volume_stats(refresh=True)
        self.assertEqual('portalis-test', stats['volume_backend_name'])
        self.assertEqual('Portalis', stats['vendor_name'])
        self.assertEqual('NVMe-oF', stats['storage_protocol'])
        self.assertEqual(portalis_driver.PortalisVolumeDriver.VERSION, stats['driver_version'])
        self.assertTrue(stats['multiattach'])
        self.assertTrue(stats['online_extend_support'])
        self.assertTrue(stats['thin_provisioning_support'])
        self.assertIsInstance(stats['total_capacity_gb'], (int, float))
        self.assertIsInstance(stats['free_capacity_gb'], (int, float))

    def test_stats_are_refreshed_when_cinder_asks(self):
        first = self.driver.get_volume_stats(refresh=True)
        self.override_config('reserved_percentage', 15, group=GROUP)
        self.assertIs(first, self.driver.get_volume_stats(refresh=False))
        self.assertEqual(15, self.driver.get_volume_stats(refresh=True)['reserved_percentage'])

    def test_stats_from_an_unreachable_service_are_a_backend_api_exception(self):
        self.driver._client.url = 'http://127.0.0.1:%d' % free_port()
        self.driver._client.retries = 0
        err = self.assertRaises(exception.VolumeBackendAPIException, self.driver.get_volume_stats, True)
        self.assertIn('transport_error', str(err))


class LoggingTest(PortalisDriverTestCase):
    def test_the_token_is_never_logged(self):
        root = logging.getLogger()
        records = []
        handler = logging.Handler(level=logging.DEBUG)
        handler.emit = lambda record: records.append(record.getMessage())
        root.addHandler(handler)
        old_level = root.level
        root.setLevel(logging.DEBUG)
        self.addCleanup(root.removeHandler, handler)
        self.addCleanup(root.setLevel, old_level)

        vol = self._created()
        self.driver.initialize_connection(vol, brick_connector())
        self.assertRaises(exception.VolumeIsBusy, self.driver.delete_volume, vol)
        self.driver.terminate_connection(vol, None, force=True)
        self.driver.delete_volume(vol)
        self.assertTrue(any('Portalis' in r for r in records))
        for text in records:
            self.assertNotIn(SERVICE.token, text)
