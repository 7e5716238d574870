#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: maas_machine
short_description: Enlist, commission, tag, pool, deploy and release MAAS machines, one or many per task
version_added: 0.1.0
description:
  - Brings MAAS machines to a declared state through MAAS's state machine, every machine of the task at once, with
    one bounded wait.
  - Enlists by BMC (O(power_type) and O(power_parameters)); the PXE MAC is optional only for C(ipmi), as MAAS creates
    a machine without MACs only through an IPMI BMC. An existing machine is found by system_id, hostname, any of
    its MACs or its BMC address, so a machine is never created twice, also when a run was interrupted and run again.
  - Checks the whole task first (power types and their parameters as the MAAS server describes them, zones, pools,
    architectures MAAS has boot images for, MACs, names, O(wait_timeout), O(poll_interval), O(concurrency)) and fails
    before any write if anything is wrong. Two machines of one task may not share a system_id, host name, MAC or BMC
    address.
  - When MAAS refuses a create because the host name or a MAC already exists (another run created the machine
    meanwhile, or an earlier request took effect but its answer was lost), the machine is read back and adopted if it
    carries every identity given (host name, MACs, BMC address); otherwise the task fails with MAAS's words.
  - A failure after something was written reports C(changed=true) and, in RV(machines), each machine that was
    written with its actions.
  - A failed commissioning or deployment fails the task with the failing scripts' names.
  - Needs a MAAS administrator's API key (MAAS reserves power types, power parameters, commissioning and tags for
    administrators); another user's key fails before any change.
  - A locked machine is refused before any change, since MAAS refuses every change to it.
author:
  - palette.vmo contributors (!UNKNOWN)
extends_documentation_fragment:
  - palette.vmo.attributes
  - palette.vmo.maas_auth
attributes:
  check_mode:
    support: full
    details: Only reads (GET requests); C(changed) and the planned actions are predicted.
  diff_mode:
    support: full
    details: Before and after of the hostname, status, zone, pool, tags, power state and distro series.
options:
  machines:
    description:
      - Many machines in one task. Each item takes the per-machine options of this module (O(system_id),
        O(hostname), O(domain), O(architecture), O(description), O(power_type), O(power_parameters), O(pxe_mac),
        O(mac_addresses), O(state), O(zone), O(pool), O(tags), O(tags_exclusive), O(power), O(distro_series),
        O(hwe_kernel), O(user_data), O(erase), O(secure_erase), O(quick_erase), O(comment)); an option missing from
        an item takes the task-level value.
    type: list
    elements: dict
  system_id:
    description: MAAS system id of an existing machine.
    type: str
  hostname:
    description: Host name; set on the machine, and used to find it.
    type: str
  domain:
    description: DNS domain of the machine.
    type: str
  architecture:
    description:
      - Architecture, V(amd64/generic) when creating. One MAAS has boot images for (GET /boot-resources/); V(amd64)
        means V(amd64/generic), as in MAAS. A kernel (V(hwe-22.04)) goes in O(hwe_kernel), not here.
    type: str
  description:
    description: Free text description.
    type: str
  power_type:
    description: BMC power type, such as V(ipmi), V(redfish), V(virsh), V(amt) or V(manual).
    type: str
  power_parameters:
    description:
      - BMC parameters of O(power_type), such as C(power_address), C(power_user) and C(power_pass). The address is
        also used to find the machine again.
    type: dict
  pxe_mac:
    description:
      - The MAC address the machine boots from. Only an V(ipmi) machine may be created without any MAC (MAAS finds
        its interfaces through the BMC); every other power type needs O(pxe_mac) or O(mac_addresses).
    type: str
  mac_addresses:
    description: Further MAC addresses, used to find the machine.
    type: list
    elements: str
  state:
    description:
      - V(present) (the default) enlists the machine without commissioning it.
      - V(ready) commissions it (and releases a deployed one) until it is Ready.
      - V(commissioned) commissions it until it is Ready, and then leaves it to whoever takes it; a machine that
        Palette allocated or deployed into a cluster is not released. Enroll the machines of a Palette MAAS
        cluster with this state, so that a second site run leaves the cluster's machines where they are.
      - V(deployed) commissions it if needed and deploys it with O(distro_series), O(hwe_kernel) and O(user_data).
      - V(released) releases a deployed or allocated machine (with O(erase), O(secure_erase) or O(quick_erase)).
      - V(broken) marks it broken (O(comment)); V(fixed) marks a broken machine fixed; V(absent) deletes it.
    type: str
    choices: [present, ready, commissioned, deployed, released, broken, fixed, absent]
  zone:
    description: Availability zone.
    type: str
  pool:
    description: Resource pool.
    type: str
  tags:
    description: Tags to put on the machine; missing tags are created. Names are ASCII letters, digits, V(-) and V(_), at most 256 characters.
    type: list
    elements: str
  tags_exclusive:
    description: Remove the machine's tags that are not in O(tags).
    type: bool
  power:
    description:
      - Power the machine V(on) or V(off) through its BMC, once it has reached its O(state); the task waits (within
        O(wait_timeout)) until MAAS reports that power state, since MAAS changes it a moment after the request.
      - MAAS starts only an allocated or deployed machine, so V(on) with O(state=ready) or O(state=released) is an
        input error.
      - A power type MAAS cannot drive (V(manual)) is left alone; the task reports no change for the power and
        warns that the machine must be powered by hand.
    type: str
    choices: ['on', 'off']
  distro_series:
    description: Ubuntu series to deploy, such as V(noble), V(jammy), V(ubuntu/jammy) or (MAAS 3.6 and later) V(22.04).
    type: str
  hwe_kernel:
    description: Kernel to deploy.
    type: str
  user_data:
    description: Cloud-init user data for the deployment (plain text; the module encodes it).
    type: str
  erase:
    description: Erase the disks when releasing.
    type: bool
  secure_erase:
    description: Use the disks' secure erase when releasing.
    type: bool
  quick_erase:
    description: Wipe only the start and end of each disk when releasing.
    type: bool
  comment:
    description: Why the machine is marked broken.
    type: str
  wait:
    description: Wait until every machine reaches its state (always true for states that need several steps).
    type: bool
    default: true
  wait_timeout:
    description: Seconds (0 or more) to wait for the whole batch; the error lists every machine still moving.
    type: int
    default: 1800
  poll_interval:
    description: Seconds (more than 0) between two reads of the batch while machines are moving (one request per read).
    type: float
    default: 1.0
  concurrency:
    description: MAAS requests in flight at once (at least 1).
    type: int
    default: 8
