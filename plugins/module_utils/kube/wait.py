# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One shared, bounded wait for many objects: a list and then a watch per namespace, no polling.

Each target has a predicate over its latest object (None while it does not exist). The wait ends
when every predicate holds, or at the deadline with a message naming every object still pending and
what it last looked like.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import threading
import time
import types

from ansible_collections.palette.vmo.plugins.module_utils.common.errors import ModuleFailure
from ansible_collections.palette.vmo.plugins.module_utils.kube.client import KubeApiError, object_path


class WaitTimeout(ModuleFailure):
    """The deadline passed; the message names every pending object and its last state, `pending` lists them."""

    def __init__(self, message, pending):
        super(WaitTimeout, self).__init__(message)
        self.pending = pending


class WaitTarget(object):
    def __init__(self, namespace, name, predicate, expectation, describe):
        self.namespace, self.name = namespace, name
        self.predicate = predicate  # obj or None -> bool
        self.expectation = expectation  # what we wait for, in words
        self.describe = describe  # obj or None -> last observed state, in words

    @property
    def key(self):
        return (self.namespace, self.name)


class _NamespaceWatch(threading.Thread):
    def __init__(self, client, path, namespace, names, seen, changed, deadline):
        super(_NamespaceWatch, self).__init__(daemon=True)
        self.client, self.path, self.namespace, self.names = client, path, namespace, names
        self.seen, self.changed, self.deadline = seen, changed, deadline
        self.error = None
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._stream = None

    def _open(self, version, remaining):
        stream = self.client.watch(self.path, {"resourceVersion": version}, timeout_seconds=max(1, int(remaining) + 1))
        with self._lock:
            self._stream = stream
            if self.stop.is_set():  # the wait ended while this watch was being opened
                _close(stream)
        return stream

    def close(self):
        """Ends the watch now, from the waiting thread: the stream's read returns and its connection is closed."""
        with self._lock:
            self.stop.set()
            if self._stream is not None:
                _close(self._stream)

    def _record(self, obj, deleted=False):
        name = (obj.get("metadata") or {}).get("name")
        if name in self.names:
            with self.changed:
                self.seen[(self.namespace, name)] = None if deleted else obj
                self.changed.notify_all()

    def _relist(self):
        items, version = self.client.list_all(self.path)
        present = {(i.get("metadata") or {}).get("name"): i for i in items}
        with self.changed:
            for name in self.names:
                self.seen[(self.namespace, name)] = present.get(name)
            self.changed.notify_all()
        return version

    def run(self):
        try:
            version = self._relist()
            while not self.stop.is_set():
                remaining = self.deadline - time.monotonic()
                if remaining <= 0:
                    return
                try:
                    for event in self._open(version, remaining):
                        if self.stop.is_set():
                            return
                        obj = event.get("object") or {}
                        if event.get("type") == "ERROR":
                            raise KubeApiError(obj.get("code", 500), obj, "WATCH", self.path)
                        version = (obj.get("metadata") or {}).get("resourceVersion") or version
                        if event.get("type") != "BOOKMARK":
                            self._record(obj, deleted=event.get("type") == "DELETED")
                except KubeApiError as err:
                    if err.status != 410:
                        raise
                    version = self._relist()  # our version expired: list again
        except Exception as err:  # noqa: BLE001 - handed to the waiting thread
            if self.stop.is_set():
                return  # the wait has ended: nobody is waiting for this watch any more
            self.error = err
            with self.changed:
                self.changed.notify_all()


def _close(stream):
    close = getattr(stream, "close", None)  # a WatchStream; a plain iterator has nothing to close
    if close is not None and not isinstance(stream, types.GeneratorType):  # a running generator cannot be closed
        close()


def wait_for(client, api_version, plural, targets, timeout):
    """Blocks until every target's predicate holds; returns {(namespace, name): object}."""
    if not targets:
        return {}
    deadline = time.monotonic() + timeout
    seen, changed = {}, threading.Condition()
    by_namespace = {}
    for target in targets:
        by_namespace.setdefault(target.namespace, set()).add(target.name)
    watchers = [_NamespaceWatch(client, object_path(api_version, plural, namespace=ns), ns, names, seen, changed,
                                deadline) for ns, names in by_namespace.items()]
    for watcher in watchers:
        watcher.start()

    def pending():
        return [t for t in targets if t.key not in seen or not t.predicate(seen[t.key])]

    try:
        with changed:
            while True:
                errors = [w.error for w in watchers if w.error]
                if errors:
                    raise errors[0]
                left = pending()
                if not left:
                    return dict(seen)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    details = ", ".join("%s (waiting for %s; last seen: %s)"
                                        % ("%s/%s" % t.key if t.namespace else t.name, t.expectation,
                                           t.describe(seen.get(t.key)))
                                        for t in left)
                    raise WaitTimeout("timed out after %ss waiting for %d of %d: %s"
                                      % (timeout, len(left), len(targets), details), left)
                changed.wait(min(remaining, 1.0))
    finally:
        # Every watch ends with the wait, so its connection is closed now and not when the server's
        # timeoutSeconds ends it; a watcher still in its first list ends when that list returns.
        for watcher in watchers:
            watcher.close()
        joined_by = time.monotonic() + 5
        for watcher in watchers:
            watcher.join(max(0.0, joined_by - time.monotonic()))
