"""The Velero stand-in: the default BackupStorageLocation, backups in Velero's layout with the kubevirt-velero-plugin's
item actions, restores (also into a mapped namespace) and DownloadRequests."""

import gzip
import io
import json
import tarfile
import time
import urllib.request
import uuid

import pytest

from tests.lab.kube import object_path
from tests.lab.velero.server import ANN_POPULATED_FOR, ANN_PRE_POPULATED, parse_time

from .helpers import vm_manifest, vm_path

VELERO = "velero"


def velero_path(plural: str, name: str = "") -> str:
    return object_path("velero.io/v1", plural, name, VELERO)


def vm_with_dv(name: str, namespace: str, run_strategy: str) -> dict:
    vm = vm_manifest(name, namespace, run_strategy)
    vm["spec"]["dataVolumeTemplates"] = [{"metadata": {"name": f"{name}-root"}, "spec": {
        "source": {"blank": {}}, "storage": {"resources": {"requests": {"storage": "1Gi"}}}}}]
    spec = vm["spec"]["template"]["spec"]
    spec["domain"]["devices"]["disks"] = [{"name": "root", "disk": {"bus": "virtio"}}]
    spec["volumes"] = [{"name": "root", "dataVolume": {"name": f"{name}-root"}}]
    return vm


def finished(obj):
    return obj is not None and (obj.get("status") or {}).get("phase") in (
        "Completed", "PartiallyFailed", "Failed", "FailedValidation")


@pytest.fixture
def vms(admin, namespace, wait):
    """A running and a stopped VM, each with a populated DataVolume."""
    for name, strategy in (("web", "Always"), ("db", "Halted")):
        admin.create(vm_path(namespace), vm_with_dv(name, namespace, strategy))
    for name in ("web", "db"):
        wait.until(object_path("cdi.kubevirt.io/v1beta1", "datavolumes", f"{name}-root", namespace),
                   lambda dv: dv is not None and (dv.get("status") or {}).get("phase") == "Succeeded", 60)
    wait.printable(namespace, "web", "Running", 60)
    return namespace


def create_backup(admin, wait, spec: dict) -> dict:
    name = f"b-{uuid.uuid4().hex[:8]}"
    admin.create(velero_path("backups"), {"apiVersion": "velero.io/v1", "kind": "Backup",
                                          "metadata": {"name": name, "namespace": VELERO}, "spec": spec})
    return wait.until(velero_path("backups", name), finished, 60, f"backup {name}")


def download(admin, wait, kind: str, name: str) -> bytes:
    request = f"{name}-{uuid.uuid4().hex[:6]}"
    admin.create(velero_path("downloadrequests"), {
        "apiVersion": "velero.io/v1", "kind": "DownloadRequest", "metadata": {"name": request, "namespace": VELERO},
        "spec": {"target": {"kind": kind, "name": name}}})
    processed = wait.until(velero_path("downloadrequests", request),
                           lambda r: (r.get("status") or {}).get("phase") == "Processed", 30)
    with urllib.request.urlopen(processed["status"]["downloadURL"], timeout=30) as resp:  # noqa: S310 - lab URL
        return resp.read()


def test_default_location_is_the_one_velero_install_makes_and_available(admin, wait):
    location = wait.until(velero_path("backupstoragelocations", "default"),
                          lambda bsl: (bsl.get("status") or {}).get("phase") == "Available", 90)
    assert location["spec"]["default"] is True
    assert location["spec"]["provider"] == "aws"
    assert location["spec"]["objectStorage"] == {"bucket": "velero"}
    assert location["status"]["lastValidationTime"]


