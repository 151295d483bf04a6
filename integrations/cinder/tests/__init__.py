# Cinder's unit-test base monkey-patches with eventlet when cinder.tests.unit is imported. That
# must happen before anything imports `ssl` (requests and urllib3 do): on Python 3.11 an `ssl`
# imported before eventlet's patch makes urllib3's SSLContext setup recurse in
# `SSLContext.options` (eventlet issue #371). So the patch comes first, here, before any module of
# this package or of requests is loaded.
import eventlet

eventlet.monkey_patch()

import cinder.tests.unit  # noqa: E402,F401  (the rest of Cinder's test set-up: objects, threading)
