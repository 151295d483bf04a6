"""The ``cinder.conf`` options of the Portalis driver, registered by ``driver.py``."""

from oslo_config import cfg

portalis_opts = [
    cfg.URIOpt('portalis_url',
               schemes=['http', 'https'],
               help='Base URL of the Portalis driver service, e.g. '
                    'https://portalis.example:8080.'),
    cfg.StrOpt('portalis_token',
               secret=True,
               help='Admin bearer token of the Portalis service (its PORTALIS_ADMIN_TOKEN).'),
    cfg.StrOpt('portalis_ca_file',
               help='CA bundle that signed the Portalis service\'s TLS certificate. Unset: the '
                    'system\'s CA store.'),
    cfg.IntOpt('portalis_api_timeout',
               default=120,
               min=1,
               help='Seconds to wait for one Portalis answer. Keep it above the service\'s own '
                    'backend operation deadline (PORTALIS_LIGHTOS_OPERATION_TIMEOUT_MS, 100 s by '
                    'default) so that a slow backend ends in Portalis\'s error, not a timeout.'),
    cfg.IntOpt('portalis_api_retries',
               default=3,
               min=0,
               help='Extra attempts of a Portalis call after no answer or a 502/503/504 (every '
                    'Portalis call is idempotent).'),
    cfg.FloatOpt('portalis_api_retry_interval',
                 default=1.0,
                 min=0,
                 help='Seconds before the first retry; doubled for each next one (at most 10).'),
]
