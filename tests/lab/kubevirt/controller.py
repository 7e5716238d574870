"""Stand-in for virt-controller (VM -> VMI) and for the scheduler and virt-handler (VMI lifecycle).

The VM logic follows KubeVirt's `syncRunStrategy` and `setPrintableStatus`: the run strategy and the
state change requests written by virt-api decide whether a VMI should exist; the VM's status mirrors
the VMI. VMIs walk Pending -> Scheduling -> Scheduled -> Running on a lab Node, one step every
`step_seconds`, and get interface addresses; deleting a VMI takes one step before its finalizer goes.
"""

import logging
import time
from datetime import datetime, timezone
from typing import Dict, List, Optional, Tuple

from ..kube import JSON, Kube, KubeError, object_path
from . import handler
from . import live_update
from . import netstat
from . import vm_datavolumes
from .operator import Operators
from .runtime import Manager, without_nulls

log = logging.getLogger("standin.controller")

VMI_FINALIZER = "kubevirt.io/foregroundDeleteVirtualMachine"
SCHEDULABLE_LABEL = "kubevirt.io/schedulable"
KVM_RESOURCE = "devices.kubevirt.io/kvm"
FINAL_PHASES = ("Succeeded", "Failed")
STARTING_PHASES = ("", "Pending", "Scheduling", "Scheduled")
NEXT_PHASE = {"": "Pending", "Pending": "Scheduling", "Scheduling": "Scheduled", "Scheduled": "Running"}


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_strategy(vm: JSON) -> str:
    spec = vm.get("spec", {})
    if spec.get("runStrategy"):
        return spec["runStrategy"]
    # The deprecated boolean maps onto the two strategies it stood for.
    return "Always" if spec.get("running") else "Halted"


def _requests(vm: JSON) -> List[JSON]:
    return vm.get("status", {}).get("stateChangeRequests") or []


def has_start_request(vm: JSON) -> bool:
    reqs = _requests(vm)
    return bool(reqs) and reqs[0].get("action") == "Start"


def has_stop_request_for(vm: JSON, vmi: Optional[JSON]) -> bool:
    reqs = _requests(vm)
    return (vmi is not None and bool(reqs) and reqs[0].get("action") == "Stop"
            and reqs[0].get("uid") == vmi["metadata"]["uid"])


def phase(vmi: Optional[JSON]) -> str:
    return (vmi or {}).get("status", {}).get("phase", "")


def is_final(vmi: Optional[JSON]) -> bool:
    return phase(vmi) in FINAL_PHASES


def condition(obj: Optional[JSON], kind: str) -> Optional[JSON]:
    for cond in (obj or {}).get("status", {}).get("conditions") or []:
        if cond.get("type") == kind:
            return cond
    return None


def is_paused(vmi: Optional[JSON]) -> bool:
    cond = condition(vmi, "Paused")
    return bool(cond) and cond.get("status") == "True"


def start_expected(vm: JSON, vmi: Optional[JSON]) -> bool:
    """KubeVirt's isVMIStartExpected."""
    strategy = run_strategy(vm)
    if vm["metadata"].get("deletionTimestamp"):
        return False
    return {
        "Always": True,
        "Halted": False,
        "Manual": has_start_request(vm),
        "RerunOnFailure": vmi is None or phase(vmi) != "Succeeded",
        "Once": vmi is None,
    }.get(strategy, False)


def vm_status_patch(current: JSON, wanted: JSON) -> Optional[JSON]:
    """The merge patch that brings the stored status to `wanted`, or None when they already agree. created/ready
    are omitted by KubeVirt when false (omitempty); merge-patch null removes them. A null is what the stored status
    does not hold at all (a zero lastProbeTime is pruned too): vm.go updateStatus compares the typed statuses, where
    absent and zero are the same, and writes nothing when they are equal."""
    patch = {k: (v if v is not False else None) for k, v in wanted.items()}
    if all(without_nulls(current.get(k)) == without_nulls(v) for k, v in patch.items()):
        return None
    return patch


