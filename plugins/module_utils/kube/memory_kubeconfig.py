# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A connection from a kubeconfig held in memory, with nothing of it ever written to a filesystem.

The `kubernetes` library loads a kubeconfig's embedded `certificate-authority-data` and `client-key-data`
by writing them to temporary files, since Python's `ssl` reads a client certificate and key only from a
path. A kubeconfig that was fetched (from Palette, for one) is kept off the disk instead: it is read here,
the CA goes to the TLS context as data (`cadata`), and the client certificate and key are handed to
`load_cert_chain` through anonymous in-memory files (`os.memfd_create`, or a pipe where that does not exist)
that are closed as soon as they are read.

Only credentials embedded in the kubeconfig are used: a bearer token, a client certificate with its key,
or a user name and password. A kubeconfig that points at files, or runs an exec or auth-provider plugin,
is refused with the field it uses. TLS is always verified, against the embedded CA (the system trust store
without one); `insecure-skip-tls-verify` in such a kubeconfig is not honoured.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import binascii
import contextlib
import errno
import fcntl
import os
import ssl

from ansible_collections.palette.vmo.plugins.module_utils.common.errors import ModuleFailure

# User fields that need a file, a program or a refresh this loader does not run.
UNSUPPORTED_USER_FIELDS = ("exec", "auth-provider", "tokenFile", "client-certificate", "client-key")
UNSUPPORTED_CLUSTER_FIELDS = ("certificate-authority",)


class MemoryKubeconfigError(ModuleFailure):
    """The kubeconfig cannot be used as it is; the message names where it came from and the field."""


class MemoryConnection(object):
    """A connection (see kube/auth.Connection) whose TLS material and credentials live only in this object."""

    verify = True
    impersonate_user = None

    def __init__(self, server, ssl_context, headers, origin, tls_server_name=None, proxy=None):
        self.server = server.rstrip("/")
        self.ssl_context = ssl_context
        self._headers = dict(headers)
        self.origin = origin
        self.tls_server_name = tls_server_name
        self.proxy = proxy

    def auth_headers(self):
        return dict(self._headers)

    @staticmethod
    def impersonate_group_headers():
        return []

    def pool_options(self):
        """Keyword arguments of urllib3's PoolManager: the in-memory TLS context, verification required."""
        options = {"ssl_context": self.ssl_context, "cert_reqs": ssl.CERT_REQUIRED}
        if self.tls_server_name:
            options["server_hostname"] = self.tls_server_name
        return options

    def tls_hint(self):
        return "the CA of %s does not match the server's certificate" % self.origin


def _named(entries, kind, name, origin):
    for entry in entries or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            body = entry.get(kind)
            if isinstance(body, dict):
                return body
    raise MemoryKubeconfigError("%s has no %s named %r" % (origin, kind, name))


def select_context(kubeconfig, origin):
    """(cluster, user) of the current context, or of the only context when none is current."""
    if not isinstance(kubeconfig, dict):
        raise MemoryKubeconfigError("%s is not a kubeconfig (no mapping)" % origin)
    contexts = [c for c in kubeconfig.get("contexts") or [] if isinstance(c, dict)]
    current = kubeconfig.get("current-context")
    if not current:
        if len(contexts) != 1:
            raise MemoryKubeconfigError("%s has no current-context and %d contexts" % (origin, len(contexts)))
        current = contexts[0].get("name")
    context = _named(contexts, "context", current, origin)
    return (_named(kubeconfig.get("clusters"), "cluster", context.get("cluster"), origin),
            _named(kubeconfig.get("users"), "user", context.get("user"), origin))


def _pem(user_or_cluster, field, origin):
    value = user_or_cluster.get(field)
    if not value:
        return None
    try:
        return base64.b64decode("".join(str(value).split()), validate=True)
    except (binascii.Error, ValueError):
        raise MemoryKubeconfigError("%s: %s is not base64" % (origin, field))


