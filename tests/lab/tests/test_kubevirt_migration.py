"""Live migration on the lab's KubeVirt stand-in, against the real apiserver (KubeVirt v1.9.0's behaviour)."""

import time
import uuid

import pytest

from tests.lab import bootstrap
from tests.lab.kube import KubeError, object_path

from .helpers import subresource_path, vm_manifest, vm_path, vmi_path

KUBEVIRT = object_path("kubevirt.io/v1", "kubevirts", "kubevirt", bootstrap.KUBEVIRT_NAMESPACE)
ALL_PHASES = ["Pending", "Scheduling", "Scheduled", "PreparingTarget", "TargetReady", "Running", "Succeeded"]
POOL = "lab.palette.vmo/pool"


def vmim_path(namespace, name=""):
    return object_path("kubevirt.io/v1", "virtualmachineinstancemigrations", name, namespace)


def vmim(name, vmi_name, annotations=None, **spec):
    return {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstanceMigration",
            "metadata": {"name": name, "annotations": annotations or {}}, "spec": {"vmiName": vmi_name, **spec}}


def condition(obj, kind):
    return next((c for c in (obj or {}).get("status", {}).get("conditions") or [] if c["type"] == kind), None)


def phases(mig):
    return [p["phase"] for p in mig["status"].get("phaseTransitionTimestamps") or []]


def events(admin, namespace, name, *expected, until=None, timeout=30.0):
    """The object's events as (type, reason, message), once every `expected` one is among them: events are posted
    after the state they report, as client-go's recorder posts them."""
    deadline = time.monotonic() + timeout
    while True:
        listing = admin.get(object_path("v1", "events", namespace=namespace),
                            fieldSelector=f"involvedObject.name={name}")
        seen = [(e["type"], e["reason"], e["message"]) for e in listing["items"]]
        if (all(event in seen for event in expected) and (until is None or until(seen))) or time.monotonic() > deadline:
            return seen
        time.sleep(0.1)


def running_vm(admin, wait, namespace, name, mutate=None, memory="128Mi"):
    manifest = vm_manifest(name, namespace, memory=memory)
    if mutate:
        mutate(manifest)
    admin.create(vm_path(namespace), manifest)
    wait.printable(namespace, name, "Running")
    return wait.until(vmi_path(namespace, name), lambda v: condition(v, "LiveMigratable") is not None,
                      what=f"VMI {name} to report LiveMigratable")


def migrated(wait, namespace, name, timeout=60):
    return wait.until(vmim_path(namespace, name),
                      lambda m: m is not None and m.get("status", {}).get("phase") in ("Succeeded", "Failed")
                      and not m["metadata"].get("finalizers"),
                      timeout, f"migration {name} to finish")


def in_pool(pool, tolerate=True):
    """Pins a VM to the test's own nodes (and tolerates their taint, which keeps other VMs away)."""
    def mutate(manifest):
        spec = manifest["spec"]["template"]["spec"]
        spec["nodeSelector"] = {POOL: pool}
        if tolerate:
            spec["tolerations"] = [{"key": POOL, "operator": "Equal", "value": pool, "effect": "NoSchedule"}]
    return mutate


@pytest.fixture
def pool(admin, namespace):
    """Two nodes of the test's own: labelled and tainted with the pool, so only the test's VMs land there."""
    names = [f"lab-t-{uuid.uuid4().hex[:6]}-{i}" for i in (1, 2)]
    for index, name in enumerate(names, start=1):
        path = object_path("v1", "nodes", name)
        node = bootstrap._node(name)
        node["metadata"]["labels"][POOL] = namespace
        node["spec"] = {"taints": [{"key": POOL, "value": namespace, "effect": "NoSchedule"}]}
        admin.create(object_path("v1", "nodes"), node)
        admin.merge_patch(path + "/status", bootstrap._node_status(index))
    yield names
    for name in names:
        admin.delete(object_path("v1", "nodes", name))


def test_the_lab_kubevirt_cr_is_configured_as_the_vmo_pack_does(admin):
    spec = admin.get(KUBEVIRT)["spec"]
    assert spec["configuration"]["evictionStrategy"] == "LiveMigrate"
    assert spec["configuration"]["vmRolloutStrategy"] == "LiveUpdate"
    assert spec["workloadUpdateStrategy"]["workloadUpdateMethods"] == ["LiveMigrate"]


def test_the_operator_registers_the_migration_webhooks(admin):
    validator = admin.get(object_path("admissionregistration.k8s.io/v1", "validatingwebhookconfigurations",
                                      "virt-api-validator"))
    create = next(w for w in validator["webhooks"] if w["name"] == "migration-create-validator.kubevirt.io")
    assert create["rules"][0]["resources"] == ["virtualmachineinstancemigrations"]
    assert create["rules"][0]["operations"] == ["CREATE"]
    update = next(w for w in validator["webhooks"] if w["name"] == "migration-update-validator.kubevirt.io")
    assert update["rules"][0]["resources"] == ["virtualmachineinstancemigrations"]
    assert update["rules"][0]["operations"] == ["UPDATE"]
    assert update["clientConfig"]["service"]["path"] == "/migration-validate-update"
    mutator = admin.get(object_path("admissionregistration.k8s.io/v1", "mutatingwebhookconfigurations",
                                    "virt-api-mutator"))
    assert "migrations-mutator.kubevirt.io" in [w["name"] for w in mutator["webhooks"]]


