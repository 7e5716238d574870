# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bounded concurrency for batches of backend calls, shared by the Kubernetes and MAAS modules."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from concurrent.futures import ThreadPoolExecutor


def run_concurrently(func, items, concurrency):
    """Calls func(item) for every item with at most `concurrency` at once; returns results in order.

    An exception is returned in the item's place rather than raised, so one failure does not hide others.
    """
    def guarded(item):
        try:
            return func(item)
        except Exception as err:  # noqa: BLE001 - reported per item by the caller
            return err

    if len(items) <= 1 or concurrency <= 1:
        return [guarded(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(concurrency, len(items))) as pool:
        return list(pool.map(guarded, items))
