#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: maas_machine_info
short_description: Read MAAS machines by host name, system id, MAC, status, pool, zone or tags
version_added: 0.1.0
description:
  - Lists MAAS machines with MAAS's own filters (one request) and returns their status, power state, tags, pool,
    zone and IP addresses.
  - Any MAAS user's API key will do; MAAS shows a user who is not an administrator only the machines nobody owns
    and the user's own, so machines deployed by others are missing from the answer.
author:
  - palette.vmo contributors (!UNKNOWN)
extends_documentation_fragment:
  - palette.vmo.attributes
  - palette.vmo.maas_auth
attributes:
  check_mode:
    support: full
    details: The module only reads.
  diff_mode:
    support: none
options:
  hostnames:
    description: Only these host names.
    type: list
    elements: str
    default: []
  system_ids:
    description: Only these system ids.
    type: list
    elements: str
    default: []
  mac_addresses:
    description: Only machines with one of these MACs.
    type: list
    elements: str
    default: []
  status:
    description:
      - Only machines in this simplified status (V(new), V(commissioning), V(ready), V(allocated), V(deploying),
        V(deployed), V(releasing), V(broken), V(failed), V(testing), V(rescue_mode), V(other)); case and spaces as in
        C(status_name) are accepted (V(Ready) is V(ready)).
    type: str
  pool:
    description: Only machines of this resource pool.
    type: str
  zone:
    description: Only machines of this zone.
    type: str
  tags:
    description: Only machines with all these tags.
    type: list
    elements: str
    default: []
seealso:
  - module: palette.vmo.maas_machine
"""

EXAMPLES = r"""
- name: Deployed VMO nodes
  palette.vmo.maas_machine_info:
    tags: [vmo]
    status: deployed
  register: nodes

- name: Their addresses
  ansible.builtin.debug:
    msg: "{{ nodes.machines | map(attribute='ip_addresses') | flatten }}"
"""

RETURN = r"""
machines:
  description: The machines found, by host name.
  returned: success
  type: list
  elements: dict
  contains:
    system_id:
      description: MAAS system id.
      type: str
    hostname:
      description: Host name.
      type: str
    fqdn:
      description: Fully qualified name.
      type: str
    status_name:
      description: MAAS status.
      type: str
    power_state:
      description: Power state.
      type: str
    power_type:
      description: BMC power type.
      type: str
    tags:
      description: Tags.
      type: list
      elements: str
    pool:
      description: Resource pool.
      type: str
    zone:
      description: Zone.
      type: str
    ip_addresses:
      description: IP addresses.
      type: list
      elements: str
    mac_addresses:
      description: MAC addresses of the machine's interfaces.
      type: list
      elements: str
    architecture:
      description: Architecture.
      type: str
    cpu_count:
      description: CPUs found by commissioning.
      type: int
    memory:
      description: Memory in MiB found by commissioning.
      type: int
    osystem:
      description: Deployed operating system.
      type: str
    distro_series:
      description: Deployed series.
      type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.palette.vmo.plugins.module_utils.common.errors import run_module
from ansible_collections.palette.vmo.plugins.module_utils.maas.client import MAAS_ARG_SPEC, MaasClient
from ansible_collections.palette.vmo.plugins.module_utils.maas.facts import machine_facts, simple_status_filter


def main():
    spec = dict(MAAS_ARG_SPEC)
    spec.update(
        hostnames=dict(type="list", elements="str", default=[]),
        system_ids=dict(type="list", elements="str", default=[]),
        mac_addresses=dict(type="list", elements="str", default=[]),
        status=dict(type="str"), pool=dict(type="str"), zone=dict(type="str"),
        tags=dict(type="list", elements="str", default=[]),
    )
    run_module(AnsibleModule(argument_spec=spec, supports_check_mode=True), read_machines)


def read_machines(module):
    """One request with MAAS's own filters; the machines by host name."""
    params = module.params
    machines = MaasClient(params).get(
        "/machines/", hostname=params["hostnames"] or None, id=params["system_ids"] or None,
        mac_address=params["mac_addresses"] or None, simple_status=simple_status_filter(params["status"]),
        pool=params["pool"], zone=params["zone"], tags=params["tags"] or None)
    module.exit_json(changed=False, machines=[machine_facts(m) for m in sorted(machines, key=lambda m: m["hostname"])])


if __name__ == "__main__":
    main()
