"""velero_backup's and velero_restore's decisions without a cluster: selectors, specs, item lists, results."""

import base64

import pytest

from ansible_collections.palette.vmo.plugins.module_utils.common.errors import ModuleFailure
from ansible_collections.palette.vmo.plugins.module_utils.velero import backup_runner, objects, restore_runner

BACKUP = dict(name="nightly", velero_namespace="velero", included_namespaces=None, vms=None, namespace=None,
              label_selector=None, included_resources=None, excluded_resources=None, include_cluster_resources=None,
              storage_location=None, ttl=None, snapshot_volumes=None, wait_timeout=600, concurrency=16)
RESTORE = dict(name="nightly-restore", backup="nightly", velero_namespace="velero", namespace_mapping=None,
               included_namespaces=None, included_resources=None, excluded_resources=None,
               existing_resource_policy=None, restore_pvs=None, vm_run_strategy=None, clear_mac_addresses=False,
               wait_timeout=600, concurrency=16)


@pytest.mark.parametrize("text,selector", [
    ("app=web", {"matchLabels": {"app": "web"}}),
    ("app==web,tier!=db", {"matchLabels": {"app": "web"},
                           "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}]}),
    ("tier in (web, cache),!legacy,backup", {"matchExpressions": [
        {"key": "tier", "operator": "In", "values": ["web", "cache"]},
        {"key": "legacy", "operator": "DoesNotExist"}, {"key": "backup", "operator": "Exists"}]}),
])
def test_label_selector_strings_become_label_selectors(text, selector):
    assert objects.parse_label_selector(text) == selector


@pytest.mark.parametrize("text", ["tier in (web", "app=web,", "", "!app=web", "a b"])
def test_unreadable_label_selectors_are_refused(text):
    with pytest.raises(ValueError):
        objects.parse_label_selector(text)


def test_spec_differences_ignore_what_velero_fills_in_and_appends():
    existing = {"includedNamespaces": ["vms"], "storageLocation": "default", "ttl": "720h0m0s",
                "excludedResources": list(objects.NON_RESTORABLE)}
    assert objects.spec_differences(existing, {"includedNamespaces": ["vms"], "storageLocation": None, "ttl": None,
                                               "excludedResources": None},
                                    defaulted=("storageLocation", "ttl"),
                                    added={"excludedResources": objects.NON_RESTORABLE}) == []
    assert objects.spec_differences(existing, {"includedNamespaces": ["vms", "db"], "ttl": "24h"}) == [
        'includedNamespaces: ["vms"], not ["vms", "db"]', 'ttl: "720h0m0s", not "24h"']
    assert objects.spec_differences({"namespaceMapping": {"a": "b"}}, {"namespaceMapping": None}) == [
        'namespaceMapping: {"a": "b"}, not null']


def test_resource_lists_become_items_with_the_restore_action():
    items = objects.items_of({"kubevirt.io/v1/VirtualMachine": ["vms/web"], "v1/PersistentVolume": ["pvc-1"],
                              "cdi.kubevirt.io/v1beta1/DataVolume": ["vms/web-root(created)"]})
    assert items == [
        {"api_version": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume", "namespace": "vms", "name": "web-root",
         "action": "created"},
        {"api_version": "kubevirt.io/v1", "kind": "VirtualMachine", "namespace": "vms", "name": "web"},
        {"api_version": "v1", "kind": "PersistentVolume", "namespace": None, "name": "pvc-1"}]


def test_results_become_lines_with_their_scope():
    lines = objects.messages_of({"warnings": {"velero": ["v"], "cluster": ["c"], "namespaces": {"vms": ["n"]}},
                                 "errors": {}})
    assert lines == {"warnings": ["velero: v", "cluster: c", "namespace vms: n"], "errors": []}


def test_chosen_vms_are_selected_by_the_backup_label_in_their_namespaces():
    request = backup_runner.parse_request(dict(BACKUP, namespace="vms", vms=["web", "db/pg", {"name": "cache"}]))
    assert request.vms == [("vms", "web"), ("db", "pg"), ("vms", "cache")]
    manifest = backup_runner.backup_manifest(request)
    assert manifest["spec"] == {"includedNamespaces": ["db", "vms"],
                                "labelSelector": {"matchLabels": {backup_runner.VM_LABEL: "nightly"}}}


def test_backup_input_problems_are_all_reported_at_once():
    with pytest.raises(ModuleFailure) as err:
        backup_runner.parse_request(dict(BACKUP, name="Bad_Name", ttl="3 days", label_selector="a in (b",
                                         vms=["web", "web"], namespace="vms"))
    assert err.value.errors == [
        "Backup velero/Bad_Name: name: 'Bad_Name' is not a valid name (lowercase letters, digits, '-' and '.')",
        "VM vms/web: name: is named more than once",
        "Backup velero/Bad_Name: ttl: '3 days' is not a duration (for example 720h, 90m or 1h30m)",
        "Backup velero/Bad_Name: label_selector: cannot read 'a in (b'"]
    assert err.value.result == {"changed": False}


def test_restore_labels_carry_the_plugin_options_and_mapping_problems_are_named():
    request = restore_runner.parse_request(dict(RESTORE, namespace_mapping={"vms": "vms-copy"}, vm_run_strategy="Halted",
                                                clear_mac_addresses=True))
    manifest = restore_runner.restore_manifest(request)
    assert manifest["metadata"]["labels"][restore_runner.RUN_STRATEGY_LABEL] == "Halted"
    assert manifest["metadata"]["labels"][restore_runner.CLEAR_MAC_LABEL] == "true"
    assert manifest["spec"] == {"backupName": "nightly", "namespaceMapping": {"vms": "vms-copy"}}
    with pytest.raises(ModuleFailure) as err:
        restore_runner.parse_request(dict(RESTORE, namespace_mapping={"a": "x", "b": "x", "c": "Bad_NS"}))
    assert err.value.errors == [
        "Restore velero/nightly-restore: namespace_mapping.b: 'x' is also the target of 'a'; one namespace per target",
        "Restore velero/nightly-restore: namespace_mapping.c: 'Bad_NS' is not a valid namespace name"]


class FakeClient(object):
    def __init__(self, objects_by_path):
        self.objects_by_path = objects_by_path

    def get(self, path):
        return self.objects_by_path[path]


def test_the_location_ca_cert_is_the_one_download_urls_are_verified_with():
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    client = FakeClient({objects.velero_path("backupstoragelocations", "velero", "minio"): {
        "spec": {"objectStorage": {"bucket": "velero", "caCert": base64.b64encode(pem.encode()).decode()}}},
        objects.velero_path("backupstoragelocations", "velero", "default"): {"spec": {"objectStorage": {}}}})
    assert objects.location_ca_cert(client, "velero", "minio") == pem
    assert objects.location_ca_cert(client, "velero", "default") is None
    assert objects.location_ca_cert(client, "velero", None) is None


def test_the_wait_timeout_names_the_backup_its_phase_and_progress():
    from ansible_collections.palette.vmo.plugins.module_utils.kube.wait import WaitTimeout

    from .kube_fakes import FakeCluster

    running = {"metadata": {"name": "nightly", "namespace": "velero"},
               "status": {"phase": "InProgress", "progress": {"totalItems": 40, "itemsBackedUp": 12}}}
    cluster = FakeCluster(objects={objects.velero_path("backups", "velero", "nightly"): running})
    with pytest.raises(WaitTimeout) as err:
        objects.wait_final(cluster, "backups", "velero", ["nightly"], 0.2, "the backup")
    assert "velero/nightly (waiting for the backup to finish (Completed, PartiallyFailed, Failed); last seen: " \
        "phase InProgress, 12 of 40 items)" in str(err.value)


class ListingClient(object):
    """list_all and get of BackupStorageLocations, for the default location's choice."""

    def __init__(self, locations):
        self.locations = locations

    def list_all(self, path):
        return [self.locations, None]

    def get(self, path):
        for location in self.locations:
            if path.endswith("/" + location["metadata"]["name"]):
                return location
        raise AssertionError(path)


def test_without_a_location_marked_default_the_one_named_default_is_used():
    available = {"phase": "Available"}
    marked = {"metadata": {"name": "minio"}, "spec": {"default": True}, "status": {"phase": "Unavailable"}}
    named = {"metadata": {"name": "default"}, "spec": {}, "status": available}
    assert objects.location_problem(ListingClient([named]), "velero", None, "storage_location") is None
    assert "'minio' is Unavailable" in objects.location_problem(ListingClient([named, marked]), "velero", None, "x")
    problem = objects.location_problem(ListingClient([{"metadata": {"name": "other"}, "spec": {}, "status": available}]),
                                       "velero", None, "storage_location")
    assert problem == "storage_location: no BackupStorageLocation in namespace velero is marked default and none is " \
        "named 'default', name one"


def test_a_rerun_compares_the_spec_as_velero_rewrote_it():
    request = backup_runner.parse_request(dict(BACKUP, included_namespaces=["vms"], ttl="24h",
                                               included_resources=["virtualmachines",
                                                                   "volumesnapshots.snapshot.storage.k8s.io"]))
    existing = {"spec": {"includedNamespaces": ["vms"], "ttl": "24h0m0s", "storageLocation": "default",
                         "includedResources": ["virtualmachines"],
                         "excludedResources": list(objects.AUTO_EXCLUDED_RESOURCES)}}
    spec = backup_runner.comparable_spec(request.spec)
    differences = objects.spec_differences(existing["spec"], spec, defaulted=("storageLocation", "ttl"),
                                           added={"excludedResources": objects.AUTO_EXCLUDED_RESOURCES})
    assert [d for d in differences if not d.startswith("ttl: ")] == []
    assert backup_runner.same_ttl(existing, request.spec)
    assert not backup_runner.same_ttl(existing, dict(request.spec, ttl="25h"))
    zero = backup_runner.comparable_spec(dict(request.spec, ttl="0s"))
    assert zero["ttl"] is None  # Velero replaces a zero ttl by its default


@pytest.mark.parametrize("options,message", [
    ({"included_namespaces": ["vm?"]}, "included_namespaces: 'vm?' is not a valid namespace name"),
    ({"included_namespaces": ["vm-*"]}, "included_namespaces: 'vm-*' is a pattern"),
    ({"included_namespaces": ["*", "vms"]}, "included_namespaces: '*' must be the only entry"),
    ({"included_namespaces": ["vms"], "excluded_resources": ["*"]}, "excluded_resources: '*' cannot be excluded"),
    ({"included_namespaces": ["vms"], "included_resources": ["pods"], "excluded_resources": ["pods"]},
     "excluded_resources: 'pods' is also in included_resources"),
])
def test_lists_velero_would_fail_to_validate_are_refused(options, message):
    with pytest.raises(ModuleFailure) as err:
        backup_runner.parse_request(dict(BACKUP, **options))
    assert "Backup velero/nightly: " + message in str(err.value)


def test_an_unreachable_download_url_names_the_locations_public_url(monkeypatch):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    url = "http://127.0.0.1:%d/velero/backups/b/b-resource-list.json.gz?X-Amz-Expires=600" % port

    class Client(object):
        deleted = []

        def request(self, method, path, params=None, body=None):
            return body

        def delete(self, path):
            self.deleted.append(path)

    monkeypatch.setattr(objects, "wait_for", lambda client, api, plural, targets, timeout: {
        (t.namespace, t.name): {"status": {"phase": "Processed", "downloadURL": url}} for t in targets})
    client = Client()
    with pytest.raises(ModuleFailure) as err:
        objects.download(client, "velero", [("BackupResourceList", "b")], 5)
    message = str(err.value)
    assert message.startswith("reading BackupResourceList b: the download URL Velero signed (host 127.0.0.1) cannot be "
                              "reached from here")
    assert "publicUrl" in message and "list_items=false" in message
    assert len(client.deleted) == 1  # the DownloadRequest is still deleted


def test_long_backup_names_become_label_values_as_velero_makes_them():
    from tests.lab.velero.server import valid_label_name

    name = "nightly-" + "x" * 70
    assert objects.valid_label_name(name) == valid_label_name(name) and len(objects.valid_label_name(name)) == 63
    assert objects.valid_label_name("short") == "short"
    request = backup_runner.BackupRequest(dict(BACKUP, name=name))
    request.existing = {"metadata": {"uid": "u-1"}}
    assert backup_runner.deletion_manifest(request)["metadata"]["labels"]["velero.io/backup-name"] == name[:57] + \
        objects.valid_label_name(name)[57:]
