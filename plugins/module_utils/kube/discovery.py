# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which version of an API group the cluster serves: asked, never assumed.

Palette's VMO pack can pin an older KubeVirt than upstream; the group's own discovery document
says which versions exist and which one the server prefers.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.palette.vmo.plugins.module_utils.common.errors import ModuleFailure
from ansible_collections.palette.vmo.plugins.module_utils.kube.client import KubeApiError


class DiscoveryError(ModuleFailure):
    """The cluster does not serve the API group or version asked for."""


def served_versions(client, group):
    try:
        info = client.get("/apis/%s" % group)
    except KubeApiError as err:
        if err.status == 404:
            raise DiscoveryError("the cluster does not serve the API group %s (is KubeVirt installed?)" % group)
        raise
    return info


def serves(client, group):
    """Whether the cluster serves the API group at all."""
    try:
        served_versions(client, group)
        return True
    except DiscoveryError:
        return False


def preferred_version(client, group, requested=None):
    """`group/version`: the requested one if served, else the server's preferred one."""
    info = served_versions(client, group)
    served = [v["groupVersion"] for v in info.get("versions") or []]
    if requested:
        wanted = requested if "/" in requested else "%s/%s" % (group, requested)
        if wanted not in served:
            raise DiscoveryError("api_version %s is not served; the cluster serves %s" % (wanted, ", ".join(served)))
        return wanted
    return info["preferredVersion"]["groupVersion"]