seealso:
  - module: palette.vmo.maas_machine_info
"""

EXAMPLES = r"""
- name: Enlist and commission servers by their BMC, tag and pool them
  palette.vmo.maas_machine:
    state: ready
    pool: vmo
    tags: [vmo, kubevirt]
    machines:
      - hostname: node-01
        power_type: ipmi
        power_parameters:
          power_address: 10.0.0.11
          power_user: "{{ bmc_user }}"
          power_pass: "{{ bmc_password }}"
      - hostname: node-02
        power_type: ipmi
        power_parameters: {power_address: 10.0.0.12, power_user: "{{ bmc_user }}", power_pass: "{{ bmc_password }}"}

- name: Deploy one of them
  palette.vmo.maas_machine:
    hostname: node-01
    state: deployed
    distro_series: noble
    user_data: |
      #cloud-config
      packages: [qemu-guest-agent]
"""

RETURN = r"""
machines:
  description: One entry per machine of the task; on a failure after writes, one per machine that was written.
  returned: always
  type: list
  elements: dict
  contains:
    system_id:
      description: MAAS system id.
      type: str
    hostname:
      description: Host name.
      type: str
    status_name:
      description: MAAS status when last read.
      type: str
      sample: Ready
    power_state:
      description: Power state.
      type: str
    tags:
      description: Tags.
      type: list
      elements: str
    zone:
      description: Zone.
      type: str
    pool:
      description: Resource pool.
      type: str
    ip_addresses:
      description: IP addresses (deployed machines).
      type: list
      elements: str
    osystem:
      description: Deployed operating system.
      type: str
    distro_series:
      description: Deployed series.
      type: str
    actions:
      description:
        - What was done (or, in check mode, would be done), in order. V(adopt) means MAAS already had the machine when
          it was to be created (see the description).
      type: list
      elements: str
      sample: [create, create_tag, tag, commission]
    changed:
      description: Whether this machine changed.
      type: bool
errors:
  description: Every problem found, when the task fails on bad input.
  returned: failure
  type: list
  elements: str
"""

from ansible_collections.palette.vmo.plugins.module_utils.common.errors import run_module
from ansible_collections.palette.vmo.plugins.module_utils.maas.client import MAAS_ARG_SPEC, MaasModule
from ansible_collections.palette.vmo.plugins.module_utils.maas.machine_runner import run
from ansible_collections.palette.vmo.plugins.module_utils.maas.machine_states import STATES


MACHINE_SPEC = dict(
    system_id=dict(type="str"), hostname=dict(type="str"), domain=dict(type="str"),
    architecture=dict(type="str"), description=dict(type="str"),
    power_type=dict(type="str"), power_parameters=dict(type="dict", no_log=True),
    pxe_mac=dict(type="str"), mac_addresses=dict(type="list", elements="str"),
    state=dict(type="str", choices=list(STATES)),
    zone=dict(type="str"), pool=dict(type="str"),
    tags=dict(type="list", elements="str"), tags_exclusive=dict(type="bool"),
    power=dict(type="str", choices=["on", "off"]),
    distro_series=dict(type="str"), hwe_kernel=dict(type="str"), user_data=dict(type="str"),
    erase=dict(type="bool"), secure_erase=dict(type="bool"), quick_erase=dict(type="bool"),
    comment=dict(type="str"),
)


def main():
    spec = dict(MAAS_ARG_SPEC)
    spec.update(MACHINE_SPEC)
    spec.update(
        machines=dict(type="list", elements="dict"),
        wait=dict(type="bool", default=True), wait_timeout=dict(type="int", default=1800),
        poll_interval=dict(type="float", default=1.0), concurrency=dict(type="int", default=8),
    )
    # MaasModule masks the BMC credentials inside `machines` items like the top-level ones.
    module = MaasModule(argument_spec=spec, supports_check_mode=True,
                        mutually_exclusive=[("machines", "system_id"), ("machines", "hostname")])
    run_module(module, run)


if __name__ == "__main__":
    main()
