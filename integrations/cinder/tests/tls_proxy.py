"""A TLS-terminating TCP proxy in front of `portalis serve`, as an operator deploys one.

The service can serve HTTPS itself or sit behind a TLS proxy (docs/openstack.md); this proxy holds a
certificate for 127.0.0.1 signed by a CA made for the test with the openssl CLI, so that the
driver's `portalis_ca_file` is checked against real TLS. Under eventlet's monkey patching the
threads below are green threads and the sockets green sockets.
"""

import os
import socket
import ssl
import subprocess
import threading


def make_certificates(folder):
    """A CA and a server certificate for IP 127.0.0.1; returns (ca_file, cert_file, key_file)."""
    ca_key, ca_pem = os.path.join(folder, 'ca.key'), os.path.join(folder, 'ca.pem')
    key, csr, pem = (os.path.join(folder, n) for n in ('server.key', 'server.csr', 'server.pem'))
    ext = os.path.join(folder, 'server.ext')
    with open(ext, 'w') as f:
        f.write('subjectAltName=IP:127.0.0.1\n')
    ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
    run = lambda *args: subprocess.run(['openssl'] + list(args), check=True, capture_output=True)  # noqa: E731
    run('req', '-x509', *ec, '-keyout', ca_key, '-out', ca_pem, '-days', '2', '-subj', '/CN=portalis-test-ca')
    run('req', *ec, '-keyout', key, '-out', csr, '-subj', '/CN=127.0.0.1')
    run('x509', '-req', '-in', csr, '-CA', ca_pem, '-CAkey', ca_key, '-CAcreateserial', '-out', pem,
        '-days', '2', '-extfile', ext)
    return ca_pem, pem, key


class TlsProxy(object):
    def __init__(self, target_port, cert_file, key_file):
        self._target = ('127.0.0.1', target_port)
        self._ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._ctx.load_cert_chain(cert_file, key_file)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(('127.0.0.1', 0))
        self._sock.listen(16)
        self.port = self._sock.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        self._closed = True
        self._sock.close()

    def _accept(self):
        while not self._closed:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        try:
            tls = self._ctx.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError):
            conn.close()  # the client refused our certificate: what the test checks
            return
        upstream = socket.create_connection(self._target)
        threading.Thread(target=self._pump, args=(upstream, tls), daemon=True).start()
        self._pump(tls, upstream)

    @staticmethod
    def _pump(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.close()
                except OSError:
                    pass
