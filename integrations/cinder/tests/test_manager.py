"""PortalisVolumeDriver under Cinder's own volume manager: the code a cinder-volume service runs.

The manager is built as cinder-volume builds it (volume_driver = portalis_cinder.driver...) and
its RPC-facing methods are called as the scheduler and the API call them: create (plain and from
a snapshot), snapshot, extend, attachment update and delete (Cinder's attach API), delete, and
the periodic stats report. The service behind it is the module's real `portalis serve`.
"""

import uuid

from cinder import context
from cinder import objects
from cinder.objects import fields
from cinder.tests.unit import utils as test_utils
from cinder.volume import manager as volume_manager

from tests.test_driver import brick_connector
from tests.test_driver import GROUP
from tests.test_driver import PortalisDriverTestCase
from tests.test_driver import SERVICE
from tests.test_driver import setUpModule  # noqa: F401  (one portalis serve per module)
from tests.test_driver import tearDownModule  # noqa: F401

DRIVER = 'portalis_cinder.driver.PortalisVolumeDriver'


class CinderManagerTest(PortalisDriverTestCase):
    def setUp(self):
        super(CinderManagerTest, self).setUp()
        self.ctxt = context.get_admin_context()
        self.manager = volume_manager.VolumeManager(volume_driver=DRIVER, service_name=GROUP)
        self.assertEqual(DRIVER, '%s.%s' % (type(self.manager.driver).__module__,
                                             type(self.manager.driver).__name__))
        # What init_host does for the driver before the service takes requests.
        self.manager.driver.do_setup(self.ctxt)
        self.manager.driver.check_for_setup_error()
        self.manager.driver.set_initialized()
        self.mock_object(self.manager, 'message_api')
        # init_host starts the manager's allocated-capacity count this way.
        self.manager.stats = {'allocated_capacity_gb': 0, 'pools': {}}

    def _new_volume(self, size=1, **kwargs):
        # No cleanup of the type: Cinder's test base gives every test a fresh database.
        vtype = test_utils.create_volume_type(self.ctxt, name='portalis-%s' % uuid.uuid4().hex[:8],
                                              extra_specs={'portalis:replicas': '3'})
        vol = test_utils.create_volume(self.ctxt, size=size, status='creating', volume_type_id=vtype.id,
                                       host=self.manager.host, **kwargs)
        self.addCleanup(self._force_delete, vol.name_id)
        return vol

    def _load(self, vol):
        return objects.Volume.get_by_id(self.ctxt, vol.id)

    def test_the_whole_lifecycle_through_the_volume_manager(self):
        vol = self._new_volume(size=1)
        self.manager.create_volume(self.ctxt, vol)
        vol = self._load(vol)
        self.assertEqual('available', vol.status)
        self.assertEqual(1, self._portalis_volume(vol)['size_gb'])

        snap = test_utils.create_snapshot(self.ctxt, vol.id, status=fields.SnapshotStatus.CREATING)
        self.manager.create_snapshot(self.ctxt, snap)
        snap = objects.Snapshot.get_by_id(self.ctxt, snap.id)
        self.assertEqual('available', snap.status)

        clone = self._new_volume(size=2, snapshot_id=snap.id)
        self.manager.create_volume(self.ctxt, clone)
        clone = self._load(clone)
        self.assertEqual('available', clone.status)
        self.assertEqual({'snapshot_id': snap.id}, self._portalis_volume(clone)['source'])
        self.assertEqual(2, self._portalis_volume(clone)['size_gb'])

        vol.status = 'extending'
        vol.save()
        self.manager.extend_volume(self.ctxt, vol, 3, reservations=None)
        vol = self._load(vol)
        self.assertEqual(3, vol.size)
        self.assertEqual(3, self._portalis_volume(vol)['size_gb'])

        # Cinder's attach API: reserve, then update with the host's connector (what Nova does).
        att = objects.VolumeAttachment(self.ctxt, volume_id=vol.id, instance_uuid=str(uuid.uuid4()),
                                       attach_status='reserved', attach_mode='null')
        att.create()
        vol.status = 'reserved'
        vol.save()
        connector = brick_connector()
        info = self.manager.attachment_update(self.ctxt, self._load(vol), connector, att.id)
        # The manager flattens the driver's answer: data keys plus driver_volume_type.
        self.assertEqual('nvmeof', info['driver_volume_type'])
        self.assertEqual(att.id, info['attachment_id'])
        [portalis_att] = self._portalis_attachments(vol, status='attached')
        for key, value in portalis_att['connection_info']['data'].items():
            self.assertEqual(value, info[key], key)
        self.assertEqual(att.instance_uuid, portalis_att['instance_uuid'])
        stored = objects.VolumeAttachment.get_by_id(self.ctxt, att.id)
        self.assertEqual(connector['nqn'], stored.connector['nqn'])
        self.assertIn(connector['nqn'], self._backend_acl(vol))

        self.manager.attachment_delete(self.ctxt, att.id, self._load(vol))
        self.assertEqual([], self._portalis_attachments(vol, status='attached'))
        self.assertNotIn(connector['nqn'], self._backend_acl(vol))

        self.manager.delete_volume(self.ctxt, self._load(clone))
        self.assertIsNone(self._portalis_volume(clone))
        self.manager.delete_snapshot(self.ctxt, objects.Snapshot.get_by_id(self.ctxt, snap.id))
        self.assertEqual(404, SERVICE.api('GET', '/v1/snapshots/%s' % snap.id).status_code)
        self.manager.delete_volume(self.ctxt, self._load(vol))
        self.assertIsNone(self._portalis_volume(vol))

    def test_deleting_an_attached_volume_leaves_it_available(self):
        vol = self._new_volume()
        self.manager.create_volume(self.ctxt, vol)
        self.manager.driver.initialize_connection(self._load(vol), brick_connector())
        vol = self._load(vol)
        vol.status = 'deleting'
        vol.save()
        self.manager.delete_volume(self.ctxt, vol)
        self.assertEqual('available', self._load(vol).status)
        self.assertEqual('available', self._portalis_volume(vol)['status'])

    def test_the_periodic_report_carries_portalis_capabilities(self):
        self.manager._report_driver_status(self.ctxt)
        caps = self.manager.last_capabilities
        self.assertEqual('portalis-test', caps['volume_backend_name'])
        self.assertEqual('NVMe-oF', caps['storage_protocol'])
        self.assertEqual('Portalis', caps['vendor_name'])
        self.assertTrue(caps['multiattach'])