def test_backup_of_a_namespace_holds_the_vms_with_their_datavolumes_in_velero_layout(admin, wait, vms):
    backup = create_backup(admin, wait, {"includedNamespaces": [vms]})
    assert backup["status"]["phase"] == "Completed", backup["status"]
    assert backup["metadata"]["labels"]["velero.io/storage-location"] == "default"
    assert backup["status"]["formatVersion"] == "1.1.0" and backup["status"]["expiration"]
    progress = backup["status"]["progress"]
    assert progress["itemsBackedUp"] == progress["totalItems"] > 0
    name = backup["metadata"]["name"]
    listing = json.loads(gzip.decompress(download(admin, wait, "BackupResourceList", name)))
    assert listing["kubevirt.io/v1/VirtualMachine"] == [f"{vms}/db", f"{vms}/web"]
    assert listing["cdi.kubevirt.io/v1beta1/DataVolume"] == [f"{vms}/db-root", f"{vms}/web-root"]
    assert listing["v1/PersistentVolumeClaim"] == [f"{vms}/db-root", f"{vms}/web-root"]
    assert len(listing["v1/PersistentVolume"]) == 2  # PVCAction: a bound claim brings its volume
    assert listing["kubevirt.io/v1/VirtualMachineInstance"] == [f"{vms}/web"]  # the running VM's
    with tarfile.open(fileobj=io.BytesIO(download(admin, wait, "BackupContents", name)), mode="r:gz") as tar:
        names = tar.getnames()
        dv = json.loads(tar.extractfile(f"resources/datavolumes.cdi.kubevirt.io/namespaces/{vms}/web-root.json").read())
        pvc = json.loads(tar.extractfile(f"resources/persistentvolumeclaims/namespaces/{vms}/web-root.json").read())
        vmi = json.loads(tar.extractfile(f"resources/virtualmachineinstances.kubevirt.io/namespaces/{vms}/web.json").read())
    assert "metadata/version" in names
    assert f"resources/virtualmachines.kubevirt.io/v1-preferredversion/namespaces/{vms}/web.json" in names
    assert dv["metadata"]["annotations"][ANN_PRE_POPULATED] == "web-root"  # dv_backup_item_action.go
    assert pvc["metadata"]["annotations"][ANN_POPULATED_FOR] == "web-root"
    assert pvc["metadata"]["labels"]["velero.kubevirt.io/pvc-uid"] == pvc["metadata"]["uid"]
    assert vmi["metadata"]["annotations"]["cdi.kubevirt.io/velero.isOwned"] == "true"


def test_restore_into_a_mapped_namespace_brings_vms_back_with_populated_datavolumes(admin, wait, vms):
    backup = create_backup(admin, wait, {"includedNamespaces": [vms]})
    target = f"{vms[:40]}-copy"
    name = f"r-{uuid.uuid4().hex[:8]}"
    admin.create(velero_path("restores"), {"apiVersion": "velero.io/v1", "kind": "Restore",
                                           "metadata": {"name": name, "namespace": VELERO},
                                           "spec": {"backupName": backup["metadata"]["name"],
                                                    "namespaceMapping": {vms: target}}})
    try:
        restore = wait.until(velero_path("restores", name), finished, 60, f"restore {name}")
        assert restore["status"]["phase"] == "Completed", restore["status"]
        assert restore["status"]["errors"] == 0
        for vm in ("web", "db"):
            dv = wait.until(object_path("cdi.kubevirt.io/v1beta1", "datavolumes", f"{vm}-root", target),
                            lambda d: d is not None and (d.get("status") or {}).get("phase") == "Succeeded", 60)
            assert dv["metadata"]["labels"]["velero.io/restore-name"] == name
            # CDI adopts the claim Velero restored without ownerReferences (controller-base.go validatePVC)
            pvc = wait.until(object_path("v1", "persistentvolumeclaims", f"{vm}-root", target), lambda p: any(
                r.get("controller") and r["uid"] == dv["metadata"]["uid"] and r["kind"] == "DataVolume"
                for r in p["metadata"].get("ownerReferences") or []), 30, f"claim {vm}-root owned by its DataVolume")
            assert "velero.kubevirt.io/pvc-uid" not in pvc["metadata"].get("labels", {})
        wait.printable(target, "web", "Running", 60)
        wait.printable(target, "db", "Stopped", 60)
        results = json.loads(gzip.decompress(download(admin, wait, "RestoreResults", name)))
        # restore.go compares whole objects: the namespace's kube-root-ca.crt, made by the cluster as soon as the
        # namespace is, differs from the backed-up one (managedFields, ...) and is warned about, as on a real cluster
        assert results["errors"] == {}
        assert results["warnings"].get("namespaces", {}).get(target, []) in ([], [
            'could not restore, ConfigMap "kube-root-ca.crt" already exists. Warning: the in-cluster version is '
            'different than the backed-up version'])
    finally:
        admin.delete(object_path("v1", "namespaces", target))