def printable_status(vm: JSON, vmi: Optional[JSON]) -> str:
    """KubeVirt's setPrintableStatus, for the states the stand-in produces (first match wins)."""
    if vm["metadata"].get("deletionTimestamp"):
        return "Terminating"
    if vmi is not None and not is_final(vmi) and (
            vmi["metadata"].get("deletionTimestamp") or has_stop_request_for(vm, vmi)
            or run_strategy(vm) == "Halted"):
        return "Stopping"
    # vm.go isVirtualMachineStatusMigrating: pkg/util/migrations IsMigrating (started, not ended).
    state = (vmi or {}).get("status", {}).get("migrationState") or {}
    if vmi is not None and state.get("startTimestamp") and not state.get("endTimestamp"):
        return "Migrating"
    if vmi is not None and phase(vmi) == "Running":
        return "Paused" if is_paused(vmi) else "Running"
    # DataVolumeError, Provisioning, WaitingForVolumeBinding (vm_datavolumes.py printable_status)
    storage_status = vm_datavolumes.printable_status(vm, vmi)
    if storage_status:
        return storage_status
    scheduled = condition(vmi, "PodScheduled")
    if scheduled and scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
        return "ErrorUnschedulable"
    if (vmi is None and start_expected(vm, vmi)) or (vmi is not None and phase(vmi) in STARTING_PHASES):
        return "Starting"
    if vmi is None or is_final(vmi):
        return "Stopped"
    return "Unknown"


