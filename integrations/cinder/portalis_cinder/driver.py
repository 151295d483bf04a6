"""Cinder volume driver for Portalis, an NVMe-oF volume service.

Each driver call is one call of the Portalis REST API (``/v1``): the service keeps the
attachments, builds the NVMe-oF connection info and talks to the storage backend, so this
driver only translates. Enable it in ``cinder.conf``::

    [portalis]
    volume_driver = portalis_cinder.driver.PortalisVolumeDriver
    volume_backend_name = portalis
    portalis_url = https://portalis.example:8080
    portalis_token = <admin token>
    portalis_ca_file = /etc/cinder/portalis-ca.pem

Volume type extra specs: ``portalis:replicas`` (1-3), ``portalis:compression`` (``<is> True``),
``portalis:qos_policy`` (the backend's QoS policy UUID) and Cinder's ``multiattach``
(``<is> True``). Volumes are known to Portalis by their Cinder ``name_id`` (the id the backend
name ``volume-<id>`` is built from, which Cinder keeps across a migration), snapshots by their id.
"""

from oslo_config import cfg
from oslo_log import log as logging
from oslo_utils import strutils

from cinder.common import constants
from cinder import context as cinder_context
from cinder import exception
from cinder.i18n import _
from cinder import interface
from cinder import objects
from cinder.volume import configuration
from cinder.volume import driver
from cinder.volume import volume_types

from portalis_cinder.client import PortalisClient
from portalis_cinder.client import PortalisError
from portalis_cinder.errors import translate
from portalis_cinder.options import portalis_opts

LOG = logging.getLogger(__name__)

CONF = cfg.CONF
CONF.register_opts(portalis_opts, group=configuration.SHARED_CONF_GROUP)

#: Attachment statuses that no longer hold a host connection.
_ENDED_ATTACH_STATUSES = ('detached', 'deleted')


def _spec_bool(value, key):
    """A boolean extra spec: ``<is> True``, ``True``, ``true``, ``1``, ..."""
    text = str(value).strip()
    if text.lower().startswith('<is>'):
        text = text[4:].strip()
    try:
        return strutils.bool_from_string(text, strict=True)
    except ValueError:
        raise exception.InvalidVolumeType(
            reason=_('extra spec %(key)s=%(value)s is not a boolean') % {'key': key, 'value': value})


def _spec_replicas(value):
    try:
        replicas = int(str(value).strip())
    except ValueError:
        replicas = 0
    if not 1 <= replicas <= 3:
        raise exception.InvalidVolumeType(
            reason=_('extra spec portalis:replicas=%s is not 1, 2 or 3') % value)
    return replicas


def _same_host(attachment, connector):
    """Whether a Cinder attachment was made from the host ``connector`` describes.

    NVMe-oF hosts are told apart by their host NQN, as Cinder's own NVMe-oF target does; the
    host name is the fallback for attachments whose connector has no NQN.
    """
    stored = attachment.connector or {}
    nqn = connector.get('nqn')
    if nqn and stored.get('nqn'):
        return stored['nqn'] == nqn
    host = connector.get('host')
    return bool(host) and host in (stored.get('host'), attachment.attached_host)


