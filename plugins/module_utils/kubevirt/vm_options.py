# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The options of one VM, shared by the top level of kubevirt_vm and each item of its `vms` list."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy

from ansible_collections.palette.vmo.plugins.module_utils.common.errors import ModuleFailure
from ansible_collections.palette.vmo.plugins.module_utils.common.items import joined_errors, validate_items
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.power import POWER_STATES, RUN_STRATEGIES
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.spec import EVICTION_STRATEGIES

STATES = ("present", "absent") + POWER_STATES
# The message of a task that fails before writing anything.
INVALID_INPUT = "invalid input, nothing was changed: "

DATA_VOLUME_OPTIONS = dict(
    name=dict(type="str"),
    size=dict(type="str"),
    storage_class=dict(type="str"),
    access_modes=dict(type="list", elements="str"),
    registry=dict(type="str"),
    http=dict(type="str"),
    clone=dict(type="dict", options=dict(name=dict(type="str", required=True), namespace=dict(type="str"))),
    blank=dict(type="bool"),
)

DISK_OPTIONS = dict(
    name=dict(type="str", required=True),
    bus=dict(type="str"),
    boot_order=dict(type="int"),
    container_disk=dict(type="str"),
    pvc=dict(type="str"),
    empty_disk=dict(type="str"),
    data_volume=dict(type="dict", options=DATA_VOLUME_OPTIONS),
    hotplug=dict(type="bool"),
    size=dict(type="str"),
)

NIC_OPTIONS = dict(
    name=dict(type="str", required=True),
    network=dict(type="str", default="pod"),
    binding=dict(type="str"),
    model=dict(type="str"),
    mac_address=dict(type="str"),
    state=dict(type="str", choices=["present", "absent"]),
)

VM_OPTIONS = dict(
    name=dict(type="str"),
    namespace=dict(type="str"),
    state=dict(type="str", choices=list(STATES)),
    run_strategy=dict(type="str", choices=list(RUN_STRATEGIES)),
    labels=dict(type="dict"),
    annotations=dict(type="dict"),
    cpu=dict(type="dict", options=dict(cores=dict(type="int"), sockets=dict(type="int"), threads=dict(type="int"),
                                       max_sockets=dict(type="int"))),
    memory=dict(type="str"),
    memory_max=dict(type="str"),
    restart_if_required=dict(type="bool"),
    disks=dict(type="list", elements="dict", options=DISK_OPTIONS),
    nics=dict(type="list", elements="dict", options=NIC_OPTIONS),
    cloud_init=dict(type="dict", options=dict(
        user_data=dict(type="str"),
        network_data=dict(type="str"),
        ssh_authorized_keys=dict(type="list", elements="str", no_log=False),
    )),
    instancetype=dict(type="raw"),
    preference=dict(type="raw"),
    node_selector=dict(type="dict"),
    eviction_strategy=dict(type="str", choices=list(EVICTION_STRATEGIES)),
    spec=dict(type="dict"),
    data_volume_templates=dict(type="list", elements="dict"),
    template=dict(type="str"),
)


def strip_none(value):
    """Sub-options Ansible filled with None, removed: None means 'not given'."""
    if isinstance(value, dict):
        return {k: strip_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [strip_none(v) for v in value]
    return value


class ItemError(ModuleFailure):
    """`vms` items that are not made of VM options; `errors` names each item and field."""

    def __init__(self, errors):
        super(ItemError, self).__init__(INVALID_INPUT + joined_errors(errors), errors)


def vm_requests(params):
    """One dict per VM: each `vms` item over the task-level options, or the task-level VM alone."""
    defaults = {key: params.get(key) for key in VM_OPTIONS}
    items = params.get("vms")
    if not items:
        requests = [defaults]
    else:
        # Each item through Ansible's argument-spec validation, as the task-level options went.
        validated, errors = validate_items("vms", items, VM_OPTIONS)
        if errors:
            raise ItemError(errors)
        requests = []
        for item in validated:
            merged = copy.deepcopy(defaults)
            merged.update({k: v for k, v in item.items() if v is not None})
            requests.append(merged)
    result = []
    for request in requests:
        request = strip_none(request)
        request.setdefault("state", "present")
        result.append(request)
    return result