def test_a_migration_walks_kubevirts_phases_and_moves_the_vmi(admin, namespace, wait):
    vmi = running_vm(admin, wait, namespace, "web")
    source = vmi["status"]["nodeName"]
    assert condition(vmi, "LiveMigratable")["status"] == "True"
    assert vmi["status"]["migrationMethod"] == "LiveMigration"
    source_ip = vmi["status"]["interfaces"][0]["ipAddress"]

    created = admin.create(vmim_path(namespace), vmim("move", "web"))
    # virt-api's migration mutator: the selector label and the finalizer.
    assert created["metadata"]["labels"]["kubevirt.io/vmi-name"] == "web"
    assert created["metadata"]["finalizers"] == ["kubevirt.io/migrationJobFinalize"]

    done = migrated(wait, namespace, "move")
    assert done["status"]["phase"] == "Succeeded"
    assert phases(done) == ALL_PHASES
    vmi = admin.get(vmi_path(namespace, "web"))
    state = vmi["status"]["migrationState"]
    assert state["migrationUid"] == done["metadata"]["uid"]
    assert state["sourceNode"] == source and state["targetNode"] != source
    assert state["completed"] is True and not state.get("failed")
    assert state["startTimestamp"] and state["endTimestamp"] and state["mode"] == "PreCopy"
    assert vmi["status"]["nodeName"] == state["targetNode"]
    assert vmi["metadata"]["labels"]["kubevirt.io/nodeName"] == state["targetNode"]
    # virt-handler's events on the VMI (source: migrating; target: prepared, migrated).
    expected = [("Normal", "Migrating", "VirtualMachineInstance is migrating."),
                ("Normal", "PreparingTarget", "VirtualMachineInstance Migration Target Prepared."),
                ("Normal", "Migrated", f"The VirtualMachineInstance migrated to node {state['targetNode']}.")]
    vmi_events = events(admin, namespace, "web", *expected)
    assert [event for event in expected if event not in vmi_events] == []
    # setupVMIRuntimeUser (no Root feature gate: non-root) and ackMigrationCompletion's transport.
    assert vmi["status"]["runtimeUser"] == 107
    assert vmi["metadata"]["annotations"]["kubevirt.io/nonroot"] == "true"
    assert vmi["status"]["migrationTransport"] == "Unix"
    # The pod network's address is the target pod's (netstat.go updateIfacesStatusFromPodCache).
    assert vmi["status"]["interfaces"][0]["podInterfaceName"] == "eth0"
    assert vmi["status"]["interfaces"][0]["ipAddress"] != source_ip
    assert vmi["status"]["interfaces"][0]["ipAddresses"] == [vmi["status"]["interfaces"][0]["ipAddress"]]
    # migration-target.go finalCleanup drops the target label once the migration ended.
    vmi = wait.until(vmi_path(namespace, "web"), lambda v: "kubevirt.io/migrationTargetNodeName" not in v["metadata"]["labels"],
                     what="the migrationTargetNodeName label to go")
    assert done["status"]["migrationState"]["targetNode"] == state["targetNode"]
    assert done["metadata"]["annotations"]["kubevirt.io/latest-observed-api-version"] == "v1"
    assert ("Normal", "SuccessfulMigration", "Source node reported migration succeeded") in events(
        admin, namespace, "move")
    # The VM stays Running throughout.
    assert admin.get(vm_path(namespace, "web"))["status"]["printableStatus"] == "Running"
    # The target detected the running domain before the end was acknowledged.
    assert state["targetNodeDomainDetected"] is True
    assert state["targetNodeDomainReadyTimestamp"] <= state["endTimestamp"]
    # A second migration starts from the pod the first one created (SetSourcePod: the VMI's current pod).
    admin.create(vmim_path(namespace), vmim("back", "web"))
    again = migrated(wait, namespace, "back")
    assert again["status"]["phase"] == "Succeeded"
    assert again["status"]["migrationState"]["sourcePod"] == state["targetPod"]
    assert again["status"]["migrationState"]["sourceNode"] == state["targetNode"]


@pytest.fixture
def policy(admin, namespace):
    path = object_path("migrations.kubevirt.io/v1alpha1", "migrationpolicies", f"{namespace}-policy")
    admin.create(object_path("migrations.kubevirt.io/v1alpha1", "migrationpolicies"), {
        "apiVersion": "migrations.kubevirt.io/v1alpha1", "kind": "MigrationPolicy",
        "metadata": {"name": f"{namespace}-policy"},
        "spec": {"allowAutoConverge": True, "bandwidthPerMigration": "64Mi", "completionTimeoutPerGiB": 300,
                 "selectors": {"virtualMachineInstanceSelector": {"lab.palette.vmo/tier": namespace}}}})
    yield f"{namespace}-policy"
    admin.delete(path)


