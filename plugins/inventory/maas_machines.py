# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: maas_machines
short_description: MAAS machines as inventory hosts
version_added: 0.1.0
description:
  - Lists MAAS machines (deployed ones by default) and makes each a host, C(ansible_host) being its first IP address.
  - Groups by status, tag, resource pool and zone (C(status_deployed), C(tag_vmo), C(pool_default), C(zone_default)),
    plus C(compose), C(groups) and C(keyed_groups).
  - Connection options come from the file or from E(MAAS_URL), E(MAAS_API_KEY) and E(MAAS_CA_CERT). Any MAAS
    user's API key will do; a user who is not an administrator sees only the machines nobody owns and their own.
  - The inventory file must end in C(maas_machines.yml) or C(maas_machines.yaml).
author:
  - palette.vmo contributors (!UNKNOWN)
extends_documentation_fragment:
  - palette.vmo.maas_auth
  - constructed
  - inventory_cache
options:
  plugin:
    description: The name of this plugin; it marks the file as this plugin's source.
    type: str
    required: true
    choices: [palette.vmo.maas_machines]
  statuses:
    description:
      - MAAS simplified statuses to include (V(deployed), V(ready), V(rescue_mode), ...; V(Deployed) works too);
        all machines when empty.
    type: list
    elements: str
    default: [deployed]
  tags:
    description: Only machines with all these tags.
    type: list
    elements: str
    default: []
  pools:
    description: Only machines in one of these pools.
    type: list
    elements: str
    default: []
  zones:
    description: Only machines in one of these zones.
    type: list
    elements: str
    default: []
  use_fqdn:
    description: Name hosts by their FQDN instead of their host name.
    type: bool
    default: false
"""

EXAMPLES = r"""
# site.maas_machines.yml
plugin: palette.vmo.maas_machines
statuses: [deployed]
tags: [vmo]
keyed_groups:
  - key: maas_distro_series
    prefix: series
"""

import os

from ansible.errors import AnsibleError

from ansible_collections.palette.vmo.plugins.module_utils.common.errors import ModuleFailure
from ansible_collections.palette.vmo.plugins.module_utils.maas.client import MaasClient
from ansible_collections.palette.vmo.plugins.module_utils.maas.facts import machine_facts, simple_status_filter
from ansible_collections.palette.vmo.plugins.plugin_utils.cached_inventory import CachedInventory

ENV = {"maas_url": "MAAS_URL", "maas_api_key": "MAAS_API_KEY", "maas_ca_cert": "MAAS_CA_CERT"}


class InventoryModule(CachedInventory):
    NAME = "palette.vmo.maas_machines"
    SOURCE_SUFFIXES = ("maas_machines.yml", "maas_machines.yaml")

    def _connection(self):
        params = {name: self.get_option(name) or os.environ.get(var) for name, var in ENV.items()}
        params["validate_certs"] = self.get_option("validate_certs")
        params["maas_timeout"] = self.get_option("maas_timeout")
        return params

    def _fetch(self):
        try:
            client = MaasClient(self._connection())
            statuses = [simple_status_filter(s) for s in self.get_option("statuses") or []]
            machines = client.get("/machines/", simple_status=statuses or None,
                                  tags=self.get_option("tags") or None, pool=self.get_option("pools") or None,
                                  zone=self.get_option("zones") or None)
        except ModuleFailure as err:  # a refused request, a bad option, a MAAS that cannot be reached
            raise AnsibleError("palette.vmo.maas_machines: %s" % err)
        return [machine_facts(m) for m in sorted(machines, key=lambda m: m["hostname"])]

    def _populate(self, hosts):
        for facts in hosts:
            name = facts["fqdn"] if self.get_option("use_fqdn") and facts.get("fqdn") else facts["hostname"]
            host_vars = {"maas_" + key: value for key, value in facts.items()}
            if facts["ip_addresses"]:
                host_vars["ansible_host"] = facts["ip_addresses"][0]
            groups = ["status_%s" % facts["status_name"].lower(), "pool_%s" % facts["pool"], "zone_%s" % facts["zone"]]
            groups += ["tag_%s" % tag for tag in facts["tags"]]
            self._add_host(name, host_vars, groups)
