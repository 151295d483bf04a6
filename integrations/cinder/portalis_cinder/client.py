"""A small REST client of the Portalis driver service (``/v1``).

Every Portalis call is idempotent by design (creates are keyed by the caller's id, deletes of
something already gone succeed, initialize/terminate converge), so any call may be repeated:
transport failures (refused, reset, timed out), the service's 502/503/504 answers and its 409
``busy`` are retried a bounded number of times with a doubling pause. Any other answer goes back
to the caller as a :class:`PortalisError` carrying Portalis's stable error ``code``.

The token is sent as ``Authorization: Bearer`` and never logged: requests' own logging (urllib3)
prints only the method and path, and this module logs the method, path and status.
"""

import time

from oslo_log import log as logging
import requests

LOG = logging.getLogger(__name__)

#: Statuses after which the same request may succeed when repeated (Portalis answers these for
#: backend failures, timeouts and a database that does not answer).
RETRYABLE_STATUSES = frozenset({502, 503, 504})

#: Portalis's 409 `busy`: another operation held the volume's lock for the whole lock timeout.
RETRYABLE_CODES = frozenset({'busy'})

#: Longest pause between two attempts, in seconds.
MAX_RETRY_PAUSE = 10.0


class PortalisError(Exception):
    """Portalis answered with an error.

    ``status`` is the HTTP status, ``code`` Portalis's stable error code (``volume_in_use``,
    ``backend_unavailable``, ...; ``transport_error`` when no answer came at all).
    """

    def __init__(self, method, path, status, code, message, details=None):
        self.method = method
        self.path = path
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        super().__init__(self.describe())

    def describe(self):
        where = '%s %s' % (self.method, self.path)
        if self.status is None:
            return '%s: %s (%s)' % (where, self.message, self.code)
        return '%s: %s %s: %s' % (where, self.status, self.code, self.message)


class PortalisClient(object):
    """Talks to one Portalis service.

    :param url: base URL, e.g. ``https://portalis.example:8080``
    :param token: the admin bearer token
    :param ca_file: CA bundle to verify the service's TLS certificate (None: the system's)
    :param timeout: seconds per HTTP request (connect and read)
    :param retries: extra attempts after a transport failure or a 502/503/504
    :param retry_interval: pause before the first retry in seconds, doubled for each next one
    """

    def __init__(self, url, token, ca_file=None, timeout=60, retries=3, retry_interval=1.0,
                 session=None):
        self.url = url.rstrip('/')
        self._token = token
        self._verify = ca_file if ca_file else True
        self.timeout = timeout
        self.retries = max(0, int(retries))
        self.retry_interval = max(0.0, float(retry_interval))
        self._session = session or requests.Session()

    def __repr__(self):
        # Never the token.
        return 'PortalisClient(%s)' % self.url

    # The calls, one per Portalis operation.

    def get_capabilities(self):
        return self._call('GET', '/v1/capabilities')

    def create_volume(self, body):
        return self._call('POST', '/v1/volumes', body)

    def delete_volume(self, volume_id):
        return self._call('DELETE', '/v1/volumes/%s' % volume_id)

    def extend_volume(self, volume_id, new_size_gb):
        return self._call('POST', '/v1/volumes/%s/extend' % volume_id, {'new_size_gb': new_size_gb})

    def create_snapshot(self, volume_id, body):
        return self._call('POST', '/v1/volumes/%s/snapshots' % volume_id, body)

    def delete_snapshot(self, snapshot_id):
        return self._call('DELETE', '/v1/snapshots/%s' % snapshot_id)

    def initialize_connection(self, volume_id, body):
        return self._call('POST', '/v1/volumes/%s/initialize_connection' % volume_id, body)

    def terminate_connection(self, volume_id, body):
        return self._call('POST', '/v1/volumes/%s/terminate_connection' % volume_id, body)

    # The transport.

    def _call(self, method, path, body=None):
        headers = {'Accept': 'application/json', 'Authorization': 'Bearer %s' % self._token}
        attempt = 0
        while True:
            try:
                resp = self._session.request(method, self.url + path, json=body, headers=headers,
                                             timeout=self.timeout, verify=self._verify)
            except requests.exceptions.SSLError as e:
                # A certificate problem does not go away by itself: no retry.
                raise PortalisError(method, path, None, 'tls_error',
                                    'TLS failure towards %s: %s' % (self.url, e))
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as e:
                if attempt < self.retries:
                    attempt = self._pause(attempt, method, path, type(e).__name__)
                    continue
                raise PortalisError(method, path, None, 'transport_error',
                                    'no answer from %s after %d attempt(s): %s'
                                    % (self.url, attempt + 1, type(e).__name__))
            LOG.debug('Portalis %s %s: %s', method, path, resp.status_code)
            if resp.status_code >= 400:
                err = self._error(method, path, resp)
                retryable = resp.status_code in RETRYABLE_STATUSES or err.code in RETRYABLE_CODES
                if retryable and attempt < self.retries:
                    attempt = self._pause(attempt, method, path, '%d %s' % (err.status, err.code))
                    continue
                raise err
            if resp.status_code == 204 or not resp.content:
                return None
            try:
                return resp.json()
            except ValueError:
                raise PortalisError(method, path, resp.status_code, 'invalid_response',
                                    'the answer is not JSON')

    def _pause(self, attempt, method, path, why):
        pause = min(self.retry_interval * (2 ** attempt), MAX_RETRY_PAUSE)
        LOG.warning('Portalis %(method)s %(path)s failed (%(why)s); retry %(n)d of %(max)d '
                    'in %(pause).1f s',
                    {'method': method, 'path': path, 'why': why, 'n': attempt + 1,
                     'max': self.retries, 'pause': pause})
        time.sleep(pause)
        return attempt + 1

    @staticmethod
    def _error(method, path, resp):
        code, message, details = 'http_%d' % resp.status_code, resp.reason or '', None
        try:
            err = resp.json().get('error') or {}
            code = err.get('code') or code
            message = err.get('message') or message
            details = err.get('details')
        except (ValueError, AttributeError):
            pass
        return PortalisError(method, path, resp.status_code, code, message, details)