def test_a_migrations_spec_and_its_selector_label_are_immutable(admin, namespace, wait):
    vmi = running_vm(admin, wait, namespace, "fixed")
    # Held in Scheduling (its only allowed target is the source node) so it stays in flight.
    admin.create(vmim_path(namespace), vmim("fixed-mig", "fixed", addedNodeSelector={
        "kubernetes.io/hostname": vmi["status"]["nodeName"]}))
    wait.until(vmim_path(namespace, "fixed-mig"), _phase_is("Scheduling"), what="Scheduling")
    path = vmim_path(namespace, "fixed-mig")
    with pytest.raises(KubeError) as spec:
        admin.merge_patch(path, {"spec": {"addedNodeSelector": {"kubernetes.io/hostname": "elsewhere"}}})
    assert spec.value.status == 422
    assert spec.value.body["message"].endswith("update of Migration object's spec is restricted")
    with pytest.raises(KubeError) as label:
        admin.merge_patch(path, {"metadata": {"labels": {"kubevirt.io/vmi-name": "other"}}})
    assert label.value.body["message"].endswith("selector label can't be modified on an in-flight migration")
    # Other metadata may change.
    admin.merge_patch(path, {"metadata": {"labels": {"lab.palette.vmo/note": "ok"}}})
    with pytest.raises(KubeError) as removed:
        admin.merge_patch(path, {"metadata": {"labels": {"kubevirt.io/vmi-name": None}}})
    assert removed.value.body["message"].endswith("selector label can't be modified on an in-flight migration")
    admin.delete(path)
    wait.gone(path)


def test_a_matching_migration_policy_shapes_the_migration(admin, namespace, wait, policy):
    def labelled(manifest):
        manifest["spec"]["template"]["metadata"]["labels"]["lab.palette.vmo/tier"] = namespace
    running_vm(admin, wait, namespace, "tiered", labelled)
    running_vm(admin, wait, namespace, "plain")
    for name in ("tiered", "plain"):
        admin.create(vmim_path(namespace), vmim(f"{name}-mig", name))
        assert migrated(wait, namespace, f"{name}-mig")["status"]["phase"] == "Succeeded"
    tiered = admin.get(vmi_path(namespace, "tiered"))["status"]["migrationState"]
    assert tiered["migrationPolicyName"] == policy
    config = tiered["migrationConfiguration"]
    assert (config["allowAutoConverge"], config["bandwidthPerMigration"], config["completionTimeoutPerGiB"]) == (
        True, "64Mi", 300)
    assert config["parallelMigrationsPerCluster"] == 5 and config["progressTimeout"] == 150
    plain = admin.get(vmi_path(namespace, "plain"))["status"]["migrationState"]
    assert "migrationPolicyName" not in plain
    assert plain["migrationConfiguration"]["allowAutoConverge"] is False
    assert plain["migrationConfiguration"]["completionTimeoutPerGiB"] == 150


def test_the_migrate_subresource_creates_a_migration_as_virt_api_does(admin, namespace, wait):
    discovery = admin.get("/apis/subresources.kubevirt.io/v1")
    assert "virtualmachines/migrate" in [r["name"] for r in discovery["resources"]]
    running_vm(admin, wait, namespace, "app")
    path = subresource_path(namespace, "virtualmachines", "app", "migrate")

    response = admin.request("PUT", path, {"dryRun": ["All"]}, expect_json=False)
    assert response.status_code == 202
    assert admin.get(vmim_path(namespace))["items"] == []

    target = next(n for n in bootstrap.NODES if n != admin.get(vmi_path(namespace, "app"))["status"]["nodeName"])
    selector = {"kubernetes.io/hostname": target}
    response = admin.request("PUT", path, {"addedNodeSelector": selector}, expect_json=False)
    assert response.status_code == 202
    [mig] = admin.get(vmim_path(namespace))["items"]
    assert mig["metadata"]["name"].startswith("kubevirt-migrate-vm-")
    assert mig["spec"] == {"vmiName": "app", "addedNodeSelector": selector}
    done = migrated(wait, namespace, mig["metadata"]["name"])
    assert done["status"]["phase"] == "Succeeded"
    assert admin.get(vmi_path(namespace, "app"))["status"]["nodeName"] == target

    with pytest.raises(KubeError) as missing:
        admin.request("PUT", subresource_path(namespace, "virtualmachines", "nothing", "migrate"), {})
    assert missing.value.status == 404
    assert missing.value.body["message"] == 'virtualmachine.kubevirt.io "nothing" not found'

    admin.create(vm_path(namespace), vm_manifest("off", namespace, run_strategy="Halted"))
    wait.printable(namespace, "off", "Stopped")
    with pytest.raises(KubeError) as stopped:
        admin.request("PUT", subresource_path(namespace, "virtualmachines", "off", "migrate"), {})
    assert stopped.value.status == 404
    assert stopped.value.body["message"] == 'virtualmachineinstance.kubevirt.io "off" not found'