def test_backup_naming_a_missing_location_fails_validation(admin, wait):
    backup = create_backup(admin, wait, {"storageLocation": "nowhere"})
    assert backup["status"]["phase"] == "FailedValidation"
    assert backup["status"]["validationErrors"] == [
        'error getting backup storage location: backupstoragelocations.velero.io "nowhere" not found']


def test_a_location_whose_bucket_is_missing_is_unavailable_and_refuses_backups(admin, wait):
    name = f"missing-{uuid.uuid4().hex[:6]}"
    admin.create(velero_path("backupstoragelocations"), {
        "apiVersion": "velero.io/v1", "kind": "BackupStorageLocation", "metadata": {"name": name, "namespace": VELERO},
        "spec": {"provider": "aws", "objectStorage": {"bucket": name}, "config": {"region": "minio"}}})
    try:
        location = wait.until(velero_path("backupstoragelocations", name),
                              lambda bsl: (bsl.get("status") or {}).get("phase") == "Unavailable", 30)
        assert location["status"]["message"].startswith(f'BackupStorageLocation "{name}" is unavailable: ')
        assert "NoSuchBucket" in location["status"]["message"]
        backup = create_backup(admin, wait, {"storageLocation": name})
        assert backup["status"]["phase"] == "FailedValidation"
        assert backup["status"]["validationErrors"] == [
            f"backup can't be created because BackupStorageLocation {name} is in Unavailable status."]
    finally:
        admin.delete(velero_path("backupstoragelocations", name))


def test_restore_over_a_changed_vm_warns_or_updates_by_existing_resource_policy(admin, wait, vms):
    backup = create_backup(admin, wait, {"includedNamespaces": [vms]})
    admin.merge_patch(vm_path(vms, "db"), {"spec": {"template": {"spec": {"domain": {"memory": {"guest": "256Mi"}}}}}})
    for policy, expected_memory in (("none", "256Mi"), ("update", "128Mi")):
        name = f"r-{policy}-{uuid.uuid4().hex[:6]}"
        admin.create(velero_path("restores"), {"apiVersion": "velero.io/v1", "kind": "Restore",
                                               "metadata": {"name": name, "namespace": VELERO},
                                               "spec": {"backupName": backup["metadata"]["name"],
                                                        "includedResources": ["virtualmachines"],
                                                        "existingResourcePolicy": policy}})
        restore = wait.until(velero_path("restores", name), finished, 60, f"restore {name}")
        assert restore["status"]["phase"] == "Completed", restore["status"]
        assert "nodes" in restore["spec"]["excludedResources"]  # validateAndComplete appends the non-restorable
        memory = admin.get(vm_path(vms, "db"))["spec"]["template"]["spec"]["domain"]["memory"]["guest"]
        assert memory == expected_memory, policy
        results = json.loads(gzip.decompress(download(admin, wait, "RestoreResults", name)))
        if policy == "none":
            assert 'could not restore, VirtualMachine "db" already exists. Warning: the in-cluster version is ' \
                'different than the backed-up version' in results["warnings"]["namespaces"][vms]
        else:
            listing = json.loads(gzip.decompress(download(admin, wait, "RestoreResourceList", name)))
            assert f"{vms}/db(updated)" in listing["kubevirt.io/v1/VirtualMachine"]


def test_an_expired_backup_is_deleted_with_its_files_and_restores(admin, wait, lab):
    backup = create_backup(admin, wait, {"includedNamespaces": ["default"], "ttl": "3s"})
    name = backup["metadata"]["name"]
    restore = f"r-{uuid.uuid4().hex[:6]}"
    admin.create(velero_path("restores"), {"apiVersion": "velero.io/v1", "kind": "Restore",
                                           "metadata": {"name": restore, "namespace": VELERO},
                                           "spec": {"backupName": name, "includedResources": ["configmaps"]}})
    wait.until(velero_path("restores", restore), finished, 30)
    # gc_controller.go: a DeleteBackupRequest once expired; backup_deletion_controller.go deletes everything
    wait.gone(velero_path("backups", name), timeout=30)
    wait.gone(velero_path("restores", restore), timeout=10)
    store = lab.dir / "velero-objects" / "velero"
    assert not list((store / "backups" / name).glob("*")) and not list((store / "restores" / restore).glob("*"))
    # after a clean deletion the request is marked Processed and then every request for the backup is deleted
    # (backup_deletion_controller.go Reconcile, DeleteAllOf), both after the backup object itself is gone
    requests = f"{velero_path('deletebackuprequests')}?labelSelector=velero.io/backup-name={name}"
    wait.until(requests, lambda listed: listed["items"] == [], 10, f"the DeleteBackupRequests of {name} to be deleted")


