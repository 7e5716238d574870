"""Stand-in for KubeVirt's live migration: virt-api's migration webhooks, virt-controller's migration,
workload-updater and evacuation controllers, and the virt-handler side of a migration.

It follows KubeVirt v1.9.0:
- pkg/virt-api/webhooks/mutating-webhook/mutators/migration-create-mutator.go (label + finalizer) and
  pkg/virt-api/webhooks/validating-webhook/admitters/migration-create-admitter.go (refusals);
- pkg/virt-controller/watch/migration/migration.go (phases, queueing limits, target pod, hand-off,
  cancellation, pending-pod timeouts);
- pkg/virt-handler/migration-source.go / migration-target.go and virt-launcher's
  live-migration-source.go for what the handlers write into VMI status.migrationState;
- pkg/virt-controller/watch/workload-updater/workload-updater.go (migrate VMIs with hotplug changes);
- pkg/virt-controller/watch/drain/evacuation/evacuation.go (migrate VMIs off a drain-tainted node).

The lab has no pods: the migration target "pod" is kept in this process (name, node, creation time)
and scheduled the way kube-scheduler would place virt-launcher's target pod. Each step takes
`step_seconds`; a migration takes about seven steps, plus one step per GiB of guest memory to copy.
"""

import base64
import copy
import hashlib
import json
import logging
import time
from datetime import datetime, timezone
from typing import Dict, List, Optional, Tuple

from ..kube import JSON, Kube, KubeError, object_path
from . import admission, handler, netstat
from .controller import VirtController, condition, now, phase
from .operator import Operators
from .runtime import Manager, without_nulls

log = logging.getLogger("standin.migration")

API = "kubevirt.io/v1"
PLURAL = "virtualmachineinstancemigrations"
# kubevirt.io/api core/v1 types.go
FINALIZER = "kubevirt.io/migrationJobFinalize"  # VirtualMachineInstanceMigrationFinalizer
SELECTOR_LABEL = "kubevirt.io/vmi-name"  # MigrationSelectorLabel
TARGET_NODE_LABEL = "kubevirt.io/migrationTargetNodeName"  # MigrationTargetNodeNameLabel
NODE_NAME_LABEL = "kubevirt.io/nodeName"  # NodeNameLabel
HEARTBEAT_ANNOTATION = "kubevirt.io/heartbeat"  # VirtHandlerHeartbeat
# pkg/virt-controller/watch/node/node.go NewController heartBeatTimeout
HEARTBEAT_TIMEOUT = 5 * 60
UNSCHEDULABLE_TIMEOUT_ANNOTATION = "kubevirt.io/migrationUnschedulablePodTimeoutSeconds"
PENDING_TIMEOUT_ANNOTATION = "kubevirt.io/migrationPendingPodTimeoutSeconds"
EVACUATION_ANNOTATION = "kubevirt.io/evacuationMigration"  # EvacuationMigrationAnnotation
WORKLOAD_UPDATE_ANNOTATION = "kubevirt.io/workloadUpdateMigration"  # WorkloadUpdateMigrationAnnotation
LATEST_API_ANNOTATION = "kubevirt.io/latest-observed-api-version"
STORAGE_API_ANNOTATION = "kubevirt.io/storage-observed-api-version"
NON_ROOT_ANNOTATION = "kubevirt.io/nonroot"  # DeprecatedNonRootVMIAnnotation
NON_ROOT_UID = 107  # pkg/util util.NonRootUID
ABORT_REQUESTED = "migrationAbortRequested"  # VirtualMachineInstanceMigrationAbortRequested
HOT_VCPU_CHANGE = "HotVCPUChange"  # VirtualMachineInstanceVCPUChange
HOT_MEMORY_CHANGE = "HotMemoryChange"  # VirtualMachineInstanceMemoryChange
MIGRATION_REQUIRED = "MigrationRequired"
VOLUMES_CHANGE = "VolumesChange"  # VirtualMachineInstanceVolumesChange
WORKLOAD_UPDATE_ABORTION_ANNOTATION = "kubevirt.io/testWorkloadUpdateMigrationAbortion"
# migration.go defaultUnschedulablePendingTimeoutSeconds / defaultCatchAllPendingTimeoutSeconds
DEFAULT_UNSCHEDULABLE_TIMEOUT = 60 * 5
DEFAULT_CATCH_ALL_TIMEOUT = 60 * 15
FINALIZED_GC_BUFFER = 5  # migration.go defaultFinalizedMigrationGarbageCollectionBuffer
# pkg/virt-config/virt-config.go defaults
DEFAULT_PARALLEL_PER_CLUSTER = 5
DEFAULT_PARALLEL_OUTBOUND_PER_NODE = 2
DEFAULT_DRAIN_TAINT_KEY = "kubevirt.io/drain"
# kubevirt.io/api core/v1 PrioritySystemCritical / PriorityUserTriggered / PrioritySystemMaintenance (MigrationPriority)
PRIORITY_SYSTEM_CRITICAL = "system-critical"
PRIORITY_USER_TRIGGERED = "user-triggered"
PRIORITY_SYSTEM_MAINTENANCE = "system-maintenance"
# pkg/util/migrations/migrations.go QueuePriority* constants
QUEUE_PRIORITY = {PRIORITY_SYSTEM_CRITICAL: 100, PRIORITY_USER_TRIGGERED: 50, PRIORITY_SYSTEM_MAINTENANCE: 20}
# virt-launcher live-migration-source.go setMigrationResult
ABORTED_REASON = "Live migration has been aborted"
FINAL = ("Succeeded", "Failed")
NOT_HANDED_OFF = ("", "Pending", "Scheduling", "Scheduled")  # types.go TargetIsHandedOff
NOT_RUNNING = ("", "Pending", "Succeeded", "Failed")  # types.go VirtualMachineInstanceMigration.IsRunning


def _rv(obj: JSON) -> JSON:
    """A JSON patch op that makes the write conditional on our copy being current: the apiserver answers
    409 Conflict when the patched object's resourceVersion is not the stored one."""
    return {"op": "replace", "path": "/metadata/resourceVersion", "value": obj["metadata"]["resourceVersion"]}


def migration_config(config: JSON) -> JSON:
    """pkg/virt-config GetMigrationConfiguration with configuration.go's defaults."""
    migrations = config.get("migrations") or {}

    def value(key: str, default):
        # A field the CR sets (0 included) is kept; only an unset one takes the default.
        return default if migrations.get(key) is None else migrations[key]
    return {
        "parallelMigrationsPerCluster": int(value("parallelMigrationsPerCluster", DEFAULT_PARALLEL_PER_CLUSTER)),
        "parallelOutboundMigrationsPerNode": int(value("parallelOutboundMigrationsPerNode",
                                                       DEFAULT_PARALLEL_OUTBOUND_PER_NODE)),
        "nodeDrainTaintKey": value("nodeDrainTaintKey", DEFAULT_DRAIN_TAINT_KEY),
    }


# pkg/virt-config/configuration.go defaults of MigrationConfiguration (virt-config.go constants)
MIGRATION_DEFAULTS = {
    "parallelMigrationsPerCluster": DEFAULT_PARALLEL_PER_CLUSTER,
    "parallelOutboundMigrationsPerNode": DEFAULT_PARALLEL_OUTBOUND_PER_NODE,
    "nodeDrainTaintKey": DEFAULT_DRAIN_TAINT_KEY, "bandwidthPerMigration": "0", "progressTimeout": 150,
    "completionTimeoutPerGiB": 150, "maxDowntimeMs": 900, "utilityVolumesTimeout": 150,
    "unsafeMigrationOverride": False, "allowAutoConverge": False, "allowPostCopy": False,
}
POLICY_FIELDS = ("allowAutoConverge", "bandwidthPerMigration", "completionTimeoutPerGiB", "maxDowntimeMs",
                 "allowPostCopy", "allowWorkloadDisruption")


def resolved_migration_configuration(config: JSON, policy: Optional[JSON]) -> JSON:
    """migration.go resolveMigrationConfig: the cluster's configuration (ToVMIMConfigurationOptions of
    GetMigrationConfiguration, allowWorkloadDisruption following allowPostCopy when unset), then the
    matched policy's fields (migrationpolicy.go applyMigrationPolicySpec)."""
    resolved = {**MIGRATION_DEFAULTS, **(config.get("migrations") or {})}
    resolved.setdefault("allowWorkloadDisruption", resolved.get("allowPostCopy", False))
    spec = (policy or {}).get("spec") or {}
    if spec.get("allowWorkloadDisruption") is None and spec.get("allowPostCopy") is not None:
        resolved["allowWorkloadDisruption"] = spec["allowPostCopy"]
    for field in POLICY_FIELDS:
        if spec.get(field) is not None:
            resolved[field] = spec[field]
    return resolved