def test_a_vmi_that_is_not_live_migratable_is_refused(admin, namespace, wait):
    def bridge(manifest):
        manifest["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"] = [{"name": "default", "bridge": {}}]
    vmi = running_vm(admin, wait, namespace, "bridged", bridge)
    live = condition(vmi, "LiveMigratable")
    message = "cannot migrate VMI which does not use masquerade or a migratable plugin to connect to the pod network"
    assert (live["status"], live["reason"], live["message"]) == ("False", "InterfaceNotLiveMigratable", message)
    storage = condition(vmi, "StorageLiveMigratable")
    assert (storage["status"], storage["reason"]) == ("False", "NotMigratable")
    assert storage["message"] == f"InterfaceNotLiveMigratable: {message}"

    denial = f"Cannot migrate VMI, Reason: InterfaceNotLiveMigratable, Message: {message}"
    with pytest.raises(KubeError) as refused:
        admin.create(vmim_path(namespace), vmim("nope", "bridged"))
    assert refused.value.status == 400
    assert refused.value.body["message"] == (
        f'admission webhook "migration-create-validator.kubevirt.io" denied the request: {denial}')
    with pytest.raises(KubeError) as via_api:
        admin.request("PUT", subresource_path(namespace, "virtualmachines", "bridged", "migrate"), {})
    assert via_api.value.status == 500
    assert denial in via_api.value.body["message"]
    assert admin.get(vmim_path(namespace))["items"] == []

    with pytest.raises(KubeError) as no_vmi:
        admin.create(vmim_path(namespace), vmim("ghost", "ghost"))
    assert no_vmi.value.status == 400
    assert no_vmi.value.body["message"].endswith(f'the VMI "{namespace}/ghost" does not exist')


def test_bridge_on_the_pod_network_migrates_with_kubevirts_annotation(admin, namespace, wait):
    def bridge(manifest):
        template = manifest["spec"]["template"]
        template["spec"]["domain"]["devices"]["interfaces"] = [{"name": "default", "bridge": {}}]
        template["metadata"]["annotations"] = {"kubevirt.io/allow-pod-bridge-network-live-migration": ""}
    vmi = running_vm(admin, wait, namespace, "allowed", bridge)
    assert condition(vmi, "LiveMigratable")["status"] == "True"


def _pvc(name, mode):
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
            "spec": {"accessModes": [mode], "resources": {"requests": {"storage": "1Gi"}}}}


