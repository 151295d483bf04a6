"""Portalis errors as the Cinder exceptions the volume manager acts on."""

from oslo_log import log as logging

from cinder import exception
from cinder.i18n import _

LOG = logging.getLogger(__name__)


def translate(err, volume=None, snapshot=None, source_volume=None, deleting=False):
    """The Cinder exception for a Portalis error.

    ``deleting``: the call was delete_volume, whose manager turns VolumeIsBusy into "left
    available, not deleted" (an attached volume, or one with snapshots).
    """
    LOG.error('Portalis call failed: %s', err.describe())
    code = err.code
    if code == 'volume_in_use' and deleting:
        return exception.VolumeIsBusy(
            message=_('volume %(name)s is in use: %(msg)s') % {
                'name': volume.name, 'msg': err.message},
            volume_name=volume.name)
    if code == 'volume_has_snapshots' and deleting:
        return exception.VolumeIsBusy(volume_name=volume.name)
    if code == 'snapshot_not_found' and snapshot is not None:
        return exception.SnapshotNotFound(snapshot_id=snapshot.id)
    if code == 'volume_not_found':
        missing = source_volume if source_volume is not None else volume
        if missing is not None:
            return exception.VolumeNotFound(volume_id=missing.id)
    if code == 'invalid_connector':
        return exception.InvalidConnectorException(missing=err.message)
    if err.status == 400:
        return exception.InvalidInput(reason=_('Portalis %(code)s: %(msg)s') % {
            'code': code, 'msg': err.message})
    return exception.VolumeBackendAPIException(data=_('Portalis %s') % err.describe())
