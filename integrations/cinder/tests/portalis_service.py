"""A real `portalis serve` for the tests, started from this checkout.

It listens on a free loopback port, uses the PostgreSQL in DATABASE_URL when that is set and
otherwise its embedded one under a temporary PORTALIS_DATA_DIR, and its in-process simulator as
the backend. The admin token goes through the environment, never the command line.
"""

import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time

import requests

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..'))
READY_DEADLINE = 180.0  # seconds: the embedded PostgreSQL's first start (initdb) is the slow part


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class PortalisService(object):
    def __init__(self):
        self.token = 'cinder-test-' + secrets.token_hex(16)
        self.port = None
        self.url = None
        self.sim_url = None
        self._proc = None
        self._dir = None
        self._log = None

    def start(self):
        self._dir = tempfile.mkdtemp(prefix='portalis-cinder-')
        # As root the embedded PostgreSQL runs as the `postgres` user, which must reach its data.
        os.chmod(self._dir, 0o755)
        self.port = free_port()
        self.url = 'http://127.0.0.1:%d' % self.port
        env = dict(os.environ)
        env.update({
            'PORTALIS_HOST': '127.0.0.1',
            'PORTALIS_PORT': str(self.port),
            'PORTALIS_ADMIN_TOKEN': self.token,
            'PORTALIS_DATA_DIR': os.path.join(self._dir, 'data'),
            'PORTALIS_LOG_LEVEL': env.get('PORTALIS_LOG_LEVEL', 'warn'),
        })
        env.pop('PORTALIS_SIM_URL', None)
        env.pop('PORTALIS_BACKEND', None)
        self._log = open(os.path.join(self._dir, 'serve.log'), 'w+')
        self._proc = subprocess.Popen(['node', 'bin/portalis.mjs', 'serve'], cwd=REPO_ROOT, env=env,
                                      stdout=self._log, stderr=subprocess.STDOUT)
        self._wait_ready()
        match = re.search(r'in-process simulator .* at (http://\S+)', self.log())
        self.sim_url = match.group(1) if match else None

    def _wait_ready(self):
        deadline = time.monotonic() + READY_DEADLINE
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError('portalis serve exited with %s:\n%s' % (self._proc.returncode, self.log()))
            try:
                if requests.get(self.url + '/healthz', timeout=2).status_code == 200:
                    return
            except requests.exceptions.RequestException:
                pass
            # Not a fixed wait for the service: the loop ends as soon as /healthz answers.
            time.sleep(0.2)
        self.stop()
        raise RuntimeError('portalis serve did not answer /healthz within %d s:\n%s' % (READY_DEADLINE, self.log()))

    def log(self):
        if not self._log:
            return ''
        self._log.flush()
        with open(self._log.name) as f:
            return f.read()

    def stop(self):
        if self._proc and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._log:
            self._log.close()
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)

    # Direct looks at the service and its simulator, to check what the driver did.

    def api(self, method, path, **kwargs):
        headers = {'Authorization': 'Bearer %s' % self.token}
        return requests.request(method, self.url + path, headers=headers, timeout=30, **kwargs)

    def sim(self, method, path, **kwargs):
        if not self.sim_url:
            raise RuntimeError('the in-process simulator URL is not in the service log')
        return requests.request(method, self.sim_url + path, timeout=30, **kwargs)
