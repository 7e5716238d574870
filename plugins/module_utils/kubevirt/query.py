# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Finding VMs with their instances: one list of VMs and one of VMIs per query, joined by name."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.palette.vmo.plugins.module_utils.kube.client import object_path


def selector(parts):
    return ",".join(parts) if parts else None


def find_vms(client, api_version, namespace=None, name=None, label_selectors=None, field_selectors=None):
    """[(vm, vmi or None)] sorted by namespace and name."""
    fields = list(field_selectors or [])
    if name:
        fields.append("metadata.name=%s" % name)
    query = {"labelSelector": selector(label_selectors), "fieldSelector": selector(fields)}
    vms = client.list_all(object_path(api_version, "virtualmachines", namespace=namespace), query)[0]
    if not vms:
        return []
    # VMIs carry the VM's template labels, not its own: select them by name instead.
    vmi_query = {"fieldSelector": "metadata.name=%s" % name} if name else None
    vmis = client.list_all(object_path(api_version, "virtualmachineinstances", namespace=namespace), vmi_query)[0]
    by_key = {(i["metadata"]["namespace"], i["metadata"]["name"]): i for i in vmis}
    pairs = [(vm, by_key.get((vm["metadata"]["namespace"], vm["metadata"]["name"]))) for vm in vms]
    return sorted(pairs, key=lambda pair: (pair[0]["metadata"]["namespace"], pair[0]["metadata"]["name"]))
