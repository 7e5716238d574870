"""The controller machinery the stand-ins share: informers (list + watch into a cache) and a work queue.

A new stand-in behaviour (migrations, snapshots, DataVolumes, ...) is one more informer and one more
reconcile function registered on a `Manager`; nothing here needs to change for it.
"""

import heapq
import logging
import threading
import time
from typing import Callable, Dict, List, Optional, Set, Tuple

from ..kube import JSON, Kube, KubeError

log = logging.getLogger("standin")

Key = Tuple[str, str, str]  # (kind, namespace, name)


def object_key(obj: JSON) -> Tuple[str, str]:
    meta = obj.get("metadata", {})
    return meta.get("namespace", ""), meta["name"]


def api_group(path: str) -> str:
    """The API group of a REST path: "" for /api/v1/..., <group> for /apis/<group>/<version>/..."""
    parts = path.split("/")
    return parts[2] if len(parts) > 2 and parts[1] == "apis" else ""


def without_nulls(value):
    """What equality.Semantic.DeepEqual compares after json.Unmarshal: null and absent fields alike."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


def _newer(obj: JSON, cached: Optional[JSON]) -> bool:
    """Whether obj is a later version than cached. The lab's resourceVersions are etcd revisions, which grow."""
    if cached is None:
        return True
    try:
        return int(obj["metadata"]["resourceVersion"]) >= int(cached["metadata"]["resourceVersion"])
    except (KeyError, ValueError):
        return True


class Informer(threading.Thread):
    """Keeps an up-to-date cache of one resource across all namespaces and reports changes."""

    def __init__(self, kube: Kube, path: str, on_change: Callable[[JSON], None], name: str):
        super().__init__(daemon=True, name=f"informer-{name}")
        self.kube, self.path, self.on_change = kube, path, on_change
        self.cache: Dict[Tuple[str, str], JSON] = {}
        self.lock = threading.Lock()
        self.synced = threading.Event()
        # client-go Indexers: index name -> function giving an object's index values; the index itself maps
        # (namespace, value) to the keys of the objects that have it
        self.indexers: Dict[str, Callable[[JSON], List[str]]] = {}
        self.indices: Dict[str, Dict[Tuple[str, str], set]] = {}

    def add_index(self, name: str, values: Callable[[JSON], List[str]]) -> None:
        """A namespaced index (cache.AddIndexers): by_index(name, namespace, value) lists the objects of that
        namespace whose values(obj) include value. Added before the informer starts."""
        self.indexers[name] = values
        self.indices[name] = {}

    def by_index(self, name: str, namespace: str, value: str) -> List[JSON]:
        with self.lock:
            keys = self.indices[name].get((namespace, value), ())
            return [self.cache[key] for key in keys if key in self.cache]

    def _store(self, obj: JSON) -> None:
        """Puts obj in the cache and its indexes; called with the lock held."""
        key = object_key(obj)
        self._drop(key)
        self.cache[key] = obj
        for name, values in self.indexers.items():
            for value in values(obj):
                self.indices[name].setdefault((key[0], value), set()).add(key)

    def _drop(self, key: Tuple[str, str]) -> None:
        old = self.cache.pop(key, None)
        if old is None:
            return
        for name, values in self.indexers.items():
            for value in values(old):
                keys = self.indices[name].get((key[0], value))
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del self.indices[name][(key[0], value)]

    def add_handler(self, handler: Callable[[JSON], None]) -> None:
        """Another controller's event handler on the same informer (client-go's AddEventHandler)."""
        first = self.on_change

        def on_change(obj: JSON) -> None:
            first(obj)
            handler(obj)
        self.on_change = on_change

    def get(self, namespace: str, name: str) -> Optional[JSON]:
        with self.lock:
            return self.cache.get((namespace, name))

    def list(self) -> List[JSON]:
        with self.lock:
            return list(self.cache.values())

    def remember(self, obj: JSON) -> None:
        """A controller's own write, put in the cache before its watch event arrives (the external-snapshotter's
        storeObjectUpdate, pkg/utils/util.go): the next reconcile sees what was just written instead of acting on
        it again. Only a newer version replaces what the cache holds."""
        with self.lock:
            if _newer(obj, self.cache.get(object_key(obj))):
                self._store(obj)

    def _relist(self) -> str:
        listing = self.kube.get(self.path)
        items = {object_key(item): item for item in listing.get("items", [])}
        with self.lock:
            gone = [obj for key, obj in self.cache.items() if key not in items]
            self.cache = {}
            self.indices = {name: {} for name in self.indexers}
            for item in items.values():
                self._store(item)
        for obj in list(items.values()) + gone:
            self.on_change(obj)
        self.synced.set()
        return listing["metadata"]["resourceVersion"]

    def run(self) -> None:
        while True:
            try:
                version = self._relist()
                for event in self.kube.watch(self.path, version):
                    version = self._apply(event) or version
            except KubeError as err:
                # 404 until the CRD is registered; 410 when our version is too old: list again.
                if err.status not in (404, 410):
                    log.warning("watch %s: %s", self.path, err)
                time.sleep(0.5)
            except Exception as err:  # noqa: BLE001 - keep watching through connection drops
                log.warning("watch %s: %s", self.path, err)
                time.sleep(0.5)

    def _apply(self, event: JSON) -> Optional[str]:
        kind, obj = event["type"], event["object"]
        if kind == "ERROR":
            raise KubeError(obj.get("code", 500), obj, "WATCH", self.path)
        version = obj.get("metadata", {}).get("resourceVersion")
        if kind == "BOOKMARK":
            return version
        with self.lock:
            if kind == "DELETED":
                self._drop(object_key(obj))
            elif _newer(obj, self.cache.get(object_key(obj))):
                self._store(obj)
        self.on_change(obj)
        return version


