# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A Palette cluster's kubeconfig: fetched, decoded, its credentials named, and written to a file only the user reads.

Palette serves the kubeconfig as a file download (v1SpectroClustersUidKubeConfigClientGet,
v1SpectroClustersUidAdminKubeConfig); Palette's SDK decodes it when the text is base64 and takes it as it
is otherwise (palette-sdk-go client/cluster.go parseKubeconfig, apiutil.IsBase64).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import binascii
import json
import os
import stat
import tempfile

from ansible.module_utils.six.moves.urllib.parse import quote

from ansible_collections.palette.vmo.plugins.module_utils.common.errors import ModuleFailure
from ansible_collections.palette.vmo.plugins.module_utils.common.yaml_safe import YamlInputError, load_yaml
from ansible_collections.palette.vmo.plugins.module_utils.palette.client import PaletteError

OCTET_STREAM = "application/octet-stream"
FILE_MODE = 0o600
# The fields of a kubeconfig user that are credentials.
SECRET_FIELDS = ("client-key-data", "client-key", "token", "password")


class KubeconfigError(ModuleFailure):
    """Palette has no kubeconfig for the cluster (yet), or it cannot be written where asked."""


def decode_kubeconfig(text):
    """The kubeconfig text: base64 decoded when all of it is base64 (as the SDK's IsBase64 decides)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    compact = "".join((text or "").split())
    if not compact:
        return text or ""
    try:
        decoded = base64.b64decode(compact.encode("ascii"), validate=True)
        return decoded.decode("utf-8")
    except (binascii.Error, ValueError, UnicodeError):
        return text


def fetch_kubeconfig(client, cluster_name, cluster_uid, kind):
    """The decoded kubeconfig of the cluster, `kind` client or admin."""
    try:
        # Palette serves both as a file (application/octet-stream).
        if kind == "admin":
            text = client.call("GET", "/v1/spectroclusters/%s/assets/adminKubeconfig" % quote(cluster_uid),
                               accept=OCTET_STREAM)
        else:
            text = client.call("GET", "/v1/spectroclusters/%s/assets/kubeconfigclient" % quote(cluster_uid),
                               accept=OCTET_STREAM)
    except PaletteError as err:
        if err.status == 404:
            raise KubeconfigError("cluster %s: Palette has no %s kubeconfig for it (yet): %s"
                                  % (cluster_name, kind, err.describe()))
        raise
    if isinstance(text, (dict, list)):
        # The client decodes an answer that is JSON; a kubeconfig may be written in JSON.
        text = json.dumps(text, indent=2, sort_keys=True) + "\n"
    text = decode_kubeconfig(text)
    if not text.strip():
        raise KubeconfigError("cluster %s: Palette returned an empty %s kubeconfig" % (cluster_name, kind))
    return text


def kubeconfig_secrets(text):
    """The credentials in a kubeconfig (keys, tokens, passwords), for no_log; the whole text when unreadable."""
    try:
        document = load_yaml(text)
    except YamlInputError:
        return set([text])
    if not isinstance(document, dict):
        return set([text])
    secrets = set()
    for user in document.get("users") or []:
        fields = user.get("user") if isinstance(user, dict) else None
        if not isinstance(fields, dict):
            continue
        for field in SECRET_FIELDS:
            if isinstance(fields.get(field), str) and fields[field]:
                secrets.add(fields[field])
    return secrets


def file_changes(path, content):
    """What writing `content` to `path` changes: [] or any of "content", "mode"."""
    try:
        info = os.stat(path)
    except OSError:
        return ["content"]
    changes = []
    with open(path, "rb") as current:
        if current.read() != content.encode("utf-8"):
            changes.append("content")
    if stat.S_IMODE(info.st_mode) != FILE_MODE:
        changes.append("mode")
    return changes


def write_kubeconfig(path, content, changes):
    """Writes the file atomically with mode 0600 (a temporary file beside it, renamed over it); a file whose content
    is already right only gets its mode."""
    if "content" not in changes:
        if "mode" in changes:
            os.chmod(path, FILE_MODE)
        return
    directory = os.path.dirname(os.path.abspath(path))
    temporary = None
    try:
        handle, temporary = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), dir=directory)
        os.fchmod(handle, FILE_MODE)
        with os.fdopen(handle, "wb") as out:
            out.write(content.encode("utf-8"))
        os.rename(temporary, path)
    except (IOError, OSError) as err:
        if temporary and os.path.exists(temporary):
            os.unlink(temporary)
        raise KubeconfigError("kubeconfig_dest: cannot write %s: %s" % (path, err))
