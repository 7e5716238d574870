# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The parse step every inventory plugin of the collection shares: read the file, then hosts from the
inventory cache when allowed, else from the backend (and into the cache)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable


def safe_group(text):
    """A group name Ansible accepts: anything but letters, digits and _ becomes _."""
    return re.sub(r"[^A-Za-z0-9_]", "_", str(text))


class CachedInventory(BaseInventoryPlugin, Constructable, Cacheable):
    """Subclasses set SOURCE_SUFFIXES and provide `_fetch()` (a JSON-able list of hosts) and `_populate(hosts)`."""

    SOURCE_SUFFIXES = ()

    def verify_file(self, path):
        return super(CachedInventory, self).verify_file(path) and path.endswith(self.SOURCE_SUFFIXES)

    def parse(self, inventory, loader, path, cache=True):
        super(CachedInventory, self).parse(inventory, loader, path)
        self._read_config_data(path)
        key = self.get_cache_key(path)
        hosts = None
        if self.get_option("cache") and cache:
            try:
                hosts = self._cache[key]
            except KeyError:
                hosts = None
        if hosts is None:
            hosts = self._fetch()
            if self.get_option("cache"):
                self._cache[key] = hosts
        self._populate(hosts)

    def _add_host(self, name, host_vars, groups):
        """One host with its variables, its own groups, then compose / groups / keyed_groups."""
        strict = self.get_option("strict")
        self.inventory.add_host(name)
        for key, value in host_vars.items():
            self.inventory.set_variable(name, key, value)
        for group in groups:
            self.inventory.add_child(self.inventory.add_group(safe_group(group)), name)
        self._set_composite_vars(self.get_option("compose"), host_vars, name, strict=strict)
        self._add_host_to_composed_groups(self.get_option("groups"), host_vars, name, strict=strict)
        self._add_host_to_keyed_groups(self.get_option("keyed_groups"), host_vars, name, strict=strict)

    def _fetch(self):
        raise NotImplementedError

    def _populate(self, hosts):
        raise NotImplementedError