MAX_RETRY_DELAY = 5.0


class WorkQueue:
    """Deduplicating queue with delayed adds; a key is never worked on by two threads at once."""

    def __init__(self):
        self.cond = threading.Condition()
        self.ready: List[Key] = []
        self.queued: set = set()
        self.active: set = set()
        self.delayed: List[Tuple[float, Key]] = []

    def add(self, key: Key, after: float = 0.0) -> None:
        with self.cond:
            if after > 0:
                heapq.heappush(self.delayed, (time.monotonic() + after, key))
            elif key not in self.queued:
                self.queued.add(key)
                self.ready.append(key)
            self.cond.notify()

    def _promote_due(self) -> None:
        now = time.monotonic()
        while self.delayed and self.delayed[0][0] <= now:
            key = heapq.heappop(self.delayed)[1]
            if key not in self.queued:
                self.queued.add(key)
                self.ready.append(key)

    def get(self) -> Key:
        with self.cond:
            while True:
                self._promote_due()
                for i, key in enumerate(self.ready):
                    if key not in self.active:
                        del self.ready[i]
                        self.queued.discard(key)
                        self.active.add(key)
                        return key
                wait = self.delayed[0][0] - time.monotonic() if self.delayed else None
                self.cond.wait(timeout=wait if wait is None else max(wait, 0.01))

    def done(self, key: Key) -> None:
        with self.cond:
            self.active.discard(key)
            self.cond.notify_all()


Reconcile = Callable[[str, str], Optional[float]]  # returns seconds until it wants to look again


class Manager:
    """Runs informers and reconcile functions; each kind has one reconcile function."""

    # virt-controller runs each controller with threads of its own (pkg/virt-controller/watch/application.go:
    # 3 by default, 10 for VMIs, 6 for snapshots), the external-snapshotter and CDI theirs; one shared pool of 16
    # keeps a batch of snapshots or migrations from queueing behind a handful of workers.
    def __init__(self, kube: Kube, workers: int = 16):
        self.kube = kube
        self.queue = WorkQueue()
        self.reconcilers: Dict[str, Reconcile] = {}
        self.informers: Dict[str, Informer] = {}
        self.by_path: Dict[str, Informer] = {}
        self.workers = workers
        self.failures: Dict[Key, int] = {}
        self.failures_lock = threading.Lock()

    def watch(self, name: str, path: str, on_change: Optional[Callable[[JSON], None]] = None) -> Informer:
        """The one informer of `path`, with `on_change` among its handlers, also known as `name`. Like
        virt-controller's KubeInformerFactory (pkg/controller/virtinformers.go), every controller of the process
        shares one watch per resource."""
        informer = self.by_path.get(path)
        if informer is None:
            informer = Informer(self.kube, path, on_change or (lambda _obj: None), name)
            self.by_path[path] = informer
        elif on_change is not None:
            informer.add_handler(on_change)
        self.informers[name] = informer
        return informer

    def informer(self, name: str, path: str, enqueue_kinds: Tuple[str, ...] = ()) -> Informer:
        """Watches `path`; every change enqueues the same namespace/name for each of enqueue_kinds."""

        def on_change(obj: JSON) -> None:
            namespace, obj_name = object_key(obj)
            for kind in enqueue_kinds:
                self.queue.add((kind, namespace, obj_name))

        return self.watch(name, path, on_change if enqueue_kinds else None)

    def caches_synced(self, groups: Set[str]) -> bool:
        """Whether every informer of these API groups has listed its resource once (informer HasSynced)."""
        return all(informer.synced.is_set() for path, informer in self.by_path.items() if api_group(path) in groups)

    def reconciler(self, kind: str, func: Reconcile) -> None:
        self.reconcilers[kind] = func

    def _retry_after(self, key: Key) -> float:
        """A failed reconcile goes back to the queue rate limited, as every KubeVirt controller does
        (queue.AddRateLimited with client-go's DefaultTypedControllerRateLimiter, util/workqueue/default_rate_limiters.go:
        5 ms doubled on each failure of the same key, forgotten after a success). client-go caps it at 1000 s; the lab
        caps it at MAX_RETRY_DELAY so that an object waiting on another is never left longer than a test waits."""
        with self.failures_lock:
            failures = self.failures.get(key, 0)
            self.failures[key] = failures + 1
        return min(0.005 * 2 ** min(failures, 20), MAX_RETRY_DELAY)

    def _forget(self, key: Key) -> None:
        with self.failures_lock:
            self.failures.pop(key, None)

    def _work(self) -> None:
        while True:
            key = self.queue.get()
            kind, namespace, name = key
            again: Optional[float] = None
            try:
                again = self.reconcilers[kind](namespace, name)
                self._forget(key)
            except KubeError as err:
                # 409: our cached copy was stale; the watch brings the new one and we retry.
                if err.status != 409:
                    log.warning("reconcile %s %s/%s: %s", kind, namespace, name, err)
                again = self._retry_after(key)
            except Exception:  # noqa: BLE001 - one bad object must not stop the controller
                log.exception("reconcile %s %s/%s", kind, namespace, name)
                again = self._retry_after(key)
            finally:
                self.queue.done(key)
            if again is not None:
                self.queue.add(key, after=again)

    def start(self) -> None:
        for informer in self.by_path.values():
            informer.start()
        for i in range(self.workers):
            threading.Thread(target=self._work, daemon=True, name=f"worker-{i}").start()