def _with_claim(claim):
    def mutate(manifest):
        spec = manifest["spec"]["template"]["spec"]
        spec["domain"]["devices"]["disks"] = [{"name": "data", "disk": {"bus": "virtio"}}]
        spec["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]
    return mutate


def test_disks_decide_live_migratable_as_virt_handler_does(admin, namespace, wait):
    admin.create(object_path("v1", "persistentvolumeclaims", namespace=namespace), _pvc("rwo", "ReadWriteOnce"))
    vmi = running_vm(admin, wait, namespace, "local", _with_claim("rwo"))
    live = condition(vmi, "LiveMigratable")
    assert (live["status"], live["reason"]) == ("False", "DisksNotLiveMigratable")
    assert live["message"] == ("cannot migrate VMI: PVC rwo is not shared, live migration requires that all PVCs "
                               "must be shared (using ReadWriteMany access mode)")
    assert condition(vmi, "StorageLiveMigratable")["status"] == "True"  # storage migration could move it
    # The cluster's evictionStrategy is LiveMigrate: virt-handler warns that this VMI cannot follow it.
    assert ("Warning", "Migrated", "EvictionStrategy is set but vmi is not migratable; " + live["message"]) in events(
        admin, namespace, "local")
    with pytest.raises(KubeError) as refused:
        admin.create(vmim_path(namespace), vmim("nope", "local"))
    assert "Reason: DisksNotLiveMigratable" in refused.value.body["message"]

    # A shared (ReadWriteMany) claim does not stand in the way. (A VMI whose claim does not exist does not
    # start: virt-controller waits for the PVC, so virt-handler never judges it.)
    admin.create(object_path("v1", "persistentvolumeclaims", namespace=namespace), _pvc("shared", "ReadWriteMany"))
    vmi = running_vm(admin, wait, namespace, "later", _with_claim("shared"))
    vmi = wait.until(vmi_path(namespace, "later"), lambda v: condition(v, "LiveMigratable")["status"] == "True",
                     what="LiveMigratable to be True with a shared claim")
    assert vmi["status"]["migrationMethod"] == "LiveMigration"
    assert migrated(wait, namespace, admin.create(vmim_path(namespace), vmim("go", "later"))["metadata"]["name"]
                    )["status"]["phase"] == "Succeeded"


def test_a_migration_without_a_possible_target_fails_after_the_unschedulable_timeout(admin, namespace, wait):
    vmi = running_vm(admin, wait, namespace, "pinned")
    source = vmi["status"]["nodeName"]
    # Only the source matches: the target pod's anti-affinity keeps it off the source node.
    admin.create(vmim_path(namespace), vmim("stuck", "pinned", {
        "kubevirt.io/migrationUnschedulablePodTimeoutSeconds": "1"}, addedNodeSelector={
            "kubernetes.io/hostname": source}))
    done = migrated(wait, namespace, "stuck")
    assert done["status"]["phase"] == "Failed"
    assert phases(done) == ["Pending", "Scheduling", "Failed"]
    unschedulable = ("Warning", "migrationTargetPodUnschedulable",
                     f"Migration target pod for VMI [{namespace}/pinned] is currently unschedulable.")

    def deleted(seen):
        return any(reason == "SuccessfulDelete" and "unschedulable pod" in message and "timeout period exceeded" in message
                   for _kind, reason, message in seen)
    seen = events(admin, namespace, "stuck", unschedulable, until=deleted)
    assert unschedulable in seen and deleted(seen)
    assert ("Warning", "FailedMigration", "Migration target pod was removed during active migration.") in seen
    vmi = admin.get(vmi_path(namespace, "pinned"))
    assert vmi["status"]["nodeName"] == source and "migrationState" not in vmi["status"]


def test_only_the_newest_five_finished_migrations_of_a_vmi_are_kept(admin, namespace, wait):
    running_vm(admin, wait, namespace, "busy")
    for index in range(6):
        admin.create(vmim_path(namespace), vmim(f"m{index}", "busy"))
        migrated(wait, namespace, f"m{index}")
    wait.gone(vmim_path(namespace, "m0"))
    assert sorted(m["metadata"]["name"] for m in admin.get(vmim_path(namespace))["items"]) == [
        "m1", "m2", "m3", "m4", "m5"]


def test_an_automatic_migration_after_a_failed_one_backs_off(admin, namespace, wait):
    vmi = running_vm(admin, wait, namespace, "flaky")
    # Evacuation migrations: a workload-update one would be deleted by the workload updater at once, since
    # nothing asks this VMI for an update (workload-updater.go shouldAbortMigration).
    node = vmi["status"]["nodeName"]
    annotations = {"kubevirt.io/evacuationMigration": node, "kubevirt.io/migrationUnschedulablePodTimeoutSeconds": "1"}
    admin.create(vmim_path(namespace), vmim("first", "flaky", annotations, addedNodeSelector={
        "kubernetes.io/hostname": node}))
    assert migrated(wait, namespace, "first")["status"]["phase"] == "Failed"
    admin.create(vmim_path(namespace), vmim("second", "flaky", {"kubevirt.io/evacuationMigration": node}))

    def backed_off(_obj):
        return ("Warning", "MigrationBackoff", f"backoff migrating vmi {namespace}/flaky") in events(
            admin, namespace, "flaky")
    wait.until(vmi_path(namespace, "flaky"), backed_off, what="the MigrationBackoff event")
    assert admin.get(vmim_path(namespace, "second"))["status"]["phase"] == "Pending"


def test_cancelling_before_the_handoff_fails_the_migration_and_removes_it(admin, namespace, wait):
    vmi = running_vm(admin, wait, namespace, "held")
    admin.create(vmim_path(namespace), vmim("held-mig", "held", addedNodeSelector={
        "kubernetes.io/hostname": vmi["status"]["nodeName"]}))
    wait.until(vmim_path(namespace, "held-mig"), lambda m: m.get("status", {}).get("phase") == "Scheduling")
    # While it is in flight, a second migration of the same VMI is refused.
    with pytest.raises(KubeError) as busy:
        admin.create(vmim_path(namespace), vmim("second", "held"))
    uid = admin.get(vmim_path(namespace, "held-mig"))["metadata"]["uid"]
    assert busy.value.body["message"].endswith(
        f"in-flight migration detected. Active migration job ({uid}) is currently already in progress for VMI held.")

    admin.delete(vmim_path(namespace, "held-mig"))
    wait.gone(vmim_path(namespace, "held-mig"))
    canceled = ("Warning", "FailedMigration", "Migration failed due to being canceled")
    assert canceled in events(admin, namespace, "held-mig", canceled)
    vmi = admin.get(vmi_path(namespace, "held"))
    assert "migrationState" not in vmi["status"]


def test_cancelling_a_running_migration_aborts_it_and_the_vmi_stays(admin, namespace, wait):
    # 16 GiB to copy keeps the migration Running for a while.
    vmi = running_vm(admin, wait, namespace, "big", memory="16Gi")
    source = vmi["status"]["nodeName"]
    admin.create(vmim_path(namespace), vmim("big-mig", "big"))
    wait.until(vmim_path(namespace, "big-mig"), lambda m: m.get("status", {}).get("phase") == "Running", 30,
               "migration to run")
    wait.printable(namespace, "big", "Migrating")
    admin.delete(vmim_path(namespace, "big-mig"))
    vmi = wait.until(vmi_path(namespace, "big"),
                     lambda v: (v["status"].get("migrationState") or {}).get("abortStatus") == "Succeeded",
                     what="the abort to succeed")
    state = vmi["status"]["migrationState"]
    assert state["abortRequested"] is True and state["failed"] is True and state["completed"] is True
    assert state["failureReason"] == "Live migration has been aborted"
    assert vmi["status"]["nodeName"] == source
    wait.gone(vmim_path(namespace, "big-mig"))
    assert admin.get(vmi_path(namespace, "big"))["status"]["nodeName"] == source


STALE_HEARTBEAT = "2020-01-01T00:00:00Z"


def _heartbeat(admin, node, stamp):
    """virt-handler's kubevirt.io/heartbeat on a node: an old one means virt-handler there is gone."""
    admin.merge_patch(object_path("v1", "nodes", node), {"metadata": {"annotations": {"kubevirt.io/heartbeat": stamp}}})


def _held_vm(admin, wait, namespace, pool, name):
    """A VM on the pool's second node (the first is cordoned until it runs): its migration goes to the first."""
    admin.merge_patch(object_path("v1", "nodes", pool[0]), {"spec": {"unschedulable": True}})
    admin.create(vm_path(namespace), _pool_vm(name, namespace))
    wait.printable(namespace, name, "Running")
    wait.until(vmi_path(namespace, name), lambda v: (condition(v, "LiveMigratable") or {}).get("status") == "True",
               what=f"VMI {name} to be live migratable")
    admin.merge_patch(object_path("v1", "nodes", pool[0]), {"spec": {"unschedulable": False}})
    assert admin.get(vmi_path(namespace, name))["status"]["nodeName"] == pool[1]


def _phase_is(phase_name):
    return lambda m: (m or {}).get("status", {}).get("phase") == phase_name


def _abort_requested(mig):
    return condition(mig, "migrationAbortRequested") is not None


def _assert_aborted_on_source(admin, wait, namespace, name, mig_name, source):
    wait.gone(vmim_path(namespace, mig_name))
    vmi = admin.get(vmi_path(namespace, name))
    state = vmi["status"]["migrationState"]
    assert state["abortRequested"] is True and state["abortStatus"] == "Succeeded"
    assert state["failed"] is True and state["completed"] is True
    assert vmi["status"]["nodeName"] == source
    # migration-target.go finalCleanup: the target label goes once the migration ended.
    assert "kubevirt.io/migrationTargetNodeName" not in vmi["metadata"]["labels"]
    failed = ("Warning", "FailedMigration", "source node reported migration failed")
    assert failed in events(admin, namespace, mig_name, failed)
    # The VMI can migrate again: nothing is left in flight.
    admin.create(vmim_path(namespace), vmim(mig_name + "-again", name))
    assert migrated(wait, namespace, mig_name + "-again")["status"]["phase"] == "Succeeded"


def test_cancelling_in_preparing_target_aborts_once_the_migration_runs(admin, namespace, wait, pool):
    _held_vm(admin, wait, namespace, pool, "prep")
    # virt-handler on the target node is gone: nobody prepares the target, the migration waits in PreparingTarget.
    _heartbeat(admin, pool[0], STALE_HEARTBEAT)
    admin.create(vmim_path(namespace), vmim("prep-mig", "prep"))
    wait.until(vmim_path(namespace, "prep-mig"), _phase_is("PreparingTarget"), what="PreparingTarget")
    admin.delete(vmim_path(namespace, "prep-mig"))
    # Handed off already: no pre-hand-off cancel, the abort is requested and the migration goes on.
    held = wait.until(vmim_path(namespace, "prep-mig"), _abort_requested, what="the abort request")
    assert held["status"]["phase"] == "PreparingTarget"
    assert ("Warning", "FailedMigration", "Migration failed due to being canceled") not in events(
        admin, namespace, "prep-mig")
    _heartbeat(admin, pool[0], bootstrap_now())
    _assert_aborted_on_source(admin, wait, namespace, "prep", "prep-mig", pool[1])


def test_cancelling_in_target_ready_aborts_once_the_migration_runs(admin, namespace, wait, pool):
    _held_vm(admin, wait, namespace, pool, "ready")
    # Both virt-handlers are gone; the target's comes back, the source's (which starts the migration) does not.
    _heartbeat(admin, pool[0], STALE_HEARTBEAT)
    _heartbeat(admin, pool[1], STALE_HEARTBEAT)
    admin.create(vmim_path(namespace), vmim("ready-mig", "ready"))
    wait.until(vmim_path(namespace, "ready-mig"), _phase_is("PreparingTarget"), what="PreparingTarget")
    _heartbeat(admin, pool[0], bootstrap_now())
    wait.until(vmim_path(namespace, "ready-mig"), _phase_is("TargetReady"), what="TargetReady")
    admin.delete(vmim_path(namespace, "ready-mig"))
    held = wait.until(vmim_path(namespace, "ready-mig"), _abort_requested, what="the abort request")
    assert held["status"]["phase"] == "TargetReady"
    _heartbeat(admin, pool[1], bootstrap_now())
    _assert_aborted_on_source(admin, wait, namespace, "ready", "ready-mig", pool[1])


def test_cancelling_a_completed_running_migration_lets_it_succeed(admin, namespace, wait, pool):
    _held_vm(admin, wait, namespace, pool, "done")
    admin.create(vmim_path(namespace), vmim("done-mig", "done"))
    # Delete on the first sight of the VMI's completed migration (the VMIM may still be Running).
    wait.until(vmi_path(namespace, "done"), lambda v: (v["status"].get("migrationState") or {}).get("completed"),
               what="the migration to complete on the VMI")
    admin.delete(vmim_path(namespace, "done-mig"))
    wait.gone(vmim_path(namespace, "done-mig"))
    vmi = admin.get(vmi_path(namespace, "done"))
    state = vmi["status"]["migrationState"]
    assert state["completed"] is True and not state.get("failed") and not state.get("abortRequested")
    assert vmi["status"]["nodeName"] == pool[0]
    assert ("Normal", "SuccessfulMigration", "Source node reported migration succeeded") in events(
        admin, namespace, "done-mig")


def bootstrap_now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def test_outbound_migrations_per_node_are_limited_as_kubevirt_queues_them(admin, namespace, wait, pool):
    # The pool's first node is cordoned until the three VMs run, so all of them start on the second.
    admin.merge_patch(object_path("v1", "nodes", pool[0]), {"spec": {"unschedulable": True}})
    for name in ("q1", "q2", "q3"):
        running_vm(admin, wait, namespace, name, in_pool(namespace), memory="4Gi")
    assert {admin.get(vmi_path(namespace, n))["status"]["nodeName"] for n in ("q1", "q2", "q3")} == {pool[1]}
    admin.merge_patch(object_path("v1", "nodes", pool[0]), {"spec": {"unschedulable": False}})
    for name in ("q1", "q2", "q3"):
        admin.create(vmim_path(namespace), vmim(f"{name}-mig", name))

    def two_running_one_queued(_obj):
        current = [admin.get(vmim_path(namespace, f"{n}-mig")).get("status", {}).get("phase") for n in ("q1", "q2", "q3")]
        return current.count("Pending") == 1 and sum(p not in ("Pending", "Succeeded", "Failed", None)
                                                     for p in current) == 2
    wait.until(vmim_path(namespace, "q1-mig"), two_running_one_queued, 30,
               "two migrations out of the node and the third waiting in Pending")
    done = {}
    for name in ("q1", "q2", "q3"):
        done[name] = migrated(wait, namespace, f"{name}-mig")
        assert done[name]["status"]["phase"] == "Succeeded"
        assert admin.get(vmi_path(namespace, name))["status"]["nodeName"] == pool[0]

    def stamp(mig, phase):
        return next(p["phaseTransitionTimestamp"] for p in mig["status"]["phaseTransitionTimestamps"] if p["phase"] == phase)
    # The queued one left Pending only once one of the first two had finished.
    last = max(done.values(), key=lambda m: stamp(m, "Scheduling"))
    first_done = min(stamp(m, "Succeeded") for m in done.values() if m is not last)
    assert stamp(last, "Scheduling") >= first_done


def test_the_scheduler_honours_a_cordon(admin, namespace, wait, pool):
    for node in pool:
        admin.merge_patch(object_path("v1", "nodes", node), {"spec": {"unschedulable": True}})
    admin.create(vm_path(namespace), _pool_vm("fenced", namespace))
    vm = wait.printable(namespace, "fenced", "ErrorUnschedulable")
    scheduled = condition(admin.get(vmi_path(namespace, "fenced")), "PodScheduled")
    assert scheduled["reason"] == "Unschedulable" and "2 node(s) were unschedulable" in scheduled["message"]
    assert vm["status"]["printableStatus"] == "ErrorUnschedulable"
    admin.merge_patch(object_path("v1", "nodes", pool[1]), {"spec": {"unschedulable": False}})
    wait.printable(namespace, "fenced", "Running")
    assert admin.get(vmi_path(namespace, "fenced"))["status"]["nodeName"] == pool[1]

    # A migration has nowhere to go while the other node is cordoned.
    admin.create(vmim_path(namespace), vmim("fenced-mig", "fenced", {
        "kubevirt.io/migrationUnschedulablePodTimeoutSeconds": "1"}))
    assert migrated(wait, namespace, "fenced-mig")["status"]["phase"] == "Failed"


def _pool_vm(name, namespace, strategy=None, memory="128Mi"):
    manifest = vm_manifest(name, namespace, memory=memory)
    in_pool(namespace)(manifest)
    if strategy:
        manifest["spec"]["template"]["spec"]["evictionStrategy"] = strategy
    return manifest


def test_a_drain_taint_evacuates_the_vmis_that_live_migrate_on_eviction(admin, namespace, wait, pool):
    admin.merge_patch(object_path("v1", "nodes", pool[1]), {"spec": {"unschedulable": True}})
    admin.create(vm_path(namespace), _pool_vm("moves", namespace))
    admin.create(vm_path(namespace), _pool_vm("stays", namespace, strategy="None"))
    for name in ("moves", "stays"):
        wait.printable(namespace, name, "Running")
    admin.merge_patch(object_path("v1", "nodes", pool[1]), {"spec": {"unschedulable": False}})
    admin.merge_patch(object_path("v1", "nodes", pool[0]), {"spec": {"taints": [
        {"key": POOL, "value": namespace, "effect": "NoSchedule"},
        {"key": "kubevirt.io/drain", "value": "draining", "effect": "NoSchedule"}]}})

    def evacuated(_obj):
        return any(m["spec"]["vmiName"] == "moves" and m.get("status", {}).get("phase") == "Succeeded"
                   for m in admin.get(vmim_path(namespace))["items"])
    wait.until(vmim_path(namespace), evacuated, 30, "the evacuation migration of VM moves")
    migrations = admin.get(vmim_path(namespace))["items"]
    assert [m["spec"]["vmiName"] for m in migrations] == ["moves"]
    [mig] = migrations
    assert mig["metadata"]["name"].startswith("kubevirt-evacuation-")
    assert mig["metadata"]["annotations"]["kubevirt.io/evacuationMigration"] == pool[0]
    assert mig["spec"]["priority"] == "system-critical"
    assert admin.get(vmi_path(namespace, "moves"))["status"]["nodeName"] == pool[1]
    assert admin.get(vmi_path(namespace, "stays"))["status"]["nodeName"] == pool[0]


def test_a_vmi_marked_for_eviction_is_evacuated(admin, namespace, wait):
    vmi = running_vm(admin, wait, namespace, "evicted")
    source = vmi["status"]["nodeName"]
    # What virt-api's pod eviction admitter writes when the VMI's virt-launcher pod is evicted (a drain).
    admin.merge_patch(vmi_path(namespace, "evicted"), {"status": {"evacuationNodeName": source}})
    vmi = wait.until(vmi_path(namespace, "evicted"), lambda v: v["status"]["nodeName"] != source
                     and not v["status"].get("evacuationNodeName"), 30, "the VMI to leave its node")
    [mig] = admin.get(vmim_path(namespace))["items"]
    assert mig["metadata"]["annotations"]["kubevirt.io/evacuationMigration"] == source
    assert vmi["status"]["migrationState"]["migrationUid"] == mig["metadata"]["uid"]


def test_the_workload_updater_migrates_vmis_with_hotplug_changes(admin, namespace, wait):
    def cpu(manifest):
        manifest["spec"]["template"]["spec"]["domain"]["cpu"] = {
            "sockets": 1, "cores": 1, "threads": 1, "maxSockets": 4}
    running_vm(admin, wait, namespace, "grow", cpu)
    # A live CPU change on the VM: virt-controller puts it on the VMI with HotVCPUChange, the workload
    # updater migrates the VMI, and the target applies it.
    admin.merge_patch(vm_path(namespace, "grow"), {"spec": {"template": {"spec": {"domain": {"cpu": {"sockets": 2}}}}}})
    vmi = wait.until(vmi_path(namespace, "grow"),
                     lambda v: (v["status"].get("currentCPUTopology") or {}).get("sockets") == 2
                     and condition(v, "HotVCPUChange") is None, 30, "the CPU change to be applied by a migration")
    [mig] = admin.get(vmim_path(namespace))["items"]
    assert mig["metadata"]["name"].startswith("kubevirt-workload-update-")
    assert "kubevirt.io/workloadUpdateMigration" in mig["metadata"]["annotations"]
    assert mig["spec"]["priority"] == "user-triggered"
    assert migrated(wait, namespace, mig["metadata"]["name"])["status"]["phase"] == "Succeeded"
    assert vmi["status"]["currentCPUTopology"] == {"sockets": 2, "cores": 1, "threads": 1}
    assert vmi["status"]["migrationState"]["migrationUid"] == mig["metadata"]["uid"]
    # The workload updater's own recorder (workload-update-controller) reports the migration on the VMI.
    listing = admin.get(object_path("v1", "events", namespace=namespace), fieldSelector="involvedObject.name=grow")
    [created] = [e for e in listing["items"] if e["reason"] == "SuccessfulCreate"
                 and e["message"] == f"Created Migration {mig['metadata']['name']} for automated workload update"]
    assert created["source"]["component"] == "workload-update-controller"
    # Nothing is left to update: the KubeVirt CR counts no outdated workloads.
    wait.until(KUBEVIRT, lambda kv: kv["status"].get("outdatedVirtualMachineInstanceWorkloads") == 0,
               what="outdatedVirtualMachineInstanceWorkloads to be 0")


def test_a_memory_hotplug_is_applied_by_a_migration(admin, namespace, wait):
    def memory(manifest):
        manifest["spec"]["template"]["spec"]["domain"]["memory"] = {"guest": "1Gi", "maxGuest": "4Gi"}
    running_vm(admin, wait, namespace, "mem", memory)
    admin.merge_patch(vm_path(namespace, "mem"), {"spec": {"template": {"spec": {"domain": {"memory": {"guest": "2Gi"}}}}}})
    vmi = wait.until(vmi_path(namespace, "mem"),
                     lambda v: (v["status"].get("memory") or {}).get("guestCurrent") == "2Gi"
                     and condition(v, "HotMemoryChange") is None, 30, "the memory change to be applied by a migration")
    assert vmi["status"]["memory"]["guestRequested"] == "2Gi"
    [mig] = admin.get(vmim_path(namespace))["items"]
    assert migrated(wait, namespace, mig["metadata"]["name"])["status"]["phase"] == "Succeeded"


def test_the_guest_agent_connects_unless_the_guest_has_none(admin, namespace, wait):
    def cirros(manifest):
        spec = manifest["spec"]["template"]["spec"]
        spec["domain"]["devices"]["disks"] = [{"name": "root", "disk": {"bus": "virtio"}}]
        spec["volumes"] = [{"name": "root", "containerDisk": {
            "image": "quay.io/kubevirt/cirros-container-disk-demo:v1.9.0"}}]
    running_vm(admin, wait, namespace, "tiny", cirros)

    def fedora(manifest):
        spec = manifest["spec"]["template"]["spec"]
        spec["domain"]["devices"]["disks"] = [{"name": "root", "disk": {"bus": "virtio"}}]
        spec["volumes"] = [{"name": "root", "containerDisk": {"image": "quay.io/containerdisks/fedora:41"}}]
    running_vm(admin, wait, namespace, "full", fedora)
    vmi = wait.until(vmi_path(namespace, "full"), lambda v: condition(v, "AgentConnected") is not None,
                     what="the guest agent to connect")
    assert condition(vmi, "AgentConnected")["status"] == "True"
    assert vmi["status"]["guestOSInfo"]["id"] == "fedora"
    assert vmi["status"]["interfaces"][0]["infoSource"] == "domain, guest-agent"
    # CirrOS ships no guest agent: started first, it still has none once the later VM's agent is there.
    tiny = admin.get(vmi_path(namespace, "tiny"))
    assert condition(tiny, "AgentConnected") is None
    assert tiny["status"]["guestOSInfo"] == {}
    assert tiny["status"]["interfaces"][0]["infoSource"] == "domain"