def test_a_deletion_request_for_a_missing_backup_is_processed_with_the_error(admin, wait):
    name = f"d-{uuid.uuid4().hex[:6]}"
    admin.create(velero_path("deletebackuprequests"), {
        "apiVersion": "velero.io/v1", "kind": "DeleteBackupRequest", "metadata": {"name": name, "namespace": VELERO},
        "spec": {"backupName": "ghost"}})
    request = wait.until(velero_path("deletebackuprequests", name),
                         lambda r: (r.get("status") or {}).get("phase") == "Processed", 30)
    assert request["status"]["errors"] == ["backup not found"]
    admin.delete(velero_path("deletebackuprequests", name))


def test_backups_are_synced_from_the_store_and_orphans_removed(admin, wait, lab):
    name = f"sync-{uuid.uuid4().hex[:6]}"
    (lab.dir / "velero-objects" / name).mkdir(parents=True)  # a bucket of its own (`mc mb`): the default location's
    # bucket has no prefix, so another location's prefix in it would be an invalid top-level directory there
    admin.create(velero_path("backupstoragelocations"), {
        "apiVersion": "velero.io/v1", "kind": "BackupStorageLocation", "metadata": {"name": name, "namespace": VELERO},
        "spec": {"provider": "aws", "objectStorage": {"bucket": name, "prefix": "lab"}, "backupSyncPeriod": "1s",
                 "config": {"region": "minio"}}})
    try:
        wait.until(velero_path("backupstoragelocations", name),
                   lambda bsl: (bsl.get("status") or {}).get("phase") == "Available", 30)
        backup = create_backup(admin, wait, {"includedNamespaces": ["default"], "storageLocation": name})
        assert backup["status"]["phase"] == "Completed"
        backup_name = backup["metadata"]["name"]
        admin.delete(velero_path("backups", backup_name))  # the files stay in the store
        synced = wait.until(velero_path("backups", backup_name),
                            lambda b: b is not None and b["metadata"]["uid"] != backup["metadata"]["uid"], 30)
        assert synced["status"]["phase"] == "Completed"
        assert synced["metadata"]["labels"]["velero.io/storage-location"] == name
        for path in (lab.dir / "velero-objects" / name / "lab" / "backups" / backup_name).iterdir():
            path.unlink()  # gone from the store: the cluster's Completed backup is an orphan
        wait.gone(velero_path("backups", backup_name), timeout=30)
    finally:
        admin.delete(velero_path("backupstoragelocations", name))


def test_velero_writes_back_the_spec_it_prepared(admin, wait, vms):
    """backup_controller.go prepareBackupRequest: the VolumeSnapshot resources excluded, the ttl in Go's form, a zero
    ttl replaced by the server's default (720h), namespaces labelled exclude-from-backup appended to the excludes."""
    labelled = f"{vms[:40]}-nobackup"
    admin.create(object_path("v1", "namespaces"), {"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": labelled, "labels": {"velero.io/exclude-from-backup": "true"}}})
    try:
        backup = create_backup(admin, wait, {"includedNamespaces": [vms], "ttl": "0s",
                                             "includedResources": ["configmaps", "volumesnapshots.snapshot.storage.k8s.io"]})
        assert backup["status"]["phase"] == "Completed", backup["status"]
        spec = backup["spec"]
        assert spec["excludedResources"] == ["volumesnapshots.snapshot.storage.k8s.io",
                                             "volumesnapshotcontents.snapshot.storage.k8s.io"]
        assert spec["includedResources"] == ["configmaps"]
        assert spec["ttl"] == "720h0m0s" and labelled in spec["excludedNamespaces"]
        left = parse_time(backup["status"]["expiration"]) - time.time()
        assert 719 * 3600 < left <= 720 * 3600  # not expired at once
        assert create_backup(admin, wait, {"includedNamespaces": [vms], "ttl": "90m",
                                           "includedResources": ["configmaps"]})["spec"]["ttl"] == "1h30m0s"
        refused = create_backup(admin, wait, {"includedNamespaces": [vms, labelled]})
        assert refused["status"]["phase"] == "FailedValidation"
        assert refused["status"]["validationErrors"] == [
            f"Invalid included/excluded namespace lists: excludes list cannot contain an item in the includes list: "
            f"{labelled}"]
    finally:
        admin.delete(object_path("v1", "namespaces", labelled))