def match_policy(policies: List[JSON], vmi_labels: JSON, namespace_labels: JSON) -> Optional[JSON]:
    """migrationpolicy.go matchPolicy / countMatchingLabels: the policy matching the most labels (VMI labels
    break ties), then the lexicographically first name."""
    best: Optional[Tuple[int, int]] = None
    matching: List[JSON] = []
    for policy in policies:
        selectors = (policy.get("spec") or {}).get("selectors")
        if selectors is None:
            continue
        ok, vmi_count, ns_count = True, 0, 0
        vmi_selector = selectors.get("virtualMachineInstanceSelector")
        if vmi_selector is not None and vmi_labels is not None:
            ok = all(vmi_labels.get(k) == v for k, v in vmi_selector.items())
            vmi_count = len(vmi_selector) if ok else 0
        ns_selector = selectors.get("namespaceSelector")
        # KubeVirt checks the VMI's labels (not the namespace's) for nil here; the lab does the same.
        if ok and ns_selector is not None and vmi_labels is not None:
            ok = all((namespace_labels or {}).get(k) == v for k, v in ns_selector.items())
            ns_count = len(ns_selector) if ok else 0
        if not ok:
            continue
        score = (vmi_count + ns_count, vmi_count)
        if best is None or score > best:
            best, matching = score, [policy]
        elif score == best:
            matching.append(policy)
    return min(matching, key=lambda p: p["metadata"]["name"]) if matching else None


def queue_priority(mig: JSON) -> int:
    """migrations.go PriorityFromMigration: QueuePriorityDefault (0) without a known spec.priority."""
    return QUEUE_PRIORITY.get((mig.get("spec") or {}).get("priority"), 0)


def requeue_delay(priority: int) -> float:
    """migration.go getRequeueDelayForPriority (seconds)."""
    if priority >= QUEUE_PRIORITY[PRIORITY_SYSTEM_CRITICAL]:
        return 1.0
    if priority >= QUEUE_PRIORITY[PRIORITY_USER_TRIGGERED]:
        return 3.0
    return 5.0


def is_final(mig: Optional[JSON]) -> bool:
    return ((mig or {}).get("status") or {}).get("phase") in FINAL


def mig_phase(mig: JSON) -> str:
    return (mig.get("status") or {}).get("phase") or ""


def migration_state(vmi: Optional[JSON]) -> Optional[JSON]:
    return ((vmi or {}).get("status") or {}).get("migrationState")


def is_migrating(vmi: JSON) -> bool:
    """pkg/util/migrations/migrations.go IsMigrating."""
    state = migration_state(vmi) or {}
    return bool(state.get("startTimestamp")) and not state.get("endTimestamp")