class VirtController:
    def __init__(self, manager: Manager, kube: Kube, operators: Operators, step_seconds: float):
        self.kube = kube
        self.operators = operators
        self.step = step_seconds
        self.vms = manager.informer("vms", object_path("kubevirt.io/v1", "virtualmachines"), ("VM",))
        # A VMI change wakes both its own lifecycle and the VM that owns it (same namespace/name).
        self.vmis = manager.informer(
            "vmis", object_path("kubevirt.io/v1", "virtualmachineinstances"), ("VMI", "VM"))
        self.nodes = manager.informer("nodes", object_path("v1", "nodes"))
        self.phase_since: Dict[str, float] = {}  # VMI uid -> when it entered its current phase
        manager.reconciler("VM", self.reconcile_vm)
        manager.reconciler("VMI", self.reconcile_vmi)

    # -- VirtualMachine ---------------------------------------------------------------------------

    def reconcile_vm(self, namespace: str, name: str) -> Optional[float]:
        vm = self.vms.get(namespace, name)
        if vm is None:
            return None
        vmi = self.vmis.get(namespace, name)
        if vmi is not None and not self._owned_by(vmi, vm):
            vmi = None
        if not vm["metadata"].get("deletionTimestamp"):
            # vm.go sync: handleDataVolumes creates the templated DataVolumes and holds the start (vm_datavolumes.py)
            if vm_datavolumes.handle_data_volumes(vm, run_strategy(vm)):
                self._sync_run_strategy(vm, vmi)
            self._pop_done_requests(vm, vmi)
        # Hotplug, live update and RestartRequired (vm.go sync, from syncRestartRequired on): live_update.py
        again, sync_error = live_update.sync_vm(self, vm, vmi)
        self._update_vm_status(vm, vmi, sync_error)
        return again

    @staticmethod
    def _owned_by(vmi: JSON, vm: JSON) -> bool:
        refs = vmi["metadata"].get("ownerReferences") or []
        return any(ref.get("uid") == vm["metadata"]["uid"] for ref in refs)

    def _sync_run_strategy(self, vm: JSON, vmi: Optional[JSON]) -> None:
        strategy = run_strategy(vm)
        if strategy == "Always":
            if vmi is not None:
                if has_stop_request_for(vm, vmi) or is_final(vmi):
                    self._stop_vmi(vmi, vm)
            else:
                self._start_vmi(vm)
        elif strategy == "Manual":
            if vmi is not None:
                if has_stop_request_for(vm, vmi):
                    self._stop_vmi(vmi, vm)
            elif has_start_request(vm):
                self._start_vmi(vm)
        elif strategy == "Halted":
            if vmi is not None:
                self._stop_vmi(vmi, vm)
        elif strategy == "RerunOnFailure":
            if vmi is not None:
                if has_stop_request_for(vm, vmi) or is_final(vmi):
                    self._stop_vmi(vmi, vm)
                    if phase(vmi) == "Failed":
                        self._append_request(vm, {"action": "Start"})
            elif has_start_request(vm) or vm.get("status", {}).get("runStrategy") != strategy:
                # Coming from another strategy (or new) starts it; a stopped one waits for a start.
                self._start_vmi(vm)
        elif strategy == "Once":
            if vmi is None and vm.get("status", {}).get("runStrategy") != "Once":
                self._start_vmi(vm)
            elif is_final(vmi):
                # Once the single run is over the VM is Halted, as KubeVirt does.
                self.kube.merge_patch(self._vm_path(vm), {"spec": {"runStrategy": "Halted"}})

    @staticmethod
    def _vm_path(vm: JSON) -> str:
        meta = vm["metadata"]
        return object_path("kubevirt.io/v1", "virtualmachines", meta["name"], meta["namespace"])

    def _append_request(self, vm: JSON, request: JSON) -> None:
        self.kube.json_patch(self._vm_path(vm) + "/status", [
            {"op": "test", "path": "/status/stateChangeRequests",
             "value": vm.get("status", {}).get("stateChangeRequests")},
            {"op": "add", "path": "/status/stateChangeRequests", "value": _requests(vm) + [request]}])

    def _start_vmi(self, vm: JSON) -> None:
        meta = vm["metadata"]
        template = vm.get("spec", {}).get("template", {})
        tmeta = template.get("metadata", {})
        spec = dict(template.get("spec", {}))
        reqs = _requests(vm)
        if reqs and reqs[0].get("action") == "Start" and (reqs[0].get("data") or {}).get("paused") == "true":
            spec["startStrategy"] = "Paused"
        vmi = {
            "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
            "metadata": {
                "name": meta["name"], "namespace": meta["namespace"],
                "labels": {**(tmeta.get("labels") or {}), "kubevirt.io/created-by": meta["uid"]},
                "annotations": {**(tmeta.get("annotations") or {}),
                                "kubevirt.io/vm-generation": str(meta.get("generation", 1))},
                "finalizers": [VMI_FINALIZER],
                "ownerReferences": [{"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
                                     "name": meta["name"], "uid": meta["uid"],
                                     "controller": True, "blockOwnerDeletion": True}],
            },
            "spec": spec,
        }
        live_update.cleanup_restart_required(vm)  # vm.go startVMI
        try:
            self.kube.create(object_path("kubevirt.io/v1", "virtualmachineinstances", namespace=meta["namespace"]), vmi)
        except KubeError as err:
            if err.status != 409:  # already there: the watch has not shown it to us yet
                raise

    def _stop_vmi(self, vmi: JSON, vm: JSON) -> None:
        if vmi["metadata"].get("deletionTimestamp"):
            return
        meta = vmi["metadata"]
        self.kube.delete(object_path("kubevirt.io/v1", "virtualmachineinstances", meta["name"], meta["namespace"]))
        live_update.cleanup_restart_required(vm)  # vm.go stopVMI

    def _pop_done_requests(self, vm: JSON, vmi: Optional[JSON]) -> None:
        """Removes the first request once it is carried out, as virt-controller does."""
        reqs = _requests(vm)
        if not reqs:
            return
        first = reqs[0]
        done = ((first.get("action") == "Start" and vmi is not None and not is_final(vmi)
                 and not vmi["metadata"].get("deletionTimestamp"))
                or (first.get("action") == "Stop" and (vmi is None or vmi["metadata"]["uid"] != first.get("uid"))))
        if done:
            # KubeVirt omits an empty list, so the last request goes with its field.
            rest = ({"op": "replace", "path": "/status/stateChangeRequests", "value": reqs[1:]} if reqs[1:]
                    else {"op": "remove", "path": "/status/stateChangeRequests"})
            self.kube.json_patch(self._vm_path(vm) + "/status", [
                {"op": "test", "path": "/status/stateChangeRequests", "value": reqs}, rest])

    def _ready_condition(self, vm: JSON, vmi: Optional[JSON]) -> JSON:
        if vmi is None:
            status, reason, message = "False", "VMINotExists", "VMI does not exist"
        else:
            vmi_ready = condition(vmi, "Ready")
            if vmi_ready is None:
                status, reason, message = "False", "VMIConditionMissing", "VMI is missing the Ready condition"
            else:
                status, reason, message = vmi_ready["status"], vmi_ready.get("reason", ""), vmi_ready.get("message", "")
        cond = {"type": "Ready", "status": status, "reason": reason, "message": message}
        previous = condition(vm, "Ready")
        same = previous and all(previous.get(k) == cond[k] for k in ("status", "reason", "message"))
        stamp = previous.get("lastTransitionTime") if same else now()
        return {**cond, "lastProbeTime": None, "lastTransitionTime": stamp}

    @staticmethod
    def _update_condition(conditions: List[JSON], cond: JSON) -> None:
        """pkg/controller/conditions.go VirtualMachineConditionManager.UpdateCondition: replaced only when
        status or reason differ, appended when missing."""
        for index, current in enumerate(conditions):
            if current.get("type") == cond["type"]:
                if current.get("status") != cond.get("status") or (current.get("reason") or "") != (cond.get("reason") or ""):
                    conditions[index] = cond
                return
        conditions.append(cond)

    def _sync_conditions(self, vm: JSON, vmi: Optional[JSON], sync_error: Optional[Exception]) -> List[JSON]:
        """vm.go syncConditions: Ready from the VMI, Failure from the sync error (processFailureCondition),
        then every other VMI condition copied onto the VM and the VM's others removed; Ready, Failure and
        RestartRequired are not synced generically."""
        conditions = [dict(c) for c in (vm.get("status") or {}).get("conditions") or []]
        ready = self._ready_condition(vm, vmi)
        conditions = [ready if c.get("type") == "Ready" else c for c in conditions]
        if not any(c.get("type") == "Ready" for c in conditions):
            conditions.append(ready)
        if sync_error is None:
            conditions = [c for c in conditions if c.get("type") != "Failure"]
        else:
            self._update_condition(conditions, {"type": "Failure", "status": "True", "reason": sync_error.reason,
                                                "message": str(sync_error), "lastProbeTime": None,
                                                "lastTransitionTime": now()})
        if vmi is None:
            return conditions
        ignored = ("Ready", "Failure", "RestartRequired")
        vmi_types = set()
        for cond in (vmi.get("status") or {}).get("conditions") or []:
            if cond.get("type") in ignored:
                continue
            vmi_types.add(cond.get("type"))
            self._update_condition(conditions, {k: cond.get(k) for k in (
                "type", "status", "reason", "message", "lastProbeTime", "lastTransitionTime") if k in cond})
        return [c for c in conditions if c.get("type") in ignored or c.get("type") in vmi_types]

    def _update_vm_status(self, vm: JSON, vmi: Optional[JSON], sync_error: Optional[Exception] = None) -> None:
        printable = printable_status(vm, vmi)
        conditions = self._sync_conditions(vm, vmi, sync_error)
        ready_cond = condition({"status": {"conditions": conditions}}, "Ready") or {}
        ready = vmi is not None and phase(vmi) == "Running" and ready_cond.get("status") == "True"
        # vm.go syncGenerationInfo: observed is the VMI's vm-generation annotation, desired the VM's
        # generation; both stay as they were while there is no VMI (live_update.generation_info).
        observed, desired = live_update.generation_info(vm, vmi)
        wanted = {
            "printableStatus": printable,
            "ready": ready,
            "created": vmi is not None,
            "runStrategy": run_strategy(vm),
            "conditions": conditions,
            "observedGeneration": observed,
            "desiredGeneration": desired,
        }
        patch = vm_status_patch(vm.get("status") or {}, wanted)
        if patch is None:
            return
        self.kube.merge_patch(self._vm_path(vm) + "/status", {"status": patch})

    # -- VirtualMachineInstance (scheduler + virt-handler) ---------------------------------------

    @staticmethod
    def _vmi_path(vmi: JSON) -> str:
        meta = vmi["metadata"]
        return object_path("kubevirt.io/v1", "virtualmachineinstances", meta["name"], meta["namespace"])

    def _due(self, vmi: JSON) -> float:
        """Seconds until this VMI may take its next step."""
        key = vmi["metadata"]["uid"] + ":" + phase(vmi) + ":" + str(bool(vmi["metadata"].get("deletionTimestamp")))
        since = self.phase_since.setdefault(key, time.monotonic())
        return max(0.0, since + self.step - time.monotonic())

    def reconcile_vmi(self, namespace: str, name: str) -> Optional[float]:
        vmi = self.vmis.get(namespace, name)
        if vmi is None:
            return None
        wait = self._due(vmi)
        if wait > 0:
            return wait
        if vmi["metadata"].get("deletionTimestamp"):
            return self._finish_deletion(vmi)
        current = phase(vmi)
        if current == "Running" and not vmi["metadata"].get("ownerReferences"):
            return live_update.sync_vmi_alone(self, vmi)  # a VM's VMI: through reconcile_vm (live_update.py)
        if current in ("Running",) + FINAL_PHASES:
            return None
        if current == "Scheduling":
            return self._schedule(vmi)
        if current == "Scheduled":
            return self._run(vmi)
        if current == "Pending" and not vm_datavolumes.vmi_may_start(self.kube, vmi):
            return self.step  # lifecycle.go sync: no pod while a DataVolume populates (vm_datavolumes.py)
        self._patch_vmi(vmi, {"status": {"phase": NEXT_PHASE[current]}})
        return self.step

    def _patch_vmi(self, vmi: JSON, patch: JSON) -> None:
        # The VMI CRD has no status subresource: its status is written with the object.
        self.kube.merge_patch(self._vmi_path(vmi), patch)

    def _finish_deletion(self, vmi: JSON) -> Optional[float]:
        finalizers = vmi["metadata"].get("finalizers") or []
        if VMI_FINALIZER not in finalizers:
            return None
        self.kube.json_patch(self._vmi_path(vmi), [
            {"op": "test", "path": "/metadata/finalizers", "value": finalizers},
            {"op": "replace", "path": "/metadata/finalizers", "value": [f for f in finalizers if f != VMI_FINALIZER]},
        ])
        return None

    @staticmethod
    def _tolerated(taint: JSON, tolerations: List[JSON]) -> bool:
        """k8s.io/api core/v1 Toleration.ToleratesTaint."""
        for tol in tolerations:
            if tol.get("effect") and tol["effect"] != taint.get("effect"):
                continue
            if tol.get("operator") == "Exists" and (not tol.get("key") or tol["key"] == taint.get("key")):
                return True
            if tol.get("key") == taint.get("key") and tol.get("value", "") == taint.get("value", ""):
                return True
        return False

    def schedulable_nodes(self, vmi: JSON, added_selector: Optional[JSON] = None) -> Tuple[List[JSON], str]:
        """The nodes kube-scheduler would place virt-launcher's pod on, and its FitError message if none.

        The pod carries the VMI's nodeSelector plus kubevirt.io/schedulable=true (pkg/virt-controller/
        services/template.go RenderLaunchManifest) and a migration's addedNodeSelector (migration.go
        createTargetPod); kube-scheduler's NodeUnschedulable plugin skips cordoned nodes and
        TaintToleration skips NoSchedule/NoExecute taints the VMI does not tolerate.
        """
        # createTargetPod copies the addedNodeSelector first and the pod's own selector over it: on a shared
        # key the VMI's nodeSelector wins.
        selector = {**(added_selector or {}), **(vmi.get("spec", {}).get("nodeSelector") or {}),
                    SCHEDULABLE_LABEL: "true"}
        tolerations = vmi.get("spec", {}).get("tolerations") or []
        need_kvm = not self.operators.use_emulation()
        reasons: Dict[str, int] = {}
        nodes = []
        all_nodes = self.nodes.list()
        for node in all_nodes:
            labels = node["metadata"].get("labels", {})
            spec = node.get("spec") or {}
            taints = [t for t in spec.get("taints") or [] if t.get("effect") in ("NoSchedule", "NoExecute")]
            # node.kubernetes.io/* taints come from the node lifecycle controller, which sees no kubelet on
            # the lab's nodes (not-ready, unreachable); they say nothing about the lab and are left out.
            untolerated = [t for t in taints if not self._tolerated(t, tolerations)
                           and not t.get("key", "").startswith("node.kubernetes.io/")]
            if spec.get("unschedulable"):
                reason = "node(s) were unschedulable"
            elif untolerated:
                taint = untolerated[0]
                reason = f"node(s) had untolerated taint {{{taint.get('key')}: {taint.get('value', '')}}}"
            elif any(labels.get(k) != v for k, v in selector.items()):
                reason = "node(s) didn't match Pod's node affinity/selector"
            elif need_kvm and node.get("status", {}).get("allocatable", {}).get(KVM_RESOURCE, "0") == "0":
                # Lab nodes have no /dev/kvm: without useEmulation nothing can host a VM, as on a real cluster.
                reason = f"Insufficient {KVM_RESOURCE}"
            else:
                nodes.append(node)
                continue
            reasons[reason] = reasons.get(reason, 0) + 1
        # kube-scheduler FitError.Error: "0/N nodes are available: <count> <reason>, ..." sorted.
        histogram = sorted(f"{count} {reason}" for reason, count in reasons.items())
        message = f"0/{len(all_nodes)} nodes are available: {', '.join(histogram)}."
        return sorted(nodes, key=lambda n: n["metadata"]["name"]), message

    def _schedule(self, vmi: JSON) -> Optional[float]:
        nodes, reason = self.schedulable_nodes(vmi)
        if not nodes:
            if not condition(vmi, "PodScheduled") or condition(vmi, "PodScheduled").get("message") != reason:
                self._patch_vmi(vmi, {"status": {"conditions": [{
                    "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                    "message": reason, "lastProbeTime": None, "lastTransitionTime": now()}]}})
            return 2.0
        load = {n["metadata"]["name"]: 0 for n in nodes}
        for other in self.vmis.list():
            node_name = other.get("status", {}).get("nodeName")
            if node_name in load:
                load[node_name] += 1
        chosen = min(load, key=lambda n: (load[n], n))
        self._patch_vmi(vmi, {"status": {"phase": "Scheduled", "nodeName": chosen, "conditions": None},
                              "metadata": {"labels": {"kubevirt.io/nodeName": chosen}}})
        return self.step

    def _pvc(self, namespace: str, name: str) -> Optional[JSON]:
        return self.kube.get_or_none(object_path("v1", "persistentvolumeclaims", name, namespace))

    @staticmethod
    def _interfaces(vmi: JSON) -> List[JSON]:
        """The interfaces the domain has at start, before the guest agent reports (netstat.py)."""
        interfaces = vmi.get("spec", {}).get("domain", {}).get("devices", {}).get("interfaces") or []
        return [netstat.interface_status(vmi, iface, index, agent=False) for index, iface in enumerate(interfaces)]

    def _run(self, vmi: JSON) -> Optional[float]:
        stamp = now()
        # pkg/virt-handler/vm.go updateLiveMigrationConditions, from the first status report on.
        migratable, method = handler.live_migration_conditions(vmi, self._pvc, self.operators.kubevirt_config())
        conditions = [{"type": "Ready", "status": "True", "lastProbeTime": None, "lastTransitionTime": stamp}]
        conditions += migratable
        if vmi.get("spec", {}).get("startStrategy") == "Paused":
            conditions.append({"type": "Paused", "status": "True", "reason": "PausedByUser",
                               "message": "VMI was paused by user", "lastProbeTime": None,
                               "lastTransitionTime": stamp})
        self._patch_vmi(vmi, {"status": {
            "phase": "Running", "conditions": conditions, "interfaces": self._interfaces(vmi), "migrationMethod": method,
            "guestOSInfo": {}, "qosClass": "Burstable", "launcherContainerImageVersion": "lab-standin",
            "phaseTransitionTimestamps": [{"phase": "Running", "phaseTransitionTimestamp": stamp}],
        }})
        return None