@pytest.mark.parametrize("spec,errors", [
    ({"includedNamespaces": ["web-?"]}, ['Invalid included/excluded namespace lists: invalid namespace "web-?": a '
                                         "lowercase RFC 1123 label must consist of lower case alphanumeric characters"]),
    ({"includedNamespaces": ["*", "default"]}, ["Invalid included/excluded namespace lists: includes list must either "
                                                "contain '*' only, or a non-empty list of items"]),
    ({"includedNamespaces": ["default"], "excludedResources": ["*"]},
     ["Invalid included/excluded resource lists: excludes list cannot contain '*'"]),
    ({"includedNamespaces": ["default"], "includedResources": ["pods"], "excludedResources": ["pods"]},
     ["Invalid included/excluded resource lists: excludes list cannot contain an item in the includes list: pods"]),
], ids=["question-mark", "star-with-others", "exclude-star", "resource-in-both"])
def test_include_exclude_lists_are_validated_as_velero_does(admin, wait, spec, errors):
    """pkg/util/collections/includes_excludes.go ValidateIncludesExcludes, ValidateNamespaceIncludesExcludes."""
    backup = create_backup(admin, wait, spec)
    assert backup["status"]["phase"] == "FailedValidation"
    for got, want in zip(backup["status"]["validationErrors"], errors):
        assert got.startswith(want), got
    assert len(backup["status"]["validationErrors"]) == len(errors)


def test_a_missing_included_namespace_is_an_error_of_the_backup(admin, wait, vms):
    """item_collector.go collectNamespaces (when namespaces are among the resources): a namespace named in
    includedNamespaces that does not exist."""
    backup = create_backup(admin, wait, {"includedNamespaces": [vms, "ghost-namespace"],
                                         "includedResources": ["configmaps", "namespaces"]})
    assert backup["status"]["phase"] == "PartiallyFailed" and backup["status"]["errors"] == 1
    results = json.loads(gzip.decompress(download(admin, wait, "BackupResults", backup["metadata"]["name"])))
    assert results["errors"]["velero"] == [
        "fail to get the namespace ghost-namespace specified in backup.Spec.IncludedNamespaces"]


def test_additional_items_pass_the_backups_filters(admin, wait, vms):
    """item_backupper.go itemInclusionChecks: a claim's volume (PVCAction's additional item) is left out when
    includeClusterResources is false, backed up when it is unset (GlobalIncludesExcludes.ShouldExclude)."""
    left_out = create_backup(admin, wait, {"includedNamespaces": [vms], "includeClusterResources": False})
    listing = json.loads(gzip.decompress(download(admin, wait, "BackupResourceList", left_out["metadata"]["name"])))
    assert "v1/PersistentVolume" not in listing
    assert listing["v1/PersistentVolumeClaim"] == [f"{vms}/db-root", f"{vms}/web-root"]
    kept = create_backup(admin, wait, {"includedNamespaces": [vms]})
    listing = json.loads(gzip.decompress(download(admin, wait, "BackupResourceList", kept["metadata"]["name"])))
    assert len(listing["v1/PersistentVolume"]) == 2
    no_dvs = create_backup(admin, wait, {"includedNamespaces": [vms], "excludedResources": ["datavolumes"]})
    listing = json.loads(gzip.decompress(download(admin, wait, "BackupResourceList", no_dvs["metadata"]["name"])))
    assert "cdi.kubevirt.io/v1beta1/DataVolume" not in listing  # the VM's additional DataVolumes left out


