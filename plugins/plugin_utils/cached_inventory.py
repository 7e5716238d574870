# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The parse step every inventory plugin of the collection shares: read the file, then hosts from the
inventory cache when allowed, else from the backend (and into the cache)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable


class CachedInventory(BaseInventoryPlugin, Constructable, Cacheable):
    """Subclasses provide `_fetch()` (a JSON-able list of hosts) and `_populate(hosts)`."""

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

    def _fetch(self):
        raise NotImplementedError

    def _populate(self, hosts):
        raise NotImplementedError