def handler_running(node: Optional[JSON]) -> bool:
    """Whether virt-handler runs on a node: node.go isNodeUnresponsive's test of the kubevirt.io/heartbeat
    annotation heartbeat.go writes (a heartbeat older than heartBeatTimeout means virt-handler is gone).
    Lab nodes carry no heartbeat until a test writes one: no annotation stands for a live virt-handler.
    The lab has no node controller, so a stale heartbeat does not relabel the node or fail its VMIs:
    a handler that is gone just does nothing, which holds a migration in the phase waiting for it."""
    stamp = (((node or {}).get("metadata") or {}).get("annotations") or {}).get(HEARTBEAT_ANNOTATION)
    if stamp is None:
        return True
    try:
        beat = datetime.strptime(stamp.strip('"'), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return False
    return (datetime.now(timezone.utc) - beat).total_seconds() < HEARTBEAT_TIMEOUT


def hotplug_in_progress(vmi: JSON) -> bool:
    """workload-updater.go isHotplugInProgress."""
    vcpu = condition(vmi, HOT_VCPU_CHANGE)
    memory = condition(vmi, HOT_MEMORY_CHANGE)
    required = condition(vmi, MIGRATION_REQUIRED)
    return (vcpu is not None or (memory or {}).get("status") == "True"
            or (required or {}).get("status") == "True")


def eviction_strategy(vmi: JSON, config: JSON) -> Optional[str]:
    """pkg/util/migrations/migrations.go VMIEvictionStrategy: the VMI's, else the cluster's."""
    return (vmi.get("spec") or {}).get("evictionStrategy") or config.get("evictionStrategy")


def is_live_migratable(vmi: JSON) -> bool:
    """types.go VirtualMachineInstance.IsMigratable."""
    cond = condition(vmi, handler.LIVE_MIGRATABLE)
    return bool(cond) and cond.get("status") == "True"


def migratable_on_eviction(vmi: JSON, config: JSON) -> bool:
    """migrations.go VMIMigratableOnEviction."""
    strategy = eviction_strategy(vmi, config)
    if strategy == "LiveMigrate":
        return True
    if strategy == "LiveMigrateIfPossible":
        return is_live_migratable(vmi)
    return False


# -- admission ------------------------------------------------------------------------------------

def _error(message: str) -> JSON:
    # util/webhooks/webhooks.go ToAdmissionResponseError
    return {"allowed": False, "status": {"message": message, "code": 400}}


def mutate_migration_create(request: JSON, _config: JSON) -> JSON:
    """migration-create-mutator.go Mutate: the kubevirt.io/vmi-name label and the finalizer."""
    resource = request.get("resource") or {}
    if resource.get("group") != "kubevirt.io" or resource.get("resource") != PLURAL:
        return _error(f"expect resource to be '{PLURAL}'")
    migration = request.get("object") or {}
    meta = copy.deepcopy(migration.get("metadata") or {})
    meta.setdefault("labels", {})[SELECTOR_LABEL] = (migration.get("spec") or {}).get("vmiName", "")
    meta["finalizers"] = list(meta.get("finalizers") or []) + [FINALIZER]
    patch = [{"op": "replace", "path": "/metadata", "value": meta}]
    return {"allowed": True, "patchType": "JSONPatch", "patch": base64.b64encode(json.dumps(patch).encode()).decode()}


def make_create_admitter(kube: Kube, controller_users: Tuple[str, ...]):
    """migration-create-admitter.go MigrationCreateAdmitter.Admit, reading VMIs and migrations from the apiserver."""

    def admit(request: JSON, config: JSON) -> JSON:
        resource = request.get("resource") or {}
        if resource.get("group") != "kubevirt.io" or resource.get("resource") != PLURAL:
            return _error(f"expect resource to be 'kubevirt.io/v1, Resource={PLURAL}'")
        migration = request.get("object") or {}
        spec = migration.get("spec") or {}
        namespace = request.get("namespace") or (migration.get("metadata") or {}).get("namespace", "")
        # ValidateVirtualMachineInstanceMigrationSpec
        if not spec.get("vmiName"):
            return {"allowed": False, "status": {"message": "vmiName is missing", "reason": "Invalid", "code": 422,
                                                 "details": {"causes": [{"reason": "FieldValueRequired",
                                                                         "message": "vmiName is missing",
                                                                         "field": "spec.vmiName"}]}}}
        if spec.get("priority") is not None and (request.get("userInfo") or {}).get("username") not in controller_users:
            message = "Migration priority queue, only virt-controller is allowed to set priority field"
            return {"allowed": False, "status": {"message": message, "reason": "Invalid", "code": 422, "details": {
                "causes": [{"reason": "FieldValueForbidden", "message": message, "field": "spec.migrationPriority"}]}}}
        name = spec["vmiName"]
        vmi = kube.get_or_none(object_path(API, "virtualmachineinstances", name, namespace))
        if vmi is None:
            return _error(f'the VMI "{namespace}/{name}" does not exist')
        if phase(vmi) in ("Succeeded", "Failed"):
            return _error("Cannot migrate VMI in finalized state.")
        # isMigratable
        for cond in (vmi.get("status") or {}).get("conditions") or []:
            if cond.get("type") == handler.LIVE_MIGRATABLE and cond.get("status") == "False":
                return _error(f"Cannot migrate VMI, Reason: {cond.get('reason', '')}, Message: {cond.get('message', '')}")
        # ensureNoMigrationConflict
        listing = kube.get(object_path(API, PLURAL, namespace=namespace), labelSelector=f"{SELECTOR_LABEL} in ({name})")
        for other in listing.get("items") or []:
            if not is_final(other):
                return _error(f"in-flight migration detected. Active migration job ({other['metadata']['uid']}) "
                              f"is currently already in progress for VMI {name}.")
        if spec.get("sendTo") is not None or spec.get("receive") is not None:
            gates = (config.get("developerConfiguration") or {}).get("featureGates") or []
            if "DecentralizedLiveMigration" not in gates:
                message = "DecentralizedLiveMigration feature gate is not enabled in kubevirt resource"
                return {"allowed": False, "status": {"message": message, "reason": "Invalid", "code": 422, "details": {
                    "causes": [{"reason": "FieldValueNotSupported", "message": message}]}}}
        return {"allowed": True}

    return admit


def _not_supported(message: str) -> JSON:
    # util/webhooks/webhooks.go ToAdmissionResponse of one metav1.CauseTypeFieldValueNotSupported cause
    return {"allowed": False, "status": {"message": message, "reason": "Invalid", "code": 422,
                                         "details": {"causes": [{"reason": "FieldValueNotSupported", "message": message}]}}}


def admit_migration_update(request: JSON, _config: JSON) -> JSON:
    """migration-update-admitter.go MigrationUpdateAdmitter.Admit (getAdmissionReviewMigration first)."""
    resource = request.get("resource") or {}
    if resource.get("group") != "kubevirt.io" or resource.get("resource") != PLURAL:
        return _error(f"expect resource to be 'kubevirt.io/v1, Resource={PLURAL}'")
    new = request.get("object") or {}
    old = request.get("oldObject") or {}
    # Reject Migration update if spec changed
    if without_nulls(new.get("spec") or {}) != without_nulls(old.get("spec") or {}):
        return _not_supported("update of Migration object's spec is restricted")
    # ensureSelectorLabelSafe: the selector label stays while the migration is in flight.
    old_labels = (old.get("metadata") or {}).get("labels")
    if mig_phase(new) not in FINAL and old_labels is not None:
        new_labels = (new.get("metadata") or {}).get("labels")
        if new_labels is None:
            if SELECTOR_LABEL in old_labels:
                return _not_supported("selector label can't be removed from an in-flight migration")
        elif SELECTOR_LABEL in old_labels and new_labels.get(SELECTOR_LABEL) != old_labels[SELECTOR_LABEL]:
            return _not_supported("selector label can't be modified on an in-flight migration")
    return {"allowed": True}


# -- controllers ----------------------------------------------------------------------------------

class Target:
    """The migration target pod virt-controller creates (migration.go createTargetPod), kept in memory."""

    def __init__(self, name: str):
        self.name = name
        self.created = time.monotonic()
        self.node: Optional[str] = None
        self.scheduled_at = 0.0
        self.unschedulable_reported = False
        self.deleted = False


class MigrationController:
    def __init__(self, manager: Manager, kube: Kube, operators: Operators, virt: VirtController, step_seconds: float):
        self.kube, self.operators, self.virt, self.step = kube, operators, virt, step_seconds
        self.queue = manager.queue
        self.vmims = manager.informer("vmims", object_path(API, PLURAL), ("VMIM",))
        # A second watch on VMIs: a VMI change wakes its migrations, its handler-side conditions and the
        # workload updater (migration.go updateVMI, workload-updater.go updateVmi).
        self.vmis = manager.informer("vmis-migration", object_path(API, "virtualmachineinstances"), ("MigrationVMI",))
        self.nodes = manager.informer("nodes-migration", object_path("v1", "nodes"), ("Evacuation",))
        self.policies = manager.informer("migrationpolicies", object_path("migrations.kubevirt.io/v1alpha1",
                                                                          "migrationpolicies"))
        self.targets: Dict[str, Target] = {}  # VMIM uid -> its target pod
        self.since: Dict[str, float] = {}
        self.running_since: Dict[str, float] = {}  # VMI uid -> when it was first seen Running
        self.started: Dict[str, float] = {}  # VMIM uid -> when its pre-copy started
        self.backoff_reported: set = set()
        self.handed_off: set = set()  # migration.go handOffMap: VMIM uids whose hand-off was written
        self.eviction_warned: set = set()  # (VMI uid, message) of the eviction warnings written
        manager.reconciler("VMIM", self.reconcile_migration)
        manager.reconciler("MigrationVMI", self.reconcile_vmi)
        manager.reconciler("Evacuation", self.reconcile_node)
        manager.reconciler("WorkloadUpdater", self.reconcile_workload_updater)
        self.queue.add(("WorkloadUpdater", "", "kubevirt"), after=1.0)

    # -- helpers --------------------------------------------------------------------------------

    def _config(self) -> JSON:
        return self.operators.kubevirt_config()

    @staticmethod
    def _path(mig: JSON, status: bool = False) -> str:
        meta = mig["metadata"]
        return object_path(API, PLURAL, meta["name"], meta["namespace"]) + ("/status" if status else "")

    @staticmethod
    def _vmi_path(vmi: JSON) -> str:
        meta = vmi["metadata"]
        return object_path(API, "virtualmachineinstances", meta["name"], meta["namespace"])

    def _handler_on(self, node_name: Optional[str]) -> bool:
        """Whether virt-handler runs on the node (handler_running)."""
        return handler_running(self.nodes.get("", node_name or "")) if node_name else False

    def _handed_off(self, mig: JSON, vmi: JSON) -> bool:
        """migration.go isMigrationHandedOff: the VMI's migrationState is this migration's, or the hand-off
        was written and the informer has not caught up yet."""
        uid = mig["metadata"]["uid"]
        return (migration_state(vmi) or {}).get("migrationUid") == uid or uid in self.handed_off

    def _due(self, mig: JSON) -> float:
        key = mig["metadata"]["uid"] + ":" + mig_phase(mig) + ":" + str(bool(mig["metadata"].get("deletionTimestamp")))
        since = self.since.setdefault(key, time.monotonic())
        return max(0.0, since + self.step - time.monotonic())

    def _pvc(self, namespace: str, name: str) -> Optional[JSON]:
        return self.kube.get_or_none(object_path("v1", "persistentvolumeclaims", name, namespace))

    def _event(self, obj: JSON, kind: str, reason: str, message: str,
               component: str = "virtualmachine-controller", host: str = "") -> None:
        """A core/v1 Event as KubeVirt's recorder writes it: virt-controller's recorders are named per
        controller (watch/application.go newRecorder: virtualmachine-controller for migrations,
        workload-update-controller, evacuation-controller), virt-handler's is virt-handler with its host."""
        meta = obj["metadata"]
        stamp = now()
        digest = hashlib.sha256(f"{meta['uid']}{reason}{message}{time.time()}".encode()).hexdigest()[:16]
        event = {"apiVersion": "v1", "kind": "Event",
                 "metadata": {"name": f"{meta['name']}.{digest}", "namespace": meta["namespace"]},
                 "involvedObject": {"apiVersion": API, "kind": obj.get("kind", ""), "name": meta["name"],
                                    "namespace": meta["namespace"], "uid": meta["uid"],
                                    "resourceVersion": meta.get("resourceVersion", "")},
                 "reason": reason, "message": message, "type": kind, "count": 1,
                 "firstTimestamp": stamp, "lastTimestamp": stamp, "source": {"component": component, **({"host": host} if host else {})},
                 "reportingComponent": "", "reportingInstance": ""}
        try:
            self.kube.create(object_path("v1", "events", namespace=meta["namespace"]), event)
        except KubeError as err:
            log.warning("event %s: %s", reason, err)

    def _migrations_for(self, namespace: str, vmi_name: str) -> List[JSON]:
        return [m for m in self.vmims.list()
                if m["metadata"]["namespace"] == namespace and (m.get("spec") or {}).get("vmiName") == vmi_name]

    def _unfinished(self) -> List[JSON]:
        return [m for m in self.vmims.list() if not is_final(m)]

    def _running(self) -> List[JSON]:
        """migration.go findRunningMigrations: running phases, and pending ones whose target pod exists."""
        running = []
        for mig in self._unfinished():
            target = self.targets.get(mig["metadata"]["uid"])
            if mig_phase(mig) not in NOT_RUNNING or (target is not None and not target.deleted):
                running.append(mig)
        return running

    def _outbound(self, node: str, running: List[JSON]) -> int:
        """migration.go outboundMigrationsOnNode."""
        count = 0
        for mig in running:
            vmi = self.vmis.get(mig["metadata"]["namespace"], mig["spec"].get("vmiName", ""))
            if vmi is None:
                continue
            state = migration_state(vmi) or {}
            if (vmi.get("status") or {}).get("nodeName") == node or state.get("sourceNode") == node:
                count += 1
        return count

    # -- VirtualMachineInstanceMigration (migration.go execute) ---------------------------------

    def reconcile_migration(self, namespace: str, name: str) -> Optional[float]:
        mig = self.vmims.get(namespace, name)
        if mig is None:
            return None
        meta = mig["metadata"]
        vmi_name = (mig.get("spec") or {}).get("vmiName", "")
        annotations = meta.get("annotations") or {}
        # migration.go execute: SetLatestApiVersionAnnotation and ensureSelectorLabelPresent come first.
        if (annotations.get(LATEST_API_ANNOTATION) != "v1" or annotations.get(STORAGE_API_ANNOTATION) != "v1"
                or (meta.get("labels") or {}).get(SELECTOR_LABEL) != vmi_name) and not meta.get("deletionTimestamp"):
            self.kube.merge_patch(self._path(mig), {"metadata": {
                "annotations": {LATEST_API_ANNOTATION: "v1", STORAGE_API_ANNOTATION: "v1"},
                "labels": {SELECTOR_LABEL: vmi_name}}})
            return None
        vmi = self.vmis.get(namespace, vmi_name)
        if vmi is None:
            self.handed_off.discard(meta["uid"])
            if not meta.get("deletionTimestamp"):
                # "Deleting migration for deleted vmi"
                self.kube.delete(self._path(mig))
            else:
                # KubeVirt leaves this to the VMI's failure; the lab's VMIs vanish without failing first.
                self._set_finalizers(mig, [f for f in meta.get("finalizers") or [] if f != FINALIZER])
            self.targets.pop(meta["uid"], None)
            return None
        wait = self._due(mig)
        if wait > 0:
            return wait
        again = self._sync(mig, vmi)
        if again == "written":
            return self.step
        status_again = self._update_status(mig, vmi)
        if is_final(mig):
            self.handed_off.discard(meta["uid"])
            self._garbage_collect(vmi)
            self._wake_pending()
            return None
        handler_again = self._handler_step(mig, vmi)
        candidates = [x for x in (again, status_again, handler_again) if isinstance(x, (int, float))]
        return min(candidates) if candidates else self.step

    def _set_finalizers(self, mig: JSON, finalizers: List[str]) -> None:
        self.kube.json_patch(self._path(mig), [
            {"op": "test", "path": "/metadata/finalizers", "value": mig["metadata"].get("finalizers")},
            {"op": "replace", "path": "/metadata/finalizers", "value": finalizers}])

    def _garbage_collect(self, vmi: JSON) -> None:
        """migration.go garbageCollectFinalizedMigrations: only the newest five finished migrations of a VMI stay."""
        namespace = vmi["metadata"]["namespace"]
        finished = sorted((m for m in self._migrations_for(namespace, vmi["metadata"]["name"])
                           if is_final(m) and not m["metadata"].get("deletionTimestamp")),
                          key=lambda m: m["metadata"].get("creationTimestamp", ""))
        for mig in finished[:max(len(finished) - FINALIZED_GC_BUFFER, 0)]:
            self.kube.delete(self._path(mig))

    def _backoff(self, mig: JSON, vmi: JSON) -> float:
        """migration.go handleMigrationBackoff: seconds an evacuation or workload-update migration still waits
        after failed ones of the same VMI (20 s, doubled per further failure since the last success)."""
        def eligible(m: JSON) -> bool:
            annotations = m["metadata"].get("annotations") or {}
            return EVACUATION_ANNOTATION in annotations or WORKLOAD_UPDATE_ANNOTATION in annotations
        if not eligible(mig):
            return 0.0
        ordered = sorted((m for m in self._migrations_for(vmi["metadata"]["namespace"], vmi["metadata"]["name"])
                          if eligible(m)), key=lambda m: m["metadata"].get("creationTimestamp", ""), reverse=True)
        if len(ordered) < 2 or ordered[0]["metadata"]["uid"] != mig["metadata"]["uid"]:
            return 0.0
        backoff = 0
        for other in ordered[1:]:
            if mig_phase(other) == "Succeeded":
                break
            if other["metadata"].get("deletionTimestamp"):
                continue
            if mig_phase(other) == "Failed":
                backoff = 20 if backoff == 0 else backoff * 2
        if backoff == 0:
            return 0.0
        failed_at = next((p["phaseTransitionTimestamp"] for p in (ordered[1].get("status") or {}).get(
            "phaseTransitionTimestamps") or [] if p.get("phase") == "Failed"), None)
        if failed_at is None:
            return 0.0
        since = datetime.now(timezone.utc) - datetime.strptime(failed_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        return max(backoff - since.total_seconds(), 0.0)

    def _wake_pending(self) -> None:
        """migration.go reEnqueueHighestPriorityPendingMigrations."""
        limit = migration_config(self._config())["parallelMigrationsPerCluster"]
        pending = [m for m in self._unfinished() if mig_phase(m) == "Pending"]
        # Highest queue priority first (KubeVirt's sort.Slice leaves ties in any order; the lab takes the oldest).
        pending.sort(key=lambda m: (-queue_priority(m), m["metadata"].get("creationTimestamp", "")))
        for mig in pending[:limit]:
            self.queue.add(("VMIM", mig["metadata"]["namespace"], mig["metadata"]["name"]))

    def _can_migrate(self, mig: JSON, vmi: JSON) -> bool:
        """migration.go canMigrateVMI."""
        state = migration_state(vmi)
        if not state or not state.get("migrationUid") or state.get("migrationUid") == mig["metadata"]["uid"]:
            return True
        for other in self.vmims.list():
            if other["metadata"]["uid"] == state["migrationUid"]:
                return is_final(other)
        return True

    # migration.go sync: the controller's actions for the current phase.
    def _sync(self, mig: JSON, vmi: JSON):
        uid = mig["metadata"]["uid"]
        state = migration_state(vmi) or {}
        if vmi["metadata"].get("deletionTimestamp"):
            return None
        if state.get("migrationUid") == uid and state.get("completed"):
            return None
        if not self._can_migrate(mig, vmi):
            return None
        current = mig_phase(mig)
        deleting = bool(mig["metadata"].get("deletionTimestamp"))
        target = self.targets.get(uid)
        if current == "Pending":
            if deleting:
                return self._pre_handoff_cancel(mig, target)
            if target is None:
                backoff = self._backoff(mig, vmi)
                if backoff > 0:
                    ns, name = vmi["metadata"]["namespace"], vmi["metadata"]["name"]
                    if uid not in self.backoff_reported:
                        self.backoff_reported.add(uid)
                        self._event({**vmi, "kind": "VirtualMachineInstance"}, "Warning", "MigrationBackoff",
                                    f"backoff migrating vmi {ns}/{name}")
                    return backoff
                if self._setup_runtime_user(vmi):
                    return "written"
                return self._create_target(mig, vmi)
            if target.node is None:
                return self._pending_timeout(mig, vmi, target)
        elif current == "Scheduling":
            if deleting:
                return self._pre_handoff_cancel(mig, target)
            if target is not None and not target.deleted and target.node is None:
                self._schedule_target(mig, vmi, target)
                if target.node is None:
                    return self._pending_timeout(mig, vmi, target)
        elif current == "Scheduled":
            if deleting and not self._handed_off(mig, vmi):
                return self._pre_handoff_cancel(mig, target)
            if target is not None and target.node and self._target_ready(target):
                return self._handoff(mig, vmi, target)
        elif current in ("PreparingTarget", "TargetReady"):
            if ((target is None or target.deleted) and state.get("migrationUid") == uid
                    and not state.get("startTimestamp") and not state.get("failed") and not state.get("completed")):
                return self._mark_failed_on_vmi(mig, vmi)
        elif current == "Failed":
            if state.get("migrationUid") == uid and not state.get("failed"):
                return self._mark_failed_on_vmi(mig, vmi)
        elif current == "Running":
            if deleting and state and not state.get("abortRequested"):
                # migration.go markMigrationAbortInVmiStatus
                self._patch_state(vmi, {**state, "abortRequested": True})
                self._event(mig, "Normal", "SuccessfulAbortMigration", "Migration is ready to be canceled by virt-handler.")
                return "written"
        return None

    def _setup_runtime_user(self, vmi: JSON) -> bool:
        """migration.go setupVMIRuntimeUser, before the target pod is created: without the Root feature gate
        the VMI is non-root (status.runtimeUser 107 and the kubevirt.io/nonroot annotation), else root (0)."""
        gates = (self._config().get("developerConfiguration") or {}).get("featureGates") or []
        ops: List[JSON] = []
        if "Root" not in gates:
            if (vmi.get("status") or {}).get("runtimeUser") != NON_ROOT_UID:
                ops.append({"op": "replace" if "runtimeUser" in (vmi.get("status") or {}) else "add",
                            "path": "/status/runtimeUser", "value": NON_ROOT_UID})
            annotations = vmi["metadata"].get("annotations")
            if annotations is None:
                ops.append({"op": "add", "path": "/metadata/annotations", "value": {NON_ROOT_ANNOTATION: "true"}})
            elif NON_ROOT_ANNOTATION not in annotations:
                ops.append({"op": "add", "path": "/metadata/annotations/" + NON_ROOT_ANNOTATION.replace("/", "~1"),
                            "value": "true"})
        else:
            if (vmi.get("status") or {}).get("runtimeUser") not in (0, None):
                ops.append({"op": "replace", "path": "/status/runtimeUser", "value": 0})
            if NON_ROOT_ANNOTATION in (vmi["metadata"].get("annotations") or {}):
                ops.append({"op": "remove",
                            "path": "/metadata/annotations/" + NON_ROOT_ANNOTATION.replace("/", "~1")})
        if not ops:
            return False
        self.kube.json_patch(self._vmi_path(vmi), [_rv(vmi)] + ops)
        return True

    def _mark_failed_on_vmi(self, mig: JSON, vmi: JSON):
        """migration.go handleMarkMigrationFailedOnVMI: a migration that ends before the source reported its
        end marks the VMI's migrationState failed ("Target pod is down"), with both timestamps."""
        state = migration_state(vmi) or {}
        stamp = now()
        ops: List[JSON] = [{"op": "test", "path": "/status/migrationState/migrationUid", "value": mig["metadata"]["uid"]},
                           {"op": "add", "path": "/status/migrationState/failed", "value": True},
                           {"op": "add", "path": "/status/migrationState/completed", "value": True}]
        if not state.get("endTimestamp"):
            ops.append({"op": "add", "path": "/status/migrationState/endTimestamp", "value": stamp})
        if not state.get("startTimestamp"):
            ops.append({"op": "add", "path": "/status/migrationState/startTimestamp", "value": stamp})
        if not state.get("failureReason"):
            ops.append({"op": "add", "path": "/status/migrationState/failureReason", "value": "Target pod is down"})
        self.kube.json_patch(self._vmi_path(vmi), ops)
        self._event({**vmi, "kind": "VirtualMachineInstance"}, "Warning", "FailedMigration",
                    f"VirtualMachineInstance migration uid {mig['metadata']['uid']} failed. reason: Target pod is down")
        return "written"

    def _target_ready(self, target: Target) -> bool:
        return time.monotonic() >= target.scheduled_at + self.step

    def _pre_handoff_cancel(self, mig: JSON, target: Optional[Target]):
        """migration.go handlePreHandoffMigrationCancel: the target pod goes; updateStatus fails the migration."""
        if target is not None and not target.deleted:
            target.deleted = True
            self._event(mig, "Normal", "SuccessfulDelete",
                        f"migration canceled and pod {mig['metadata']['namespace']}/{target.name} is deleted")
        return None

    def _create_target(self, mig: JSON, vmi: JSON):
        """migration.go handleTargetPodCreation: the cluster and per-node limits, then the target pod."""
        config = migration_config(self._config())
        running = self._running()
        delay = requeue_delay(queue_priority(mig))
        if len(running) >= config["parallelMigrationsPerCluster"]:
            return delay
        if self._outbound((vmi.get("status") or {}).get("nodeName", ""), running) >= config["parallelOutboundMigrationsPerNode"]:
            return delay
        if phase(vmi) != "Running":
            return self.step
        suffix = hashlib.sha256(mig["metadata"]["uid"].encode()).hexdigest()[:5]
        target = Target(f"virt-launcher-{vmi['metadata']['name']}-{suffix}")
        self.targets[mig["metadata"]["uid"]] = target
        self._event(mig, "Normal", "SuccessfulCreate", f"Created migration target pod {target.name}")
        return None

    def _schedule_target(self, mig: JSON, vmi: JSON, target: Target) -> None:
        """kube-scheduler placing the target pod: virt-launcher's scheduling constraints, the migration's
        addedNodeSelector, and createMigrationPodAntiAffinityRule (never the source node)."""
        source = (vmi.get("status") or {}).get("nodeName")
        added = (mig.get("spec") or {}).get("addedNodeSelector") or {}
        nodes = self.virt.schedulable_nodes(vmi, added)[0]
        nodes = [n for n in nodes if n["metadata"]["name"] != source]
        if not nodes:
            if not target.unschedulable_reported:
                target.unschedulable_reported = True
                ns, name = vmi["metadata"]["namespace"], vmi["metadata"]["name"]
                # migration.go handlePendingPodTimeout: controller.MigrationTargetPodUnschedulable
                self._event(mig, "Warning", "migrationTargetPodUnschedulable",
                            f"Migration target pod for VMI [{ns}/{name}] is currently unschedulable.")
            return
        load = {n["metadata"]["name"]: 0 for n in nodes}
        for other in self.vmis.list():
            node_name = (other.get("status") or {}).get("nodeName")
            if node_name in load:
                load[node_name] += 1
        target.node = min(load, key=lambda n: (load[n], n))
        target.scheduled_at = time.monotonic()

    def _pending_timeout(self, mig: JSON, vmi: JSON, target: Target):
        """migration.go handlePendingPodTimeout / deleteTimedOutTargetPod."""
        annotations = mig["metadata"].get("annotations") or {}

        def seconds(key: str, default: int) -> int:
            try:
                return int(annotations[key])
            except (KeyError, ValueError):
                return default
        unschedulable = seconds(UNSCHEDULABLE_TIMEOUT_ANNOTATION, DEFAULT_UNSCHEDULABLE_TIMEOUT)
        catch_all = seconds(PENDING_TIMEOUT_ANNOTATION, DEFAULT_CATCH_ALL_TIMEOUT)
        pending = time.monotonic() - target.created
        ns = vmi["metadata"]["namespace"]
        if target.unschedulable_reported and pending >= unschedulable:
            target.deleted = True
            self._event(mig, "Normal", "SuccessfulDelete", f"unschedulable pod {ns}/{target.name} timeout period exceeded")
            return None
        if pending >= catch_all:
            target.deleted = True
            self._event(mig, "Normal", "SuccessfulDelete", f"pending pod {ns}/{target.name} timeout period exceeded")
            return None
        left = (unschedulable if target.unschedulable_reported else catch_all) - pending
        return max(min(left, 2.0), 0.05)

    def _handoff(self, mig: JSON, vmi: JSON, target: Target):
        """migration.go handleTargetPodHandoff: a fresh migrationState and the target-node label."""
        state = migration_state(vmi)
        if state and state.get("migrationUid") == mig["metadata"]["uid"]:
            return None
        status = vmi.get("status") or {}
        source_pod = ((mig.get("status") or {}).get("migrationState") or {}).get("sourcePod")
        new_state = {"migrationUid": mig["metadata"]["uid"], "targetNode": target.node,
                     "sourceNode": status.get("nodeName"), "targetPod": target.name}
        if source_pod:
            new_state["sourcePod"] = source_pod
        # migration.go matchMigrationPolicy: the resolved configuration and the matched policy's name.
        namespace = self.kube.get_or_none(object_path("v1", "namespaces", vmi["metadata"]["namespace"])) or {}
        policy = match_policy(self.policies.list(), vmi["metadata"].get("labels") or {},
                              namespace.get("metadata", {}).get("labels") or {})
        new_state["migrationConfiguration"] = resolved_migration_configuration(self._config(), policy)
        if policy is not None:
            new_state["migrationPolicyName"] = policy["metadata"]["name"]
        self.kube.json_patch(self._vmi_path(vmi), [
            _rv(vmi),
            {"op": "add", "path": "/status/migrationState", "value": new_state},
            {"op": "add", "path": "/metadata/labels/" + TARGET_NODE_LABEL.replace("/", "~1"), "value": target.node}])
        self.handed_off.add(mig["metadata"]["uid"])
        self._event(mig, "Normal", "SuccessfulHandOver", "Migration target pod is ready for preparation by virt-handler.")
        return "written"

    def _patch_state(self, vmi: JSON, state: JSON, extra: Optional[List[JSON]] = None) -> None:
        self.kube.json_patch(self._vmi_path(vmi), [
            _rv(vmi),
            {"op": "replace", "path": "/status/migrationState", "value": state}] + (extra or []))

    # migration.go updateStatus (+ processMigrationPhase): the VMIM's own status.
    def _update_status(self, mig: JSON, vmi: JSON):
        uid = mig["metadata"]["uid"]
        status = copy.deepcopy(mig.get("status") or {})
        finalizers = list(mig["metadata"].get("finalizers") or [])
        state = migration_state(vmi)
        synced = state is not None
        current = status.get("phase") or ""
        target = self.targets.get(uid)
        deleting = bool(mig["metadata"].get("deletionTimestamp"))
        conditions = status.setdefault("conditions", [])
        again = None

        def abort_condition():
            if not any(c.get("type") == ABORT_REQUESTED for c in conditions):
                conditions.append({"type": ABORT_REQUESTED, "status": "True", "lastProbeTime": now(),
                                   "lastTransitionTime": None})

        def fail(message: str):
            status["phase"] = "Failed"
            self._event(mig, "Warning", "FailedMigration", message)

        if current in FINAL:
            if synced and state.get("migrationUid") == uid:
                status["migrationState"] = state
            finalizers = [f for f in finalizers if f != FINALIZER]
        elif phase(vmi) in ("Succeeded", "Failed") or vmi["metadata"].get("deletionTimestamp"):
            # The lab's VMI deletion stands for the source pod going down.
            fail("Migration failed vmi shutdown during migration.")
        elif deleting and not self._handed_off(mig, vmi):
            abort_condition()
            fail("Migration failed due to being canceled")
        elif current not in ("", "Pending") and (target is None or target.deleted) and current in NOT_HANDED_OFF:
            fail("Migration target pod was removed during active migration.")
        elif current not in NOT_HANDED_OFF and not synced:
            fail("VMI's migration state was cleared during the active migration.")
        elif current not in NOT_HANDED_OFF and state.get("migrationUid") != uid:
            fail("VMI's migration state was taken over by another migration job during active migration.")
        elif synced and state.get("migrationUid") == uid and state.get("failed"):
            fail("source node reported migration failed")
        elif deleting and not any(c.get("type") == ABORT_REQUESTED for c in conditions):
            # Once the condition is there, processMigrationPhase goes on: the migration reaches Running,
            # where sync asks virt-handler to abort it (markMigrationAbortInVmiStatus).
            abort_condition()
        else:
            again = self._process_phase(mig, vmi, status, target)
        if not conditions:
            status.pop("conditions")
        # controller.SetVMIMigrationPhaseTransitionTimestamp
        if status.get("phase") != (mig.get("status") or {}).get("phase") and status.get("phase"):
            stamps = list(status.get("phaseTransitionTimestamps") or [])
            stamps.append({"phase": status["phase"], "phaseTransitionTimestamp": now()})
            status["phaseTransitionTimestamps"] = stamps
        # controller.SetSourcePod: the source pod's name while Pending: the VMI's current pod, which after a
        # successful migration is that migration's target pod (netstat.active_pod_seed).
        if status.get("phase") == "Pending":
            suffix = hashlib.sha256(netstat.active_pod_seed(vmi).encode()).hexdigest()[:5]
            status.setdefault("migrationState", {})["sourcePod"] = f"virt-launcher-{vmi['metadata']['name']}-{suffix}"
        if status != (mig.get("status") or {}):
            body = {**mig, "status": status}
            self.kube.request("PUT", self._path(mig, status=True), body)
            return self.step
        if finalizers != list(mig["metadata"].get("finalizers") or []):
            self._set_finalizers(mig, finalizers)
            self.targets.pop(uid, None)
        return again

    def _process_phase(self, mig: JSON, vmi: JSON, status: JSON, target: Optional[Target]):
        """migration.go processMigrationPhase."""
        current = status.get("phase") or ""
        state = migration_state(vmi) or {}
        if current == "":
            if self._can_migrate(mig, vmi):
                status["phase"] = "Pending"
            else:
                status["phase"] = "Failed"
                self._event(mig, "Warning", "FailedMigration",
                            "VMI is not eligible for migration because another migration job is in progress.")
        elif current == "Pending":
            if target is not None and not target.deleted:
                status["phase"] = "Scheduling"
        elif current == "Scheduling":
            if target is not None and target.node and self._target_ready(target):
                status["phase"] = "Scheduled"
            elif target is not None and target.node:
                return max(target.scheduled_at + self.step - time.monotonic(), 0.05)
        elif current == "Scheduled":
            # types.go IsTargetPreparing
            if state.get("migrationUid") == mig["metadata"]["uid"] and state.get("targetNode"):
                status["phase"] = "PreparingTarget"
        elif current == "PreparingTarget":
            if state.get("targetNode") and state.get("targetNodeAddress"):
                status["phase"] = "TargetReady"
        elif current == "TargetReady":
            if state.get("startTimestamp"):
                status["phase"] = "Running"
        elif current == "Running":
            if (state.get("completed") and condition(vmi, HOT_VCPU_CHANGE) is None
                    and (condition(vmi, HOT_MEMORY_CHANGE) or {}).get("status") != "True"
                    and (condition(vmi, MIGRATION_REQUIRED) or {}).get("status") != "True"):
                status["phase"] = "Succeeded"
                self._event(mig, "Normal", "SuccessfulMigration", "Source node reported migration succeeded")
        return None

    # -- virt-handler (source and target) --------------------------------------------------------

    def _handler_step(self, mig: JSON, vmi: JSON):
        """What virt-handler and virt-launcher write into VMI status.migrationState, one step each."""
        uid = mig["metadata"]["uid"]
        state = migration_state(vmi)
        if not state or state.get("migrationUid") != uid or state.get("completed"):
            return None
        stamp = now()
        source_on, target_on = self._handler_on(state.get("sourceNode")), self._handler_on(state.get("targetNode"))
        if not state.get("targetNodeAddress"):
            if not target_on:
                return self.step
            # migration-target.go: the target handler prepared the domain and publishes where to send it.
            node = next((n for n in self.nodes.list() if n["metadata"]["name"] == state.get("targetNode")), {})
            address = next((a["address"] for a in (node.get("status") or {}).get("addresses") or []
                            if a.get("type") == "InternalIP"), "127.0.0.1")
            self._patch_state(vmi, {**state, "targetNodeAddress": address,
                                    "targetDirectMigrationNodePorts": {"49152": 0, "49153": 49152}})
            target_vmi = {**vmi, "kind": "VirtualMachineInstance"}
            self._event(target_vmi, "Normal", "PreparingTarget", "VirtualMachineInstance Migration Target Prepared.",
                        "virt-handler", state.get("targetNode", ""))
            self._event(target_vmi, "Normal", "PreparingTarget",
                        f"Migration Target is listening at {address}, on ports: 49152,49153",
                        "virt-handler", state.get("targetNode", ""))
            return self.step
        if not source_on:
            # migration-source.go runs in the source node's virt-handler: nothing starts, ends or aborts.
            return self.step
        if not state.get("startTimestamp"):
            # migration-source.go setMigrationProgressStatus: virt-launcher started the job (pre-copy).
            self._patch_state(vmi, {**state, "startTimestamp": stamp, "mode": "PreCopy"})
            # migration-source.go migrateVMI
            self._event({**vmi, "kind": "VirtualMachineInstance"}, "Normal", "Migrating",
                        "VirtualMachineInstance is migrating.", "virt-handler", state.get("sourceNode", ""))
            return self.step
        started = self.started.setdefault(uid, time.monotonic())
        if state.get("abortRequested"):
            # live-migration-source.go: the job is aborted; setMigrationResult(failed, "canceled by client").
            self._patch_state(vmi, {**state, "abortStatus": "Succeeded", "failed": True, "completed": True,
                                    "endTimestamp": stamp, "failureReason": ABORTED_REASON})
            source_vmi, host = {**vmi, "kind": "VirtualMachineInstance"}, state.get("sourceNode", "")
            # migration-source.go handleMigrationAbort, then setMigrationProgressStatus reporting the failure
            self._event(source_vmi, "Normal", "Migrating", "VirtualMachineInstance is aborting migration.", "virt-handler", host)
            self._event(source_vmi, "Warning", "Migrated",
                        f"VirtualMachineInstance migration uid {uid} failed. reason:{ABORTED_REASON}", "virt-handler", host)
            return self.step
        left = started + self._copy_steps(vmi) * self.step - time.monotonic()
        if left > 0:
            return left
        if not target_on:
            return self.step
        if not state.get("targetNodeDomainReadyTimestamp"):
            # migration-target.go sync: the target detects the domain, then the running domain (before the
            # end is acknowledged), and drops MigrationRequired.
            conditions = [c for c in (vmi.get("status") or {}).get("conditions") or [] if c.get("type") != MIGRATION_REQUIRED]
            self._patch_state(vmi, {**state, "targetNodeDomainDetected": True, "targetNodeDomainReadyTimestamp": stamp},
                              [{"op": "replace", "path": "/status/conditions", "value": conditions}])
            return self.step
        self.started.pop(uid, None)
        # migration-source.go updateStatus + migration-target.go: the domain runs on the target, which owns
        # the VMI from now on (nodeName and its label follow); hotplugCPU/hotplugMemory apply pending changes.
        target = state["targetNode"]
        extra: List[JSON] = [
            {"op": "replace", "path": "/status/nodeName", "value": target},
            {"op": "add", "path": "/metadata/labels/" + NODE_NAME_LABEL.replace("/", "~1"), "value": target}]
        spec = vmi.get("spec") or {}
        conditions = list((vmi.get("status") or {}).get("conditions") or [])
        if condition(vmi, HOT_VCPU_CHANGE) is not None:
            cpu = (spec.get("domain") or {}).get("cpu") or {}
            topology = {k: cpu[k] for k in ("sockets", "cores", "threads") if k in cpu}
            extra.append({"op": "add", "path": "/status/currentCPUTopology", "value": topology})
            conditions = [c for c in conditions if c.get("type") != HOT_VCPU_CHANGE]
        if condition(vmi, HOT_MEMORY_CHANGE) is not None:
            guest = ((spec.get("domain") or {}).get("memory") or {}).get("guest")
            memory = dict((vmi.get("status") or {}).get("memory") or {})
            if guest:
                memory.update({"guestRequested": guest, "guestCurrent": guest})
            extra.append({"op": "add", "path": "/status/memory", "value": memory})
            conditions = [c for c in conditions if c.get("type") != HOT_MEMORY_CHANGE]
        extra.append({"op": "replace", "path": "/status/conditions", "value": conditions})
        # netstat.go updateIfacesStatusFromPodCache on the target: the primary interface has the target pod's IP.
        ended = {**state, "completed": True}
        interfaces = (vmi.get("status") or {}).get("interfaces")
        if interfaces:
            moved = {**vmi, "status": {**vmi["status"], "migrationState": ended}}
            extra.append({"op": "replace", "path": "/status/interfaces", "value": netstat.with_pod_ip(moved, interfaces)})
        if (vmi.get("status") or {}).get("evacuationNodeName"):
            # migration-target.go: the evacuation is over once the VMI runs on the target.
            extra.append({"op": "remove", "path": "/status/evacuationNodeName"})
        # migration-target.go ackMigrationCompletion: the next migration uses the unix transport.
        extra.append({"op": "add", "path": "/status/migrationTransport", "value": "Unix"})
        self._patch_state(vmi, {**state, "completed": True, "endTimestamp": stamp}, extra)
        self._event({**vmi, "kind": "VirtualMachineInstance"}, "Normal", "Migrated",
                    f"The VirtualMachineInstance migrated to node {target}.", "virt-handler", target)
        return self.step

    @staticmethod
    def _copy_steps(vmi: JSON) -> int:
        """How many steps the pre-copy takes: the lab copies 1 GiB of guest memory a step (at least one)."""
        domain = (vmi.get("spec") or {}).get("domain") or {}
        memory = ((domain.get("memory") or {}).get("guest")
                  or ((domain.get("resources") or {}).get("requests") or {}).get("memory"))
        try:
            size = admission.quantity(memory).value()
        except admission.QuantityError:
            size = 0
        return max(1, min(60, size // (1 << 30)))

    # -- VMI: wake its migrations, virt-handler's conditions and the guest agent -------------------

    def reconcile_vmi(self, namespace: str, name: str) -> Optional[float]:
        for mig in self._migrations_for(namespace, name):
            if not is_final(mig) or FINALIZER in (mig["metadata"].get("finalizers") or []):
                self.queue.add(("VMIM", namespace, mig["metadata"]["name"]))
        vmi = self.vmis.get(namespace, name)
        if vmi is None:
            return None
        if hotplug_in_progress(vmi):
            self.queue.add(("WorkloadUpdater", "", "kubevirt"))
        node_name = (vmi.get("status") or {}).get("nodeName")
        if node_name and (vmi.get("status") or {}).get("evacuationNodeName") == node_name:
            # evacuation.go enqueueVMI: a VMI marked for eviction wakes its node.
            self.queue.add(("Evacuation", "", node_name))
        if phase(vmi) != "Running" or vmi["metadata"].get("deletionTimestamp"):
            self.running_since.pop(vmi["metadata"]["uid"], None)
            return None
        cleanup = self._final_cleanup(vmi)
        if cleanup is not None:
            return cleanup
        return self._sync_handler_status(vmi)

    def _final_cleanup(self, vmi: JSON) -> Optional[float]:
        """migration-target.go sync / finalCleanup: once the migration ended (endTimestamp, completed or
        failed), the target virt-handler drops the kubevirt.io/migrationTargetNodeName label."""
        state = migration_state(vmi) or {}
        labels = vmi["metadata"].get("labels") or {}
        if TARGET_NODE_LABEL not in labels or not state.get("endTimestamp") or not (
                state.get("completed") or state.get("failed")):
            return None
        if not self._handler_on(labels[TARGET_NODE_LABEL]):
            return self.step
        self.kube.json_patch(self._vmi_path(vmi), [
            _rv(vmi), {"op": "remove", "path": "/metadata/labels/" + TARGET_NODE_LABEL.replace("/", "~1")}])
        return None

    def _sync_handler_status(self, vmi: JSON) -> Optional[float]:
        """vm.go updateVMIConditions (live migration, guest agent) and updateGuestInfoFromDomain."""
        status = vmi.get("status") or {}
        current = list(status.get("conditions") or [])
        config = self._config()
        wanted, method = handler.live_migration_conditions(vmi, self._pvc, config)
        conditions = handler.merge_conditions(current, wanted)
        live = next((c for c in wanted if c.get("type") == handler.LIVE_MIGRATABLE), None)
        if live is not None and live.get("status") == "False" and migratable_on_eviction(vmi, config):
            # vm.go updateLiveMigrationConditions warns on every sync; the event recorder's correlator folds
            # the repeats into one Event (its count), which the lab writes once per VMI and message.
            key = (vmi["metadata"]["uid"], live.get("message", ""))
            if key not in self.eviction_warned:
                self.eviction_warned.add(key)
                self._event({**vmi, "kind": "VirtualMachineInstance"}, "Warning", "Migrated",
                            f"EvictionStrategy is set but vmi is not migratable; {live.get('message', '')}",
                            "virt-handler", (vmi.get("status") or {}).get("nodeName", ""))
        patch: JSON = {}
        again: Optional[float] = None
        uid = vmi["metadata"]["uid"]
        since = self.running_since.setdefault(uid, time.monotonic())
        if handler.has_guest_agent(vmi) and condition(vmi, handler.AGENT_CONNECTED) is None:
            wait = since + handler.AGENT_STEPS * self.step - time.monotonic()
            if wait > 0:
                again = wait
            else:
                conditions = conditions + [handler.agent_condition(now())]
                patch["guestOSInfo"] = handler.guest_os_info(vmi)
                patch["interfaces"] = handler.interfaces_with_agent(status.get("interfaces") or [])
        if conditions != current:
            patch["conditions"] = conditions
        if status.get("migrationMethod") != method:
            patch["migrationMethod"] = method
        if patch:
            self.kube.json_patch(self._vmi_path(vmi), [
                _rv(vmi)]
                + [{"op": "add", "path": f"/status/{key}", "value": value} for key, value in patch.items()])
            return None
        # A claim that does not exist yet may appear: look again (virt-controller watches PVCs).
        if any(c.get("reason") == handler.REASON_DISKS and "Unable to determine" in c.get("message", "")
               for c in conditions):
            again = min(again or 2.0, 2.0)
        return again

    # -- workload-updater.go ---------------------------------------------------------------------

    def reconcile_workload_updater(self, _namespace: str, _name: str) -> Optional[float]:
        """workload-updater.go execute / sync / getUpdateData. The lab's VMIs never carry a
        launcherContainerImageVersion, so none is outdated by image (isOutdated): the VMIs to migrate are
        those with a hotplug change (doesRequireMigration)."""
        kv = self.operators.active_kubevirt()
        if kv is None:
            return 2.0
        # execute: nothing until the install is Deployed
        if (kv.get("status") or {}).get("phase") != "Deployed":
            return 2.0
        methods = ((kv.get("spec") or {}).get("workloadUpdateStrategy") or {}).get("workloadUpdateMethods") or []
        config = (kv.get("spec") or {}).get("configuration") or {}
        unfinished = self._unfinished()
        busy = {(m["metadata"]["namespace"], m["spec"].get("vmiName")) for m in unfinished}
        outdated, candidates, abort = [], [], []
        for vmi in self.vmis.list():
            if phase(vmi) != "Running" or vmi["metadata"].get("deletionTimestamp"):
                continue
            if self._should_abort_migration(vmi):
                abort.append(vmi)
                continue
            if not self._requires_migration(vmi):
                continue
            outdated.append(vmi)
            if is_migrating(vmi) or (vmi["metadata"]["namespace"], vmi["metadata"]["name"]) in busy:
                continue
            if "LiveMigrate" in methods and is_live_migratable(vmi):
                candidates.append(vmi)
        self._set_outdated_count(kv, len(outdated))
        limit = migration_config(config)["parallelMigrationsPerCluster"]
        room = max(limit - len([m for m in unfinished if mig_phase(m) not in NOT_RUNNING]), 0)
        for vmi in candidates[:room]:
            self._create_migration(vmi, "kubevirt-workload-update-", {WORKLOAD_UPDATE_ANNOTATION: ""},
                                   PRIORITY_USER_TRIGGERED, "Created Migration %s for automated workload update",
                                   "Error creating a Migration for automated workload update: %s",
                                   "workload-update-controller")
        for vmi in abort:
            for mig in self._workload_update_migrations(vmi):
                if mig["metadata"].get("deletionTimestamp"):
                    continue  # already deleted: the recorder would fold the repeated event
                try:
                    self.kube.delete(self._path(mig))
                except KubeError as err:
                    self._event({**vmi, "kind": "VirtualMachineInstance"}, "Normal", "FailedChangeAbortion",
                                f"Failed to abort change for vmi: {vmi['metadata']['name']}: {err}",
                                "workload-update-controller")
                    continue
                self._event({**vmi, "kind": "VirtualMachineInstance"}, "Normal", "SuccessfulChangeAbortion",
                            f"Aborted change for vmi: {vmi['metadata']['name']}", "workload-update-controller")
        # sync: "we keep periodically poping the loop until all VMIs are updated"
        return 1.0 if candidates or abort else 5.0

    def _workload_update_migrations(self, vmi: JSON) -> List[JSON]:
        """pkg/util/migrations ListWorkloadUpdateMigrations: the VMI's unfinished workload-update migrations."""
        return [m for m in self._migrations_for(vmi["metadata"]["namespace"], vmi["metadata"]["name"])
                if not is_final(m) and WORKLOAD_UPDATE_ANNOTATION in (m["metadata"].get("annotations") or {})]

    @staticmethod
    def _requires_migration(vmi: JSON) -> bool:
        """workload-updater.go doesRequireMigration."""
        if is_migrating(vmi) or WORKLOAD_UPDATE_ABORTION_ANNOTATION in (vmi["metadata"].get("annotations") or {}):
            return False
        return hotplug_in_progress(vmi) or (condition(vmi, VOLUMES_CHANGE) or {}).get("status") == "True"

    def _should_abort_migration(self, vmi: JSON) -> bool:
        """workload-updater.go shouldAbortMigration: the change that asked for the migration went away before
        the target domain was ready."""
        count = len(self._workload_update_migrations(vmi))
        if WORKLOAD_UPDATE_ABORTION_ANNOTATION in (vmi["metadata"].get("annotations") or {}):
            return count > 0
        if hotplug_in_progress(vmi) or (condition(vmi, VOLUMES_CHANGE) or {}).get("status") == "True":
            return False
        if (migration_state(vmi) or {}).get("targetNodeDomainReadyTimestamp"):
            return False
        return count > 0

    def _set_outdated_count(self, kv: JSON, count: int) -> None:
        """workload-updater.go sync: status.outdatedVirtualMachineInstanceWorkloads on the KubeVirt CR."""
        current = (kv.get("status") or {}).get("outdatedVirtualMachineInstanceWorkloads")
        if current == count:
            return
        path = object_path(API, "kubevirts", kv["metadata"]["name"], kv["metadata"]["namespace"]) + "/status"
        if current is None:
            ops = [{"op": "add", "path": "/status/outdatedVirtualMachineInstanceWorkloads", "value": count}]
        else:
            ops = [{"op": "test", "path": "/status/outdatedVirtualMachineInstanceWorkloads", "value": current},
                   {"op": "replace", "path": "/status/outdatedVirtualMachineInstanceWorkloads", "value": count}]
        try:
            self.kube.json_patch(path, ops)
        except KubeError as err:
            log.warning("outdatedVirtualMachineInstanceWorkloads: %s", err)

    def _create_migration(self, vmi: JSON, generate_name: str, annotations: JSON, priority: str, message: str,
                          failure: str, component: str) -> None:
        namespace = vmi["metadata"]["namespace"]
        body = {"apiVersion": API, "kind": "VirtualMachineInstanceMigration",
                "metadata": {"generateName": generate_name, "annotations": annotations},
                "spec": {"vmiName": vmi["metadata"]["name"], "priority": priority}}
        try:
            created = self.kube.create(object_path(API, PLURAL, namespace=namespace), body)
            self._event({**vmi, "kind": "VirtualMachineInstance"}, "Normal",
                        "SuccessfulCreate", message % created["metadata"]["name"], component)
        except KubeError as err:
            self._event({**vmi, "kind": "VirtualMachineInstance"}, "Warning", "FailedCreate", failure % err, component)

    # -- evacuation.go ---------------------------------------------------------------------------

    def reconcile_node(self, _namespace: str, name: str) -> Optional[float]:
        node = self.nodes.get("", name)
        if node is None:
            return None
        config = self._config()
        key = migration_config(config)["nodeDrainTaintKey"]
        on_node = [v for v in self.vmis.list() if (v.get("status") or {}).get("nodeName") == name]
        # vmisToMigrate: every VMI on a node with the drain taint (effect NoSchedule), else the VMIs
        # virt-api's pod eviction admitter marked (getMarkedForEvictionVMIs: status.evacuationNodeName
        # is their node, and they are not migrating).
        if not any(t.get("key") == key and t.get("effect") == "NoSchedule"
                   for t in (node.get("spec") or {}).get("taints") or []):
            on_node = [v for v in on_node if (v.get("status") or {}).get("evacuationNodeName") == name
                       and not is_migrating(v)]
        if not on_node:
            return None
        busy = {(m["metadata"]["namespace"], m["spec"].get("vmiName")) for m in self._unfinished()}
        waiting = False
        for vmi in on_node:
            # filterRunningNonMigratingVMIs
            if phase(vmi) in ("Succeeded", "Failed") or vmi["metadata"].get("deletionTimestamp"):
                continue
            if not migratable_on_eviction(vmi, config):
                continue
            if not is_live_migratable(vmi):
                waiting = True
                continue
            if (vmi["metadata"]["namespace"], vmi["metadata"]["name"]) in busy:
                waiting = True
                continue
            # evacuation.go migrateVMIs
            self._create_migration(vmi, "kubevirt-evacuation-", {EVACUATION_ANNOTATION: name},
                                   PRIORITY_SYSTEM_CRITICAL, "Created Migration %s", "Error creating a Migration: %s",
                                   "evacuation-controller")
            waiting = True
        # The VMIs still on the node are looked at again (evacuation.go enqueues on VMI and migration changes).
        return 1.0 if waiting else None