@interface.volumedriver
class PortalisVolumeDriver(driver.VolumeDriver):
    """NVMe-oF volumes through the Portalis driver service.

    .. code-block:: none

      Version history:
        1.0.0 - Initial driver: volumes, snapshots, clones, online extend, multiattach,
                NVMe-oF connection info from Portalis, capabilities from Portalis.
    """

    VERSION = '1.0.0'
    # The ThirdPartySystems wiki page of the CI that tests this driver.
    CI_WIKI_NAME = 'Portalis_CI'
    # Portalis keeps every state in its own PostgreSQL and serialises per volume there, so
    # several cinder-volume services may drive it at once.
    SUPPORTS_ACTIVE_ACTIVE = True

    def __init__(self, *args, **kwargs):
        super(PortalisVolumeDriver, self).__init__(*args, **kwargs)
        self.configuration.append_config_values(portalis_opts)
        self._client = None
        self._capabilities = None
        self._stats = {}

    @classmethod
    def get_driver_options(cls):
        additional = cls._get_oslo_driver_opts('volume_backend_name', 'reserved_percentage')
        return portalis_opts + additional

    # Set-up.

    def do_setup(self, context):
        """Check the configuration and that Portalis answers and takes the token."""
        conf = self.configuration
        for name in ('portalis_url', 'portalis_token'):
            if not conf.safe_get(name):
                raise exception.InvalidConfigurationValue(option=name, value=None)
        self._client = PortalisClient(
            conf.portalis_url, conf.portalis_token, ca_file=conf.safe_get('portalis_ca_file'),
            timeout=conf.portalis_api_timeout, retries=conf.portalis_api_retries,
            retry_interval=conf.portalis_api_retry_interval)
        try:
            self._capabilities = self._client.get_capabilities()
        except PortalisError as e:
            if e.status == 401:
                msg = _('Portalis at %s refused portalis_token (401 unauthorized): set it to the '
                        'service\'s admin token') % conf.portalis_url
            elif e.code == 'tls_error':
                msg = _('Portalis at %(url)s: TLS verification failed (is portalis_ca_file the CA '
                        'that signed its certificate?): %(err)s') % {
                    'url': conf.portalis_url, 'err': e.describe()}
            elif e.status is None:
                msg = _('Portalis at %(url)s is unreachable: %(err)s') % {
                    'url': conf.portalis_url, 'err': e.describe()}
            else:
                msg = _('Portalis at %(url)s answered %(err)s') % {
                    'url': conf.portalis_url, 'err': e.describe()}
            LOG.error(msg)
            raise exception.VolumeDriverException(message=msg)
        LOG.info('Portalis at %(url)s answers (service version %(version)s).',
                 {'url': conf.portalis_url,
                  'version': self._capabilities.get('driver_version')})

    def check_for_setup_error(self):
        caps = self._capabilities
        if self._client is None or caps is None:
            raise exception.VolumeDriverException(message=_('Portalis driver is not set up'))
        if caps.get('vendor_name') != 'Portalis' or caps.get('storage_protocol') != constants.NVMEOF:
            msg = _('%(url)s is not a Portalis service (vendor_name %(vendor)s, storage_protocol '
                    '%(proto)s)') % {'url': self._client.url, 'vendor': caps.get('vendor_name'),
                                     'proto': caps.get('storage_protocol')}
            raise exception.VolumeDriverException(message=msg)

    # Volumes.

    def create_volume(self, volume):
        self._create(volume, None)

    def create_volume_from_snapshot(self, volume, snapshot):
        self._create(volume, {'snapshot_id': snapshot.id}, snapshot=snapshot)

    def create_cloned_volume(self, volume, src_vref):
        self._create(volume, {'volume_id': src_vref.name_id}, source_volume=src_vref)

    def _create(self, volume, source, snapshot=None, source_volume=None):
        body = {'id': volume.name_id, 'size_gb': volume.size}
        body.update(self._type_options(volume))
        if source:
            body['source'] = source
        try:
            created = self._client.create_volume(body)
        except PortalisError as e:
            raise translate(e, volume=volume, snapshot=snapshot, source_volume=source_volume)
        LOG.info('Portalis volume %(id)s created (%(size)s GiB, %(replicas)s replicas).',
                 {'id': created['id'], 'size': created['size_gb'], 'replicas': created['replicas']})

    def _type_options(self, volume):
        """The create options a volume's type asks for."""
        specs = {}
        if volume.volume_type_id:
            specs = volume_types.get_volume_type_extra_specs(volume.volume_type_id) or {}
        options = {}
        if 'portalis:replicas' in specs:
            options['replicas'] = _spec_replicas(specs['portalis:replicas'])
        # Cinder's standard `compression` capability spec is honoured too; ours wins.
        for key in ('compression', 'portalis:compression'):
            if key in specs:
                options['compression'] = _spec_bool(specs[key], key)
        if specs.get('portalis:qos_policy'):
            options['qos_policy_id'] = str(specs['portalis:qos_policy']).strip()
        multiattach = bool(volume.multiattach)
        if 'multiattach' in specs:
            multiattach = multiattach or _spec_bool(specs['multiattach'], 'multiattach')
        options['multiattach'] = multiattach
        return options

    def delete_volume(self, volume):
        """Delete; a volume Portalis does not know is a success (Cinder's contract)."""
        try:
            self._client.delete_volume(volume.name_id)
        except PortalisError as e:
            raise translate(e, volume=volume, deleting=True)

    def extend_volume(self, volume, new_size):
        try:
            self._client.extend_volume(volume.name_id, int(new_size))
        except PortalisError as e:
            raise translate(e, volume=volume)

    # Snapshots.

    def create_snapshot(self, snapshot):
        body = {'id': snapshot.id}
        if snapshot.display_name:
            body['name'] = snapshot.display_name[:255]
        try:
            self._client.create_snapshot(snapshot.volume.name_id, body)
        except PortalisError as e:
            raise translate(e, volume=snapshot.volume, snapshot=snapshot)

    def delete_snapshot(self, snapshot):
        """Delete; a snapshot Portalis does not know is a success."""
        try:
            self._client.delete_snapshot(snapshot.id)
        except PortalisError as e:
            raise translate(e, snapshot=snapshot)

    # Exports: Portalis grants access in initialize_connection and revokes it in
    # terminate_connection, so there is nothing to export.

    def create_export(self, context, volume, connector):
        pass

    def ensure_export(self, context, volume):
        pass

    def remove_export(self, context, volume):
        pass

    def create_export_snapshot(self, context, snapshot, connector):
        pass

    def remove_export_snapshot(self, context, snapshot):
        pass

    # Connections.

    def validate_connector(self, connector):
        if not connector.get('nqn'):
            raise exception.InvalidConnectorException(missing='nqn')
        if not connector.get('host'):
            raise exception.InvalidConnectorException(missing='host')

    def initialize_connection(self, volume, connector, **kwargs):
        """Grant the host access; Portalis's NVMe-oF connection info goes back unchanged."""
        body = {'connector': connector}
        instance = self._instance_uuid(volume, connector)
        if instance:
            body['instance_uuid'] = instance
        if connector.get('mode') in ('rw', 'ro'):
            body['access_mode'] = connector['mode']
        try:
            answer = self._client.initialize_connection(volume.name_id, body)
        except PortalisError as e:
            raise translate(e, volume=volume)
        LOG.debug('Portalis attachment %(att)s of volume %(vol)s for %(host)s.',
                  {'att': answer.get('attachment_id'), 'vol': volume.name_id,
                   'host': connector.get('host')})
        return answer['connection_info']

    def terminate_connection(self, volume, connector, **kwargs):
        """Remove a host's connection; ``connector`` None removes every host's.

        Returns True when other attachments of the volume still use the host's connection, as
        Cinder expects (it then keeps the export and os-brick keeps the host's controllers).

        Cinder passes the volume, the connector and ``force``, not the attachment that ends, so
        the call is not narrowed to an instance: a volume without multiattach has at most one
        attachment in Portalis, and a multiattach volume one per host (see _instance_uuid).
        """
        force = bool(kwargs.get('force', False))
        if connector is None:
            body = {'connector': None, 'force': True}
        else:
            if volume.multiattach and len(self._host_attachments(volume, connector)) > 1:
                # Several instances of this host share the connection and Cinder does not say
                # which one leaves: keep the host's access until the last one goes, as Cinder's
                # LVM driver does.
                LOG.debug('Volume %(vol)s has other attachments on %(host)s; connection kept.',
                          {'vol': volume.id, 'host': connector.get('host')})
                return True
            body = {'connector': connector, 'force': force}
        try:
            answer = self._client.terminate_connection(volume.name_id, body)
        except PortalisError as e:
            raise translate(e, volume=volume)
        return bool(answer.get('shared'))

    @staticmethod
    def _attachments(volume):
        """The volume's live Cinder attachments, read afresh.

        The volume object Cinder hands over may predate the attachment this call is about (an
        attachment created together with its connector is reserved after the API loaded the
        volume), so its ``volume_attachment`` list is not trusted.
        """
        records = objects.VolumeAttachmentList.get_all_by_volume_id(
            cinder_context.get_admin_context(), volume.id)
        return [a for a in records if a.attach_status not in _ENDED_ATTACH_STATUSES]

    def _host_attachments(self, volume, connector):
        return [a for a in self._attachments(volume) if _same_host(a, connector)]

    def _instance_uuid(self, volume, connector):
        """The instance the connection is for, when Cinder's records name exactly one.

        Cinder hands initialize_connection the volume and the connector, not the attachment. A
        volume without multiattach has one attachment at a time (two of one instance during a
        live migration): its instance is the one of the attachment from this host or not yet
        bound to a host. Multiattach volumes are attached per host, without an instance, because
        terminate_connection cannot tell which of a host's instances leaves.
        """
        if volume.multiattach:
            return None
        instances = set()
        for a in self._attachments(volume):
            if a.instance_uuid and (not (a.connector or a.attached_host) or _same_host(a, connector)):
                instances.add(a.instance_uuid)
        return instances.pop() if len(instances) == 1 else None

    # Stats.

    def get_volume_stats(self, refresh=False):
        if refresh or not self._stats:
            self._update_volume_stats()
        return self._stats

    def _update_volume_stats(self):
        try:
            caps = self._client.get_capabilities()
        except PortalisError as e:
            raise translate(e)
        self._capabilities = caps
        stats = dict(caps)
        stats['volume_backend_name'] = (self.configuration.safe_get('volume_backend_name') or
                                        caps.get('volume_backend_name') or 'portalis')
        stats['driver_version'] = self.VERSION
        stats['portalis_version'] = caps.get('driver_version')
        reserved = self.configuration.safe_get('reserved_percentage')
        if reserved:
            stats['reserved_percentage'] = reserved
        stats['sparse_copy_volume'] = True
        self._stats = stats

    def _init_vendor_properties(self):
        properties = {}
        self._set_property(properties, 'portalis:replicas', 'Replicas',
                           _('How many storage nodes hold the volume.'), 'integer',
                           minimum=1, maximum=3, default=3)
        self._set_property(properties, 'portalis:compression', 'Compression',
                           _('Compress the volume on the backend.'), 'boolean', default=False)
        self._set_property(properties, 'portalis:qos_policy', 'QoS policy',
                           _('UUID of a QoS policy defined on the backend.'), 'string')
        return properties, 'portalis'