def _refuse_unsupported(cluster, user, origin):
    for section, fields, kind in ((cluster, UNSUPPORTED_CLUSTER_FIELDS, "cluster"),
                                  (user, UNSUPPORTED_USER_FIELDS, "user")):
        for field in fields:
            if section.get(field):
                raise MemoryKubeconfigError(
                    "%s: its %s uses %s, which needs a file or a program; only credentials embedded in the "
                    "kubeconfig (token, client-certificate-data with client-key-data, or username with password) "
                    "are used" % (origin, kind, field))


def auth_headers(user, origin):
    """The Authorization header of the user's token or basic credentials ({} for a client certificate)."""
    if user.get("token"):
        return {"authorization": "Bearer %s" % user["token"]}
    if user.get("username") and user.get("password"):
        pair = ("%s:%s" % (user["username"], user["password"])).encode("utf-8")
        return {"authorization": "Basic %s" % base64.b64encode(pair).decode("ascii")}
    if not (user.get("client-certificate-data") and user.get("client-key-data")):
        raise MemoryKubeconfigError("%s: its user has no credentials (token, client-certificate-data with "
                                    "client-key-data, or username with password)" % origin)
    return {}


@contextlib.contextmanager
def memory_file(data):
    """A path that reads back `data` once, backed by memory only; closed when the block ends."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("palette-vmo-tls", getattr(os, "MFD_CLOEXEC", 0))
        try:
            os.write(fd, data)
            os.lseek(fd, 0, os.SEEK_SET)
            yield "/proc/self/fd/%d" % fd
        finally:
            os.close(fd)
        return
    # Without memfd (macOS): a pipe holds the data in the kernel until read. The write must not block, so
    # data larger than the pipe's buffer is refused rather than written somewhere else.
    read_fd, write_fd = os.pipe()
    try:
        fcntl.fcntl(write_fd, fcntl.F_SETFL, fcntl.fcntl(write_fd, fcntl.F_GETFL) | os.O_NONBLOCK)
        try:
            written = os.write(write_fd, data)
        except OSError as err:
            if err.errno != errno.EAGAIN:
                raise
            written = 0
        if written != len(data):
            raise MemoryKubeconfigError("a TLS credential of %d bytes does not fit in a pipe's buffer" % len(data))
        os.close(write_fd)
        write_fd = None
        yield "/dev/fd/%d" % read_fd
    finally:
        os.close(read_fd)
        if write_fd is not None:
            os.close(write_fd)


def tls_context(ca_pem=None, cert_pem=None, key_pem=None):
    """A verifying TLS context: trusts `ca_pem` (else the system store), presents the client certificate if given."""
    context = ssl.create_default_context(cadata=ca_pem.decode("ascii") if ca_pem else None)
    if cert_pem and key_pem:
        with memory_file(cert_pem) as cert_path, memory_file(key_pem) as key_path:
            context.load_cert_chain(cert_path, key_path)
    return context


def memory_connection(kubeconfig, origin):
    """A MemoryConnection for the kubeconfig's current context; `origin` says where the kubeconfig came from."""
    cluster, user = select_context(kubeconfig, origin)
    _refuse_unsupported(cluster, user, origin)
    server = cluster.get("server") or ""
    if not server.startswith("https://"):
        raise MemoryKubeconfigError("%s: its cluster's server %r is not an https:// URL" % (origin, server))
    headers = auth_headers(user, origin)
    try:
        context = tls_context(_pem(cluster, "certificate-authority-data", origin),
                              _pem(user, "client-certificate-data", origin), _pem(user, "client-key-data", origin))
    except (ssl.SSLError, ValueError) as err:
        # The ssl library's reason (such as "PEM lib"), never the material itself.
        reason = getattr(err, "reason", None) or type(err).__name__
        raise MemoryKubeconfigError("%s: its certificates cannot be loaded: %s" % (origin, reason))
    return MemoryConnection(server, context, headers, origin, tls_server_name=cluster.get("tls-server-name"),
                            proxy=cluster.get("proxy-url"))