def test_a_vm_whose_claim_is_labelled_excluded_fails_and_is_still_listed(admin, wait, namespace):
    """kubevirt-velero-plugin util.go RestorePossible (IsPVCExcludedByLabel): the VM action fails; item_backupper.go
    records the VM before its actions run, so it is in the resource list but not in the tarball."""
    admin.create(object_path("v1", "persistentvolumeclaims", namespace=namespace), {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data", "labels": {"velero.io/exclude-from-backup": "true"}},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
    vm = vm_manifest("app", namespace, "Halted")
    vm["spec"]["template"]["spec"]["domain"]["devices"]["disks"] = [{"name": "data", "disk": {"bus": "virtio"}}]
    vm["spec"]["template"]["spec"]["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]
    admin.create(vm_path(namespace), vm)
    backup = create_backup(admin, wait, {"includedNamespaces": [namespace]})
    assert backup["status"]["phase"] == "PartiallyFailed"
    name = backup["metadata"]["name"]
    results = json.loads(gzip.decompress(download(admin, wait, "BackupResults", name)))
    assert results["errors"]["namespaces"][namespace] == [
        f"error executing custom action (groupResource=virtualmachines.kubevirt.io, namespace={namespace}, "
        f"name=app): VM would not be restored correctly"]
    listing = json.loads(gzip.decompress(download(admin, wait, "BackupResourceList", name)))
    assert listing["kubevirt.io/v1/VirtualMachine"] == [f"{namespace}/app"]
    assert "v1/PersistentVolumeClaim" not in listing  # the labelled claim is left out
    with tarfile.open(fileobj=io.BytesIO(download(admin, wait, "BackupContents", name)), mode="r:gz") as tar:
        assert not [n for n in tar.getnames() if n.startswith("resources/virtualmachines.kubevirt.io/")]


def test_a_new_deletion_request_removes_the_older_ones_of_its_backup(admin, wait):
    """backup_deletion_controller.go deleteExistingDeletionRequests: one request per backup at a time (label
    velero.io/backup-name, label.GetValidName)."""
    backup = f"ghost-{uuid.uuid4().hex[:6]}"
    names = [f"{backup}-{n}" for n in ("a", "b")]
    for request_name in names:
        admin.create(velero_path("deletebackuprequests"), {
            "apiVersion": "velero.io/v1", "kind": "DeleteBackupRequest",
            "metadata": {"name": request_name, "namespace": VELERO, "labels": {"velero.io/backup-name": backup}},
            "spec": {"backupName": backup}})
        wait.until(velero_path("deletebackuprequests", request_name),
                   lambda r: r is None or (r.get("status") or {}).get("phase") == "Processed", 30)
    wait.gone(velero_path("deletebackuprequests", names[0]), timeout=30)
    assert admin.get(velero_path("deletebackuprequests", names[1]))["status"]["errors"] == ["backup not found"]
    admin.delete(velero_path("deletebackuprequests", names[1]))


def test_an_existing_object_equal_to_the_backed_up_one_is_restored_without_a_warning(admin, wait, namespace):
    """restore.go:1562: the whole objects are compared (metadata reset, restore labels copied): an untouched
    ConfigMap is equal, one changed since the backup (its data, managedFields) is warned about."""
    for name in ("same", "changed"):
        admin.create(object_path("v1", "configmaps", namespace=namespace), {
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}})
    backup = create_backup(admin, wait, {"includedNamespaces": [namespace], "includedResources": ["configmaps"]})
    admin.merge_patch(object_path("v1", "configmaps", "changed", namespace), {"data": {"k": "w"}})
    name = f"r-{uuid.uuid4().hex[:6]}"
    admin.create(velero_path("restores"), {"apiVersion": "velero.io/v1", "kind": "Restore",
                                           "metadata": {"name": name, "namespace": VELERO},
                                           "spec": {"backupName": backup["metadata"]["name"],
                                                    "includedResources": ["configmaps"]}})
    assert wait.until(velero_path("restores", name), finished, 60)["status"]["phase"] == "Completed"
    warnings = json.loads(gzip.decompress(download(admin, wait, "RestoreResults", name)))["warnings"]
    messages = warnings["namespaces"][namespace]
    assert 'could not restore, ConfigMap "changed" already exists. Warning: the in-cluster version is different ' \
        'than the backed-up version' in messages
    assert not [m for m in messages if '"same"' in m]
