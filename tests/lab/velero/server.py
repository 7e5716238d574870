"""Velero's server (v1.17.1) as a stand-in: controllers on the stand-in's runtime Manager.

What runs here, each piece after the Velero function it mirrors:
- BackupStorageLocation: pkg/controller/backup_storage_location_controller.go Reconcile - the backup store is
  validated (pkg/persistence/object_store.go IsValid) and the location marked Available or Unavailable with the
  error as `message`, `lastValidationTime` set; validated again each validationFrequency (server default 1m).
- Backup: pkg/controller/backup_controller.go Reconcile/prepareBackupRequest/runBackup, then
  backup_finalizer_controller.go: New -> InProgress (or FailedValidation) -> Finalizing -> Completed, or
  PartiallyFailed when an item action logged an error, or Failed. Items are collected as pkg/backup/item_collector.go
  does (every listable resource of the preferred versions, namespace and label filters; cluster-scoped resources
  only when the namespaces are all or includeClusterResources says so), backed up with the item actions and
  their additional items (pkg/backup/item_backupper.go backupItemInternal; additional items pass the same
  itemInclusionChecks, mustInclude only when an action asks for it, which the kubevirt actions never do), and
  written in Velero's layout (pkg/persistence/object_store_layout.go, pkg/archive/filesystem.go): the tarball
  `backups/<name>/<name>.tar.gz` with `metadata/version` and `resources/<group-resource>/[<version>-preferredversion/]
  namespaces/<ns>/<name>.json`, `velero-backup.json`, `<name>-resource-list.json.gz` (request.go
  BackupResourceList), `<name>-results.gz` and `<name>-logs.gz`.
- Restore: pkg/controller/restore_controller.go Reconcile/validateAndComplete/runValidatedRestore and
  pkg/restore/restore.go execute/restoreItem, then restore_finalizer_controller.go: resources in Velero's default
  priority order (pkg/cmd/server/config/config.go defaultRestorePriorities), namespaceMapping,
  existingResourcePolicy, metadata and status reset (resetMetadataAndStatus), restore labels (addRestoreLabels),
  PVCs whose PV has no snapshot and reclaim policy Delete re-provisioned (resetVolumeBindingInfo, pvsToProvision),
  results and the restored resource list in the object store.
- DownloadRequest: pkg/controller/download_request_controller.go - New -> Processed with a signed URL that
  expires after DownloadURLTTL (10m); an expired request is deleted.
- The kubevirt-velero-plugin's (v0.9.0) item actions: pkg/plugin/vm_backup_item_action.go,
  vmi_backup_item_action.go, dv_backup_item_action.go, pvc_backup_item_action.go and the restore actions
  vm_restore_item_action.go, vmi_restore_item_action.go, pod_restore_item_action.go, pvc_restore_item_action.go,
  with their object graphs (pkg/util/kvgraph/backup_graph.go, restore_graph.go). The plugin's README lists no
  Velero 1.17 among v0.9.0's compatible versions; the stand-in follows v0.9.0's code. Velero's own PVC actions
  (pkg/backup/actions/backup_pv_action.go, pkg/restore/actions/pvc_action.go) and pod action run too.

Not mirrored: virt-launcher pods (the lab runs none, so the VMI action's "pod for running VMI not found" check is
left out), CSI snapshots and the WaitingForPluginOperations phases, managedFields written on restore (they are
kept for the comparison with an existing object), the deletion controller's wait for restore finalizers.

Volume data: the lab registers no VolumeSnapshotLocation and no VolumeSnapshotClass carries Velero's
`velero.io/csi-volumesnapshot-class` label, so (as Velero does then) no volume is snapshotted and a restored PVC is
provisioned anew; CDI keeps a restored DataVolume as it is (prePopulated) rather than importing again.
"""

import datetime
import fnmatch
import gzip
import hashlib
import io
import json
import logging
import re
import tarfile
import time
import uuid
from typing import Dict, List, Optional, Set, Tuple

from ..kube import JSON, Kube, KubeError, object_path
from ..kubevirt.runtime import Manager
from .objectstore import NoSuchBucket, ObjectStore

log = logging.getLogger("velero")

API = "velero.io/v1"
NAMESPACE = "velero"
FORMAT_VERSION = "1.1.0"  # pkg/backup/backup.go BackupFormatVersion
BACKUP_VERSION = 1  # pkg/backup/backup.go BackupVersion
DEFAULT_TTL = 720 * 3600  # velero server --default-backup-ttl
VALIDATION_FREQUENCY = 60.0  # --store-validation-frequency
DOWNLOAD_URL_TTL = 600  # pkg/persistence/object_store.go DownloadURLTTL
STORAGE_LOCATION_LABEL = "velero.io/storage-location"
BACKUP_NAME_LABEL = "velero.io/backup-name"
RESTORE_NAME_LABEL = "velero.io/restore-name"
BACKUP_UID_LABEL = "velero.io/backup-uid"
EXCLUDE_LABEL = "velero.io/exclude-from-backup"
IN_PROGRESS_PHASES = ("InProgress", "WaitingForPluginOperations", "WaitingForPluginOperationsPartiallyFailed",
                      "Finalizing", "FinalizingPartiallyFailed")
SUBDIRS = ("backups", "restores", "restic", "metadata", "plugins", "kopia")  # object_store_layout.go

# kubevirt-velero-plugin pkg/plugin/dv_backup_item_action.go, vmi_backup_item_action.go, pkg/util/util.go
ANN_PRE_POPULATED = "cdi.kubevirt.io/storage.prePopulated"
ANN_POPULATED_FOR = "cdi.kubevirt.io/storage.populatedFor"
ANN_IN_PROGRESS = "kvp.kubevirt.io/storage.inprogress"
ANN_IS_OWNED = "cdi.kubevirt.io/velero.isOwned"
PVC_UID_LABEL = "velero.kubevirt.io/pvc-uid"
ORIGINAL_PVC_UID_ANN = "velero.kubevirt.io/original-pvc-uid"
METADATA_BACKUP_LABEL = "velero.kubevirt.io/metadataBackup"
RESTORE_RUN_STRATEGY = "velero.kubevirt.io/restore-run-strategy"
CLEAR_MAC_LABEL = "velero.kubevirt.io/clear-mac-address"
NEW_FIRMWARE_UUID_LABEL = "velero.kubevirt.io/generate-new-firmware-uuid"
# vmi_restore_item_action.go restrictedVmiLabels (KubeVirt's)
RESTRICTED_VMI_LABELS = ("kubevirt.io/created-by", "kubevirt.io/migrationJobUID", "kubevirt.io/nodeName",
                         "kubevirt.io/migrationTargetNodeName", "kubevirt.io/schedulable", "kubevirt.io/install-strategy")

# pkg/controller/restore_controller.go nonRestorableResources
NON_RESTORABLE = ("nodes", "events", "events.events.k8s.io", "backups.velero.io", "restores.velero.io",
                  "resticrepositories.velero.io", "csinodes.storage.k8s.io", "volumeattachments.storage.k8s.io",
                  "backuprepositories.velero.io")
# pkg/cmd/server/config/config.go defaultRestorePriorities
HIGH_PRIORITIES = ("customresourcedefinitions", "namespaces", "storageclasses",
                   "volumesnapshotclass.snapshot.storage.k8s.io", "volumesnapshotcontents.snapshot.storage.k8s.io",
                   "volumesnapshots.snapshot.storage.k8s.io", "datauploads.velero.io", "persistentvolumes",
                   "persistentvolumeclaims", "serviceaccounts", "secrets", "configmaps", "limitranges",
                   "priorityclasses", "pods", "replicasets.apps", "clusterclasses.cluster.x-k8s.io", "endpoints",
                   "services")
LOW_PRIORITIES = ("clusterbootstraps.run.tanzu.vmware.com", "clusters.cluster.x-k8s.io",
                  "clusterresourcesets.addons.cluster.x-k8s.io", "apps.kappctrl.k14s.io",
                  "packageinstalls.packaging.carvel.dev")


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def after(seconds: float) -> str:
    moment = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str) -> float:
    return datetime.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc).timestamp()


def parse_duration(value: str) -> float:
    """Go's time.ParseDuration for the forms metav1.Duration takes (e.g. 720h0m0s, 90m, 1.5h)."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6, "ns": 1e-9}
    parts = re.findall(r"([0-9.]+)(ns|us|ms|h|m|s)", value or "")
    if not value or "".join(n + u for n, u in parts) != value:
        raise ValueError(f"time: invalid duration {value!r}")
    return sum(float(n) * units[u] for n, u in parts)


def go_duration(seconds: float) -> str:
    """Go's time.Duration.String() (what metav1.Duration serialises to): 720h0m0s, 1h30m0s, 1m30s, 1.5s, 0s."""
    if seconds == 0:
        return "0s"
    if seconds < 1:
        for unit, scale in (("ms", 1e3), ("µs", 1e6), ("ns", 1e9)):
            if seconds * scale >= 1 or unit == "ns":
                return f"{seconds * scale:.9f}".rstrip("0").rstrip(".") + unit
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{secs:.9f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{int(hours)}h{int(minutes)}m{text}"
    return f"{int(minutes)}m{text}" if minutes else text


def valid_label_name(name: str) -> str:
    """pkg/label/label.go GetValidName: names over 63 characters become their first 57 and 6 of their sha256."""
    if len(name) <= 63:
        return name
    return name[:57] + hashlib.sha256(name.encode()).hexdigest()[:6]


def gzip_json(value) -> bytes:
    return gzip.compress(json.dumps(value, sort_keys=True).encode())


class Resource:
    """One API resource as discovery reports it (the preferred version of its group)."""

    def __init__(self, group: str, version: str, plural: str, kind: str, namespaced: bool):
        self.group, self.version, self.plural, self.kind, self.namespaced = group, version, plural, kind, namespaced

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_resource(self) -> str:
        """schema.GroupResource.String(): `plural.group`, or `plural` for the core group."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


def discover(kube: Kube) -> Dict[str, Resource]:
    """pkg/discovery/helper.go Refresh: the preferred version of every group, resources Velero can back up."""
    found: Dict[str, Resource] = {}
    versions = [("", "v1")]
    for group in kube.get("/apis").get("groups", []):
        versions.append((group["name"], group["preferredVersion"]["version"]))
    for group, version in versions:
        path = f"/apis/{group}/{version}" if group else "/api/v1"
        try:
            listing = kube.get(path)
        except KubeError:
            continue  # an aggregated API that is not answering: Velero logs it and goes on
        for res in listing.get("resources", []):
            # helper.go filterByVerbs: list, create, get and delete; skipSubresource
            if "/" in res["name"] or not {"list", "create", "get", "delete"} <= set(res.get("verbs", [])):
                continue
            resource = Resource(group, version, res["name"], res["kind"], res["namespaced"])
            found[resource.group_resource] = resource
    return found


def label_selector_query(selector: Optional[JSON]) -> Optional[str]:
    """metav1.LabelSelectorAsSelector, as a query string for the apiserver."""
    if not selector:
        return None
    terms = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        op, key, values = expr["operator"], expr["key"], expr.get("values") or []
        if op == "In":
            terms.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            terms.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            terms.append(key)
        elif op == "DoesNotExist":
            terms.append(f"!{key}")
    return ",".join(terms)


def included(name: str, includes: List[str], excludes: List[str]) -> bool:
    """pkg/util/collections/includes_excludes.go ShouldInclude: exclusions win, empty or `*` includes everything;
    namespaces take globs (NamespaceIncludesExcludes)."""
    if any(fnmatch.fnmatchcase(name, pattern) for pattern in excludes or []):
        return False
    return not includes or "*" in includes or any(fnmatch.fnmatchcase(name, pattern) for pattern in includes)


def resource_included(resource: Resource, includes: List[str], excludes: List[str]) -> bool:
    """includes_excludes.go generateIncludesExcludes: entries are resolved through discovery (plural, kind,
    group-qualified), so `VirtualMachine`, `virtualmachines` and `virtualmachines.kubevirt.io` are one."""

    def matches(entry: str) -> bool:
        entry = entry.lower()
        return entry in ("*", resource.plural, resource.kind.lower(), resource.group_resource,
                         f"{resource.kind.lower()}.{resource.group}" if resource.group else resource.kind.lower())

    if any(matches(e) for e in excludes or []):
        return False
    return not includes or any(matches(e) for e in includes)


# backup_controller.go autoExcludeNamespaceScopedResources + autoExcludeClusterScopedResources
AUTO_EXCLUDED_RESOURCES = ("volumesnapshots.snapshot.storage.k8s.io", "volumesnapshotcontents.snapshot.storage.k8s.io")
# k8s.io/apimachinery pkg/util/validation/validation.go IsDNS1123Label with RegexError
DNS1123_LABEL_ERROR = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
                       "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
                       "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")


def validate_includes_excludes(includes: Optional[List[str]], excludes: Optional[List[str]]) -> List[str]:
    """pkg/util/collections/includes_excludes.go ValidateIncludesExcludes (sets, so excludes in sorted order)."""
    includes_set, excludes_set = set(includes or []), set(excludes or [])
    errors = []
    if len(includes_set) > 1 and "*" in includes_set:
        errors.append("includes list must either contain '*' only, or a non-empty list of items")
    if "*" in excludes_set:
        errors.append("excludes list cannot contain '*'")
    errors += [f"excludes list cannot contain an item in the includes list: {item}"
               for item in sorted(excludes_set) if item in includes_set]
    return errors


def validate_namespace_includes_excludes(includes: Optional[List[str]], excludes: Optional[List[str]]) -> List[str]:
    """includes_excludes.go ValidateNamespaceIncludesExcludes with validateNamespaceName: '*' is replaced by a letter,
    then the name must be an RFC 1123 label (so '?' is refused)."""
    errors = validate_includes_excludes(includes, excludes)
    for item in sorted(set(includes or [])) + sorted(set(excludes or [])):
        if not item:
            continue
        name = item.replace("*", "x")
        if len(name) > 63:
            errors.append(f"invalid namespace {json.dumps(item)}: must be no more than 63 characters")
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name):
            message = "must not contain dots" if re.fullmatch(
                r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*", name) else DNS1123_LABEL_ERROR
            errors.append(f"invalid namespace {json.dumps(item)}: {message}")
    return errors


def modify_resource_include_exclude(include: Optional[List[str]], exclude: Optional[List[str]],
                                    added: Tuple[str, ...]) -> Tuple[Optional[List[str]], List[str]]:
    """backup_controller.go modifyResourceIncludeExclude: `added` appended to the excludes, removed from the
    includes."""
    modified_exclude = list(exclude or []) + [e for e in added if e not in (exclude or [])]
    modified_include = [i for i in include or [] if i not in modified_exclude] if include is not None else None
    return modified_include, modified_exclude


def in_backup(name: str, spec: JSON) -> bool:
    """kubevirt-velero-plugin pkg/util/util.go IsResourceInBackup (with equalIgnorePlural)."""

    def same(entry: str) -> bool:
        res = entry.split(".", 1)[0].lower()
        return res in (name, name + "s") or res + "s" == name

    includes, excludes = spec.get("includedResources") or [], spec.get("excludedResources") or []
    return (not includes or any(same(e) for e in includes)) and not any(same(e) for e in excludes)


class Item:
    def __init__(self, resource: Resource, obj: JSON):
        self.resource, self.obj = resource, obj

    @property
    def namespace(self) -> str:
        return self.obj["metadata"].get("namespace", "")

    @property
    def name(self) -> str:
        return self.obj["metadata"]["name"]


class BackupRun:
    """One backup in progress: pkg/backup/backup.go BackupWithResolvers with its itemBackupper."""

    def __init__(self, server: "VeleroServer", backup: JSON, resources: Dict[str, Resource]):
        self.server, self.kube, self.backup, self.spec = server, server.kube, backup, backup.get("spec") or {}
        self.resources = resources
        self.by_plural = {(r.group, r.plural): r for r in resources.values()}
        self.backed_up: Dict[Tuple[str, str, str], Item] = {}
        self.order: List[Tuple[str, str, str]] = []
        self.warnings: JSON = {}
        self.errors: JSON = {}
        self.logs: List[str] = []
        self.total = 0

    def _log(self, level: str, message: str, namespace: str = "") -> None:
        self.logs.append(f'time="{now()}" level={level} msg="{message}" backup={NAMESPACE}/{self.backup["metadata"]["name"]}')
        if level in ("warning", "error"):
            target = self.warnings if level == "warning" else self.errors
            if namespace:
                target.setdefault("namespaces", {}).setdefault(namespace, []).append(message)
            else:
                target.setdefault("velero", []).append(message)

    def _get(self, group_resource: str, namespace: str, name: str) -> Optional[Item]:
        resource = self.resources.get(group_resource)
        if resource is None:
            return None
        obj = self.kube.get_or_none(object_path(resource.api_version, resource.plural, name, namespace))
        return Item(resource, obj) if obj else None

    # -- pkg/backup/item_collector.go -------------------------------------------------------------------

    def namespaces(self) -> List[str]:
        includes = self.spec.get("includedNamespaces") or ["*"]
        excludes = list(self.spec.get("excludedNamespaces") or [])
        names = []
        for ns in self.kube.get(object_path("v1", "namespaces")).get("items", []):
            if included(ns["metadata"]["name"], includes, excludes):
                names.append(ns["metadata"]["name"])
        return sorted(names)

    def all_namespaces(self) -> bool:
        includes = self.spec.get("includedNamespaces") or ["*"]
        return includes == ["*"] and not self.spec.get("excludedNamespaces")

    def collect(self) -> List[Item]:
        namespaces = self.namespaces()
        include_cluster = self.spec.get("includeClusterResources")
        selectors = [label_selector_query(self.spec["labelSelector"])] if self.spec.get("labelSelector") else \
            [label_selector_query(s) for s in self.spec.get("orLabelSelectors") or []] or [None]
        items: List[Item] = []
        for resource in sorted(self.resources.values(), key=lambda r: r.group_resource):
            if not resource_included(resource, self.spec.get("includedResources") or [],
                                     self.spec.get("excludedResources") or []):
                continue
            if not resource.namespaced:
                if resource.plural == "namespaces" and resource.group == "":
                    # item_collector.go collectNamespaces (:761-775): an included entry other than "*" that is not
                    # the name of a namespace (a glob too) is logged as an error
                    existing = {ns["metadata"]["name"]
                                for ns in self.kube.get(object_path("v1", "namespaces")).get("items", [])}
                    for entry in self.spec.get("includedNamespaces") or []:
                        if entry != "*" and entry not in existing:
                            self._log("error", f"fail to get the namespace {entry} specified in "
                                      f"backup.Spec.IncludedNamespaces")
                    # item_collector.go: the included namespaces themselves go into the backup
                    for ns in namespaces:
                        obj = self.kube.get_or_none(object_path("v1", "namespaces", ns))
                        if obj:
                            items.append(Item(resource, obj))
                    continue
                if include_cluster is False or (include_cluster is None and not self.all_namespaces()):
                    continue  # only as additional items of namespaced ones (e.g. a PVC's PV)
            seen: Set[Tuple[str, str]] = set()
            for selector in selectors:
                query = {"labelSelector": selector} if selector else {}
                scopes = namespaces if resource.namespaced and not self.all_namespaces() else [""]
                for ns in scopes:
                    try:
                        listing = self.server.get(object_path(resource.api_version, resource.plural, namespace=ns),
                                                  **query)
                    except KubeError as err:
                        self._log("warning", f"Error listing {resource.group_resource}: {err}")
                        continue
                    for obj in listing.get("items", []):
                        obj.setdefault("apiVersion", resource.api_version)
                        obj.setdefault("kind", resource.kind)
                        key = (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
                        if key in seen or (resource.namespaced and key[0] not in namespaces):
                            continue
                        seen.add(key)
                        items.append(Item(resource, obj))
        return items

    # -- pkg/backup/item_backupper.go backupItemInternal -------------------------------------------------

    def _inclusion_checks(self, item: Item, must_include: bool) -> bool:
        """item_backupper.go itemInclusionChecks: the label, namespace and resource filters, again for every item
        (an action's additional items too); a cluster-scoped item only when GlobalIncludesExcludes.ShouldExclude
        (includes_excludes.go:214-240) does not drop it. mustInclude skips the checks: it is set only by an action
        annotating `velero.io/must-include-additional-items` (item_backupper.go:413), which the kubevirt
        actions never do."""
        if not must_include:
            if (item.obj["metadata"].get("labels") or {}).get(EXCLUDE_LABEL) == "true":
                self._log("info", f"Excluding item because it has label {EXCLUDE_LABEL}=true", item.namespace)
                return False
            if item.namespace and item.namespace not in self.namespaces_cache:
                return False
            includes = self.spec.get("includedResources") or []
            excludes = self.spec.get("excludedResources") or []
            if not item.namespace and not (item.resource.plural == "namespaces" and not item.resource.group):
                if not resource_included(item.resource, [], excludes):
                    return False
                include_cluster = self.spec.get("includeClusterResources")
                if include_cluster is False or \
                        (include_cluster is None and not resource_included(item.resource, includes, excludes)):
                    return False
            if item.namespace and not resource_included(item.resource, includes, excludes):
                return False
        return not item.obj["metadata"].get("deletionTimestamp")

    def back_up(self, item: Item, must_include: bool = False) -> None:
        """item_backupper.go backupItemInternal: the item is recorded as backed up (BackedUpItems.AddItem, :184)
        before its actions run and stays recorded if they fail, so it is in the resource list but not in the
        tarball; an error of an action, or of an additional item, is raised to the caller (executeActions returns
        it, :492-495), so a parent whose additional item failed is not written either."""
        key = (item.resource.group_resource, item.namespace, item.name)
        if not self._inclusion_checks(item, must_include):
            return
        if key in self.backed_up:
            return
        self.backed_up[key] = item
        obj = json.loads(json.dumps(item.obj))
        additional: List[Tuple[str, str, str]] = []
        for action in self.server.backup_actions(item.resource):
            try:
                obj, extra = action(self, obj)
            except ActionError as err:
                raise BackupItemError(f"error executing custom action (groupResource={item.resource.group_resource},"
                                      f" namespace={item.namespace}, name={item.name}): {err}", item.namespace)
            additional += extra
        for group_resource, namespace, name in additional:
            extra_item = self._get(group_resource, namespace, name)
            if extra_item is None:
                self._log("warning", f"Additional item was not found in Kubernetes API, can't back it up: "
                          f"{group_resource} {namespace}/{name}", namespace)
                continue
            self.back_up(extra_item, must_include=False)
        item.obj = obj
        self.order.append(key)

    def run(self) -> Tuple[bytes, JSON]:
        self.namespaces_cache = set(self.namespaces())
        collected = self.collect()
        self.total = len(collected)
        for item in collected:
            try:
                self.back_up(item)
            except BackupItemError as err:  # backup.go backupItem: "Error backing up item", one per error
                self._log("error", str(err), err.namespace)
        return self.tarball(), self.resource_list()

    def tarball(self) -> bytes:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            def add(name: str, data: bytes) -> None:
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = len(data), 0o755, int(time.time())
                tar.addfile(info, io.BytesIO(data))

            add("metadata/version", f"{FORMAT_VERSION}\n".encode())  # backup.go writeBackupVersion
            for key in self.order:
                item = self.backed_up[key]
                data = json.dumps(item.obj).encode()
                scope = "namespaces" if item.namespace else "cluster"
                tail = f"{scope}/{item.namespace}/{item.name}.json" if item.namespace else f"{scope}/{item.name}.json"
                # item_backupper.go: the preferred version without a version path, and again under
                # <version>-preferredversion (archive/filesystem.go GetVersionedItemFilePath)
                add(f"resources/{item.resource.group_resource}/{tail}", data)
                add(f"resources/{item.resource.group_resource}/{item.resource.version}-preferredversion/{tail}", data)
        return buffer.getvalue()

    def resource_list(self) -> JSON:
        """backed_up_items_map.go ResourceMap: "apiVersion/Kind" -> sorted "namespace/name" (or "name"), of every
        item recorded as backed up, one whose action failed too."""
        listing: Dict[str, List[str]] = {}
        for item in self.backed_up.values():
            entry = f"{item.namespace}/{item.name}" if item.namespace else item.name
            listing.setdefault(f"{item.resource.api_version}/{item.resource.kind}", []).append(entry)
        return {k: sorted(v) for k, v in listing.items()}


class ActionError(Exception):
    pass


class BackupItemError(Exception):
    def __init__(self, message: str, namespace: str):
        super().__init__(message)
        self.namespace = namespace


# -- the kubevirt-velero-plugin's backup item actions ---------------------------------------------------------

def _volume_graph(spec: JSON, namespace: str) -> List[Tuple[str, str, str]]:
    """kvgraph/backup_graph.go addVolumeGraph + addAccessCredentials."""
    found = []
    for volume in spec.get("volumes") or []:
        if volume.get("dataVolume"):
            found.append(("datavolumes.cdi.kubevirt.io", namespace, volume["dataVolume"]["name"]))
            found.append(("persistentvolumeclaims", namespace, volume["dataVolume"]["name"]))
        elif volume.get("persistentVolumeClaim"):
            found.append(("persistentvolumeclaims", namespace, volume["persistentVolumeClaim"]["claimName"]))
        elif volume.get("memoryDump"):
            found.append(("persistentvolumeclaims", namespace, volume["memoryDump"]["claimName"]))
        elif volume.get("configMap"):
            found.append(("configmaps", namespace, volume["configMap"]["name"]))
        elif volume.get("secret"):
            found.append(("secrets", namespace, volume["secret"]["secretName"]))
        elif volume.get("serviceAccount"):
            found.append(("serviceaccounts", namespace, volume["serviceAccount"]["serviceAccountName"]))
        else:
            for kind in ("cloudInitNoCloud", "cloudInitConfigDrive"):
                source = volume.get(kind) or {}
                for ref in ("userDataSecretRef", "networkDataSecretRef"):
                    if source.get(ref):
                        found.append(("secrets", namespace, source[ref]["name"]))
    for credential in spec.get("accessCredentials") or []:
        for kind in ("sshPublicKey", "userPassword"):
            secret = ((credential.get(kind) or {}).get("source") or {}).get("secret")
            if secret:
                found.append(("secrets", namespace, secret["secretName"]))
    return found


def _launcher_pod(run: BackupRun, namespace: str, vmi_name: str) -> List[Tuple[str, str, str]]:
    """kvgraph addLauncherPod with pkg/util/util.go GetLauncherPod: of the pods labelled kubevirt.io=virt-launcher
    (ListPods), the first annotated kubevirt.io/domain=<vmi>."""
    pods = run.server.get(object_path("v1", "pods", namespace=namespace),
                          labelSelector="kubevirt.io=virt-launcher").get("items", [])
    for pod in pods:
        if (pod["metadata"].get("annotations") or {}).get("kubevirt.io/domain") == vmi_name:
            return [("pods", namespace, pod["metadata"]["name"])]
    return []


def _backend_pvcs(run: BackupRun, spec: JSON, vm_name: str, namespace: str) -> List[Tuple[str, str, str]]:
    """kvgraph/util.go addVolumeGraph's tail: for a persistent TPM or EFI (IsBackendStorageNeededForVMI),
    addBackendPVC adds the claims labelled persistent-state-for=<vm>, or else the one named
    persistent-state-for-<vm>."""
    domain = spec.get("domain") or {}
    tpm = ((domain.get("devices") or {}).get("tpm") or {}).get("persistent") is True
    efi = (((domain.get("firmware") or {}).get("bootloader") or {}).get("efi") or {}).get("persistent") is True
    if not (tpm or efi):
        return []
    pvcs = run.server.get(object_path("v1", "persistentvolumeclaims", namespace=namespace),
                          labelSelector=f"persistent-state-for={vm_name}").get("items", [])
    if not pvcs:
        return [("persistentvolumeclaims", namespace, f"persistent-state-for-{vm_name}")]
    return [("persistentvolumeclaims", namespace, pvc["metadata"]["name"]) for pvc in pvcs]


def _excluded_by_label(run: BackupRun, api_version: str, plural: str, namespace: str, name: str) -> bool:
    """pkg/util/util.go IsDVExcludedByLabel / IsPVCExcludedByLabel: a Get (a missing object is the Get's error),
    then the exclude-from-backup label."""
    obj = run.kube.get_or_none(object_path(api_version, plural, name, namespace))
    if obj is None:
        raise NotFound(f'{plural}{"." + api_version.split("/")[0] if "/" in api_version else ""} "{name}" not found')
    return (obj["metadata"].get("labels") or {}).get(EXCLUDE_LABEL) == "true"


class NotFound(ActionError):
    pass


def _restore_possible(run: BackupRun, volumes: List[JSON], namespace: str, skip) -> bool:
    """pkg/util/util.go RestorePossible: every DV/PVC volume (outside the VM's templates) is in the backup and its
    DataVolume or claim not labelled exclude-from-backup (checkRestoreDataVolumePossible, checkRestorePVCPossible);
    a DataVolume that does not exist falls back to its claim, a claim that does not exist is the Get's error."""

    def pvc_possible(claim: str) -> bool:
        if not in_backup("persistentvolumeclaims", run.spec):
            return False
        return not _excluded_by_label(run, "v1", "persistentvolumeclaims", namespace, claim)

    for volume in volumes:
        if volume.get("dataVolume") and not skip(volume):
            dv_name = volume["dataVolume"]["name"]
            try:
                possible = not _excluded_by_label(run, "cdi.kubevirt.io/v1beta1", "datavolumes", namespace, dv_name) \
                    and in_backup("datavolume", run.spec)
            except NotFound:
                possible = pvc_possible(dv_name)
            if not possible:
                return False
        if volume.get("persistentVolumeClaim") and not pvc_possible(volume["persistentVolumeClaim"]["claimName"]):
            return False
    return True


def _instancetype_revisions(vm: JSON) -> List[Tuple[str, str, str]]:
    """kvgraph/util.go addInstanceType/addPreference with addInstanceTypeMatcherResource: only the ControllerRevision
    (from status.<ref>Ref, else the spec's revisionName when the status has none); the instancetype or preference
    object itself is not an additional item."""
    spec, status, found = vm.get("spec") or {}, vm.get("status") or {}, []
    for ref in ("instancetype", "preference"):
        if spec.get(ref):
            status_ref = status.get(f"{ref}Ref")
            revision = ((status_ref or {}).get("controllerRevisionRef") or {}).get("name")
            if status_ref is None:
                revision = spec[ref].get("revisionName")
            if revision:
                found.append(("controllerrevisions.apps", vm["metadata"]["namespace"], revision))
    return found


def vm_backup_action(run: BackupRun, vm: JSON) -> Tuple[JSON, List[Tuple[str, str, str]]]:
    """pkg/plugin/vm_backup_item_action.go Execute, with kvgraph NewVirtualMachineBackupGraph."""
    status, spec = vm.get("status") or {}, vm.get("spec") or {}
    namespace, name = vm["metadata"]["namespace"], vm["metadata"]["name"]
    if status.get("printableStatus") in ("Starting", "Running"):  # canBeSafelyBackedUp
        if not in_backup("virtualmachineinstances", run.spec):
            raise ActionError("VM cannot be safely backed up")
        # isVMIExcludedByLabel: a Get of the VMI; a Starting VM without one yet is the Get's error
        vmi = run.kube.get_or_none(object_path("kubevirt.io/v1", "virtualmachineinstances", name, namespace))
        if vmi is None:
            raise ActionError(f'virtualmachineinstances.kubevirt.io "{name}" not found')
        if (vmi["metadata"].get("labels") or {}).get(EXCLUDE_LABEL) == "true":
            raise ActionError("VM cannot be safely backed up")
        if not in_backup("pods", run.spec) and in_backup("persistentvolumeclaims", run.spec):
            raise ActionError("VM cannot be safely backed up")
    template = (spec.get("template") or {}).get("spec") or {}
    if METADATA_BACKUP_LABEL not in (run.backup["metadata"].get("labels") or {}):
        templates = {t["metadata"]["name"] for t in spec.get("dataVolumeTemplates") or []}
        if not _restore_possible(run, template.get("volumes") or [], namespace,
                                 lambda v: v["dataVolume"]["name"] in templates):
            raise ActionError("VM would not be restored correctly")
    extra = _instancetype_revisions(vm)
    for ref in ("instancetype", "preference"):
        # Execute: the status' revision copied into the spec, since Velero drops the status on restore
        status_revision = (((status.get(f"{ref}Ref") or {}).get("controllerRevisionRef")) or {}).get("name")
        if spec.get(ref) and status_revision:
            spec[ref]["revisionName"] = status_revision
    if status.get("created"):
        extra.append(("virtualmachineinstances.kubevirt.io", namespace, name))
        extra += _launcher_pod(run, namespace, name)
    extra += _volume_graph(template, namespace) + _backend_pvcs(run, template, name, namespace)
    return vm, extra


def vmi_backup_action(run: BackupRun, vmi: JSON) -> Tuple[JSON, List[Tuple[str, str, str]]]:
    """pkg/plugin/vmi_backup_item_action.go Execute: a VMI owned by anything (isVMIOwned: any ownerReference) is
    left out when virtualmachines are not in the backup or its VM is labelled exclude-from-backup, else annotated
    so its restore is skipped; a VMI owned by nothing must pass RestorePossible. Not mirrored: the launcher pod
    lookup of isPodExcludedByLabel ("pod for running VMI not found"), since the lab runs no virt-launcher pods."""
    meta = vmi["metadata"]
    owned = bool(meta.get("ownerReferences"))
    if owned:
        if not in_backup("virtualmachines", run.spec):
            return vmi, []
        vm = run.kube.get_or_none(object_path("kubevirt.io/v1", "virtualmachines", meta["name"], meta["namespace"]))
        if vm is None:
            raise ActionError(f'virtualmachines.kubevirt.io "{meta["name"]}" not found')
        if (vm["metadata"].get("labels") or {}).get(EXCLUDE_LABEL) == "true":
            return vmi, []
    if not _paused(vmi):
        if not in_backup("pods", run.spec) and in_backup("persistentvolumeclaims", run.spec):
            raise ActionError("VM is running but launcher pod is not included in the backup")
    if owned:
        meta.setdefault("annotations", {})[ANN_IS_OWNED] = "true"
    elif METADATA_BACKUP_LABEL not in (run.backup["metadata"].get("labels") or {}):
        if not _restore_possible(run, (vmi.get("spec") or {}).get("volumes") or [], meta["namespace"], lambda v: False):
            raise ActionError("VM has DataVolume or PVC volumes and DataVolumes/PVCs is not included in the backup")
    extra = _launcher_pod(run, meta["namespace"], meta["name"])
    return vmi, extra + _volume_graph(vmi.get("spec") or {}, meta["namespace"]) + \
        _backend_pvcs(run, vmi.get("spec") or {}, meta["name"], meta["namespace"])


def _paused(vmi: JSON) -> bool:
    return any(c.get("type") == "Paused" and c.get("status") == "True"
               for c in (vmi.get("status") or {}).get("conditions") or [])


def dv_backup_action(run: BackupRun, obj: JSON) -> Tuple[JSON, List[Tuple[str, str, str]]]:
    """pkg/plugin/dv_backup_item_action.go Execute: handleDataVolume / handlePVC."""
    meta = obj["metadata"]
    if obj.get("kind") == "DataVolume":
        extra = []
        if (obj.get("status") or {}).get("phase") == "Succeeded":
            meta.setdefault("annotations", {})[ANN_PRE_POPULATED] = meta["name"]
            extra.append(("persistentvolumeclaims", meta["namespace"], meta["name"]))  # NewDataVolumeBackupGraph
        return obj, extra
    owner = next((r for r in meta.get("ownerReferences") or [] if r.get("kind") == "DataVolume"), None)
    if owner:
        dv = run.kube.get_or_none(object_path("cdi.kubevirt.io/v1beta1", "datavolumes", owner["name"], meta["namespace"]))
        if dv:
            key = ANN_POPULATED_FOR if (dv.get("status") or {}).get("phase") == "Succeeded" else ANN_IN_PROGRESS
            meta.setdefault("annotations", {})[key] = dv["metadata"]["name"]
    return obj, []


def pvc_backup_action(_run: BackupRun, pvc: JSON) -> Tuple[JSON, List[Tuple[str, str, str]]]:
    """pkg/plugin/pvc_backup_item_action.go Execute: the PVC's uid as a label (an older one kept aside)."""
    meta = pvc["metadata"]
    if meta.get("uid"):
        labels = meta.setdefault("labels", {})
        if PVC_UID_LABEL in labels:
            meta.setdefault("annotations", {})[ORIGINAL_PVC_UID_ANN] = labels[PVC_UID_LABEL]
        labels[PVC_UID_LABEL] = meta["uid"]
    return pvc, []


def pv_backup_action(_run: BackupRun, pvc: JSON) -> Tuple[JSON, List[Tuple[str, str, str]]]:
    """Velero's pkg/backup/actions/backup_pv_action.go PVCAction: a bound claim loses its dataSource and
    dataSourceRef, its selector unless storageClassName is "" (then only velero.io/ selector labels go), and brings
    its PV (actionhelpers.RelatedItemsForPVC)."""
    spec, status = pvc.get("spec") or {}, pvc.get("status") or {}
    if status.get("phase") != "Bound" or not spec.get("volumeName"):
        return pvc, []
    spec.pop("dataSource", None)
    spec.pop("dataSourceRef", None)
    if spec.get("storageClassName") != "":
        spec.pop("selector", None)
    labels = (spec.get("selector") or {}).get("matchLabels")
    if labels:
        for key in [k for k in labels if k.startswith("velero.io/")]:
            del labels[key]
    return pvc, [("persistentvolumes", "", spec["volumeName"])]


def pod_backup_action(_run: BackupRun, pod: JSON) -> Tuple[JSON, List[Tuple[str, str, str]]]:
    """Velero's pkg/backup/actions/pod_action.go PodAction: a pod brings the PVCs it mounts."""
    namespace = pod["metadata"]["namespace"]
    return pod, [("persistentvolumeclaims", namespace, v["persistentVolumeClaim"]["claimName"])
                 for v in (pod.get("spec") or {}).get("volumes") or [] if v.get("persistentVolumeClaim")]


class RestoreRun:
    """One restore: pkg/restore/restore.go restoreContext.execute and restoreItem."""

    def __init__(self, server: "VeleroServer", restore: JSON, backup: JSON, tarball: bytes,
                 resources: Dict[str, Resource]):
        self.server, self.kube, self.restore, self.backup = server, server.kube, restore, backup
        self.spec = restore.get("spec") or {}
        self.resources = resources
        self.items: Dict[str, Dict[Tuple[str, str], JSON]] = {}
        with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as tar:
            for member in tar.getmembers():
                parts = member.name.split("/")
                # resources/<gr>/namespaces/<ns>/<name>.json or resources/<gr>/cluster/<name>.json (no version dir)
                if parts[0] != "resources" or len(parts) not in (4, 5) or parts[2] not in ("namespaces", "cluster"):
                    continue
                obj = json.loads(tar.extractfile(member).read())
                namespace = parts[3] if parts[2] == "namespaces" else ""
                self.items.setdefault(parts[1], {})[(namespace, obj["metadata"]["name"])] = obj
        self.mapping = self.spec.get("namespaceMapping") or {}
        self.restored: Dict[Tuple[str, str, str], str] = {}
        self.warnings: JSON = {}
        self.errors: JSON = {}
        self.pvs_to_provision: Set[str] = set()
        self.total = 0
        self.logs: List[str] = []

    def _add(self, target: JSON, namespace: str, message: str) -> None:
        if namespace:
            target.setdefault("namespaces", {}).setdefault(namespace, []).append(message)
        else:
            target.setdefault("cluster", []).append(message)

    def ordered(self) -> List[str]:
        """restore.go getOrderedResourceCollection: high priorities, then the rest by name, then low ones."""
        present = set(self.items)
        first = [r for r in HIGH_PRIORITIES if r in present]
        last = [r for r in LOW_PRIORITIES if r in present]
        return first + sorted(present - set(first) - set(last)) + last

    def _namespace_included(self, namespace: str) -> bool:
        includes = self.spec.get("includedNamespaces") or ["*"]
        return included(namespace, includes, self.spec.get("excludedNamespaces") or [])

    def run(self) -> None:
        for group_resource in self.ordered():
            if group_resource in NON_RESTORABLE:
                continue
            resource = self.resources.get(group_resource)
            if resource is None:
                self._add(self.warnings, "", f"resource {group_resource} is not known to the cluster: skipped")
                continue
            if not resource_included(resource, self.spec.get("includedResources") or [],
                                     self.spec.get("excludedResources") or []):
                continue
            for (namespace, name) in sorted(self.items[group_resource]):
                if namespace and not self._namespace_included(namespace):
                    continue
                if group_resource == "namespaces" and not self._namespace_included(name):
                    continue
                self.total += 1  # restore.go: totalItems counts what is selected, processed items what was done
                self.restore_item(group_resource, namespace, name)

    def ensure_namespace(self, source: str, target: str) -> None:
        """restore.go ensureNamespaceExistsAndIsReady: the backed-up namespace object, renamed when mapped."""
        if ("namespaces", "", target) in self.restored:
            return
        # restore.go:1138-1145: the namespace is a restored item ("created") only when it was created; one that
        # exists already is not listed
        self.restored[("namespaces", "", target)] = "existed"
        if self.kube.get_or_none(object_path("v1", "namespaces", target)) is None:
            backed = json.loads(json.dumps(self.items.get("namespaces", {}).get(("", source)) or
                                           {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": target}}))
            backed["metadata"] = {"name": target, "labels": (backed["metadata"].get("labels") or {}),
                                  "annotations": backed["metadata"].get("annotations") or {}}
            backed["metadata"]["labels"].pop("kubernetes.io/metadata.name", None)
            backed.pop("status", None)
            backed.pop("spec", None)
            try:
                self.kube.create(object_path("v1", "namespaces"), backed)
                self.restored[("namespaces", "", target)] = "created"
            except KubeError as err:
                if err.status != 409:
                    raise

    def restore_item(self, group_resource: str, namespace: str, name: str) -> None:
        target_ns = self.mapping.get(namespace, namespace)
        key = (group_resource, target_ns, name)
        if key in self.restored:
            return
        obj = (self.items.get(group_resource) or {}).get((namespace, name))
        if obj is None:
            return
        resource = self.resources.get(group_resource)
        if resource is None:
            return
        # restore.go restoreItem (:1112, :1124): every item, an additional one too, passes the resource and
        # namespace filters
        if not resource_included(resource, self.spec.get("includedResources") or [],
                                 self.spec.get("excludedResources") or []):
            return
        if namespace and not self._namespace_included(namespace):
            return
        obj = json.loads(json.dumps(obj))
        if group_resource == "namespaces":
            self.ensure_namespace(name, self.mapping.get(name, name))
            return
        if namespace:
            self.ensure_namespace(namespace, target_ns)
        self.restored[key] = "skipped"
        # the restore item actions (kubevirt-velero-plugin, Velero's own), additional items first
        try:
            for action in self.server.restore_actions(resource):
                obj, extra, skip = action(self, obj)
                for extra_gr, extra_ns, extra_name in extra:
                    self.restore_item(extra_gr, extra_ns, extra_name)
                if skip:
                    return
        except ActionError as err:
            self._add(self.errors, target_ns, f"error preparing {group_resource} {target_ns}/{name}: {err}")
            self.restored[key] = "failed"
            return
        if group_resource == "persistentvolumes":
            # restore.go: no snapshot and reclaim policy Delete -> dynamically re-provisioned, PV not restored
            if (obj.get("spec") or {}).get("persistentVolumeReclaimPolicy") == "Delete":
                self.pvs_to_provision.add(name)
                return
        if group_resource == "persistentvolumeclaims":
            spec = obj.get("spec") or {}
            if spec.get("volumeName"):
                annotations = obj["metadata"].get("annotations") or {}
                for ann in ("pv.kubernetes.io/bind-completed", "pv.kubernetes.io/bound-by-controller"):
                    annotations.pop(ann, None)  # resetVolumeBindingInfo
                volume = spec["volumeName"]
                pv = self.items.get("persistentvolumes", {}).get(("", volume))
                if volume in self.pvs_to_provision or \
                        (pv and (pv.get("spec") or {}).get("persistentVolumeReclaimPolicy") == "Delete"):
                    spec.pop("volumeName", None)  # "Resetting PersistentVolumeClaim for dynamic provisioning"
        # resetMetadataAndStatus (restore.go resetMetadata :2102), then the namespace mapping and addRestoreLabels;
        # managedFields stay (they take part in the comparison with an existing object); not mirrored: Velero creates
        # with them and patches them back after the create (:1699), the stand-in creates without them
        obj = _reset_metadata_and_status(obj)
        meta = obj["metadata"]
        if namespace:
            meta["namespace"] = target_ns
        labels = meta.setdefault("labels", {})
        labels[BACKUP_NAME_LABEL] = valid_label_name(self.backup["metadata"]["name"])
        labels[RESTORE_NAME_LABEL] = valid_label_name(self.restore["metadata"]["name"])
        path = object_path(resource.api_version, resource.plural, namespace=target_ns)
        try:
            self.kube.create(path, dict(obj, metadata={k: v for k, v in meta.items() if k != "managedFields"}))
            self.restored[key] = "created"
            return
        except KubeError as err:
            if err.status != 409:
                self._add(self.errors, target_ns, f"error restoring {group_resource}/{target_ns}/{name}: "
                          f"{err.body.get('message') if isinstance(err.body, dict) else err}")
                self.restored[key] = "failed"
                return
        self.restore_existing(resource, obj, key)

    def restore_existing(self, resource: Resource, obj: JSON, key: Tuple[str, str, str]) -> None:
        """restore.go restoreItem for an object that already exists, by existingResourcePolicy."""
        group_resource, namespace, name = key
        path = object_path(resource.api_version, resource.plural, name, namespace)
        # restore.go:1543-1562: the in-cluster object, metadata and status reset and the restore labels copied in,
        # against the backed-up one (equality.Semantic.DeepEqual of the whole objects, labels, annotations and
        # managedFields included)
        current = _reset_metadata_and_status(self.kube.get(path))
        current_labels = current["metadata"].setdefault("labels", {})
        for label in (BACKUP_NAME_LABEL, RESTORE_NAME_LABEL):
            current_labels[label] = obj["metadata"]["labels"][label]
        if current == obj:
            self.restored[key] = "skipped"
            return
        if group_resource == "serviceaccounts":
            # mergeServiceAccounts: the backed-up secrets and imagePullSecrets added to the in-cluster ones; patched
            # when that changes anything ("updated"), else nothing to do
            desired = json.loads(json.dumps(current))
            for field in ("secrets", "imagePullSecrets"):
                for entry in obj.get(field) or []:
                    if entry not in (desired.get(field) or []):
                        desired.setdefault(field, []).append(entry)
            if desired == current:
                self.restored[key] = "skipped"
                return
            try:
                self.kube.merge_patch(path, {f: desired[f] for f in ("secrets", "imagePullSecrets") if f in desired})
                self.restored[key] = "updated"
            except KubeError as err:
                self._add(self.warnings, namespace, str(err))
                self.restored[key] = "skipped"
            return
        policy = self.spec.get("existingResourcePolicy") or ""
        message = f'could not restore, {obj.get("kind")} "{name}" already exists. Warning: the in-cluster version is ' \
                  f'different than the backed-up version'
        if policy == "update":
            try:
                patch = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
                patch["metadata"] = {k: v for k, v in obj["metadata"].items() if k != "managedFields"}
                self.kube.merge_patch(path, patch)
                self.restored[key] = "updated"
                return
            except KubeError as err:
                message = f"could not update {group_resource} {namespace}/{name}: {err}"
        self._add(self.warnings, namespace, message)
        self.restored[key] = "skipped"

    def resource_list(self) -> JSON:
        """restore.go: "apiVersion/Kind" -> "namespace/name(action)" for what was created, updated or failed."""
        listing: Dict[str, List[str]] = {}
        for (group_resource, namespace, name), action in self.restored.items():
            resource = self.resources.get(group_resource)
            if resource is None or action not in ("created", "updated", "failed", "skipped"):
                continue
            entry = f"{namespace}/{name}({action})" if namespace else f"{name}({action})"
            listing.setdefault(f"{resource.api_version}/{resource.kind}", []).append(entry)
        return {k: sorted(v) for k, v in listing.items()}


def _reset_metadata_and_status(obj: JSON) -> JSON:
    """restore.go resetMetadataAndStatus: resetMetadata (:2102, managedFields not among the fields) and resetStatus."""
    obj = json.loads(json.dumps(obj))
    for field in ("generateName", "selfLink", "uid", "resourceVersion", "generation", "creationTimestamp",
                  "deletionTimestamp", "deletionGracePeriodSeconds", "ownerReferences"):
        obj["metadata"].pop(field, None)
    obj.pop("status", None)
    return obj


# -- restore item actions -------------------------------------------------------------------------------------

def pod_restore_action(_run: RestoreRun, pod: JSON):
    """pod_restore_item_action.go: launcher and hotplug pods (kubevirt.io in (virt-launcher, hotplug-disk)) skipped."""
    skip = (pod["metadata"].get("labels") or {}).get("kubevirt.io") in ("virt-launcher", "hotplug-disk")
    return pod, [], skip


def vmi_restore_action(_run: RestoreRun, vmi: JSON):
    """vmi_restore_item_action.go: an owned VMI is skipped (its VM makes it); else restricted labels dropped."""
    meta = vmi["metadata"]
    if (meta.get("annotations") or {}).get(ANN_IS_OWNED) == "true":
        return vmi, [], True
    for label in RESTRICTED_VMI_LABELS:
        (meta.get("labels") or {}).pop(label, None)
    return vmi, [], False


def vm_restore_action(run: RestoreRun, vm: JSON):
    """vm_restore_item_action.go: run strategy from the restore's label, MACs cleared on request, a new firmware
    UUID on request (velero.kubevirt.io/generate-new-firmware-uuid, util.go GenerateNewFirmwareUUID), and what
    kvgraph NewVirtualMachineRestoreGraph names restored before it: the instancetype and preference
    ControllerRevisions, the volumes' DataVolumes, PVCs, secrets..., the persistent TPM/EFI claim."""
    labels = run.restore["metadata"].get("labels") or {}
    spec = vm.setdefault("spec", {})
    if RESTORE_RUN_STRATEGY in labels:
        spec["runStrategy"] = labels[RESTORE_RUN_STRATEGY]
        spec.pop("running", None)
    template = (spec.get("template") or {}).get("spec") or {}
    if CLEAR_MAC_LABEL in labels:
        for interface in (template.get("domain") or {}).get("devices", {}).get("interfaces") or []:
            interface.pop("macAddress", None)
    if NEW_FIRMWARE_UUID_LABEL in labels:
        firmware = template.setdefault("domain", {}).setdefault("firmware", {})
        firmware["uuid"] = str(uuid.uuid4())
    namespace = vm["metadata"]["namespace"]
    graph = _instancetype_revisions(vm) + _volume_graph(template, namespace) + \
        _backend_pvcs(run, template, vm["metadata"]["name"], namespace)
    return vm, [(gr, namespace, name) for gr, _ns, name in graph], False


def velero_pvc_restore_action(_run: RestoreRun, pvc: JSON):
    """Velero's pkg/restore/actions/pvc_action.go PVCAction Execute: without a node mapping (no ConfigMap labelled
    velero.io/change-pvc-node-selector in the lab) the selected-node annotation is cleared; the bind, provisioner,
    volume-snapshot and data-upload annotations are removed."""
    annotations = pvc["metadata"].get("annotations") or {}
    for key in ("volume.kubernetes.io/selected-node", "pv.kubernetes.io/bind-completed",
                "pv.kubernetes.io/bound-by-controller", "volume.kubernetes.io/storage-provisioner",
                "volume.beta.kubernetes.io/storage-provisioner", "velero.io/volume-snapshot-name",
                "velero.io/data-upload-name"):
        annotations.pop(key, None)
    return pvc, [], False


def pvc_restore_action(_run: RestoreRun, pvc: JSON):
    """pvc_restore_item_action.go: a claim whose DataVolume was still in progress is skipped; uid labels undone."""
    meta = pvc["metadata"]
    annotations = meta.get("annotations") or {}
    if ANN_IN_PROGRESS in annotations:
        return pvc, [], True
    labels = meta.get("labels") or {}
    if PVC_UID_LABEL in labels:
        if ORIGINAL_PVC_UID_ANN in annotations:
            labels[PVC_UID_LABEL] = annotations.pop(ORIGINAL_PVC_UID_ANN)
        else:
            del labels[PVC_UID_LABEL]
    return pvc, [], False


class VeleroServer:
    def __init__(self, manager: Manager, kube: Kube, store: ObjectStore):
        self.kube, self.store = kube, store
        self._resources: Optional[Dict[str, Resource]] = None
        self.locations = manager.informer("velero-bsl", object_path(API, "backupstoragelocations", namespace=NAMESPACE),
                                          ("VeleroBackupStorageLocation", "VeleroBackupSync"))
        self.last_sync: Dict[str, float] = {}
        self.backups = manager.informer("velero-backups", object_path(API, "backups", namespace=NAMESPACE),
                                        ("VeleroBackup",))
        self.restores = manager.informer("velero-restores", object_path(API, "restores", namespace=NAMESPACE),
                                         ("VeleroRestore",))
        self.downloads = manager.informer("velero-downloads", object_path(API, "downloadrequests", namespace=NAMESPACE),
                                          ("VeleroDownloadRequest",))
        manager.reconciler("VeleroBackupStorageLocation", self.reconcile_location)
        manager.reconciler("VeleroBackupSync", self.reconcile_sync)
        manager.reconciler("VeleroBackup", self.reconcile_backup)
        manager.reconciler("VeleroRestore", self.reconcile_restore)
        self.deletions = manager.informer("velero-deletions",
                                          object_path(API, "deletebackuprequests", namespace=NAMESPACE),
                                          ("VeleroDeleteBackupRequest",))
        manager.reconciler("VeleroDownloadRequest", self.reconcile_download)
        manager.reconciler("VeleroDeleteBackupRequest", self.reconcile_deletion)

    def get(self, path: str, **params) -> JSON:
        """A read, retried while the apiserver answers 429 (client-go's rate-limit retries; a CRD just
        registered answers "storage is (re)initializing" for a moment)."""
        for attempt in range(40):
            try:
                return self.kube.get(path, **params)
            except KubeError as err:
                if err.status != 429 or attempt == 39:
                    raise
                time.sleep(0.25)
        raise AssertionError("unreachable")

    def resources(self) -> Dict[str, Resource]:
        # discovery is refreshed for every backup and restore (a CRD may have been added since)
        return discover(self.kube)

    @staticmethod
    def backup_actions(resource: Resource):
        by_kind = {"VirtualMachine": [vm_backup_action], "VirtualMachineInstance": [vmi_backup_action],
                   "DataVolume": [dv_backup_action],
                   "PersistentVolumeClaim": [pv_backup_action, dv_backup_action, pvc_backup_action],
                   "Pod": [pod_backup_action]}
        return by_kind.get(resource.kind, [])

    @staticmethod
    def restore_actions(resource: Resource):
        by_kind = {"VirtualMachine": [vm_restore_action], "VirtualMachineInstance": [vmi_restore_action],
                   "Pod": [pod_restore_action], "PersistentVolumeClaim": [velero_pvc_restore_action, pvc_restore_action]}
        return by_kind.get(resource.kind, [])

    def _path(self, plural: str, name: str) -> str:
        return object_path(API, plural, name, NAMESPACE)

    def _patch_status(self, plural: str, obj: JSON, status: JSON, labels: Optional[JSON] = None) -> None:
        patch: JSON = {"metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]}, "status": status}
        if labels:
            patch["metadata"]["labels"] = labels
        # Velero's CRDs have no status subresource: the whole object is patched (kubeutil.PatchResource)
        self.kube.merge_patch(self._path(plural, obj["metadata"]["name"]), patch)

    # -- BackupStorageLocation ---------------------------------------------------------------------------

    def _validate_store(self, location: JSON) -> Optional[str]:
        """object_store.go IsValid: the bucket lists, and its prefix has only Velero's top-level directories."""
        spec = location.get("spec") or {}
        storage = spec.get("objectStorage") or {}
        bucket, prefix = storage.get("bucket", ""), storage.get("prefix", "")
        if spec.get("provider") not in ("aws", "velero.io/aws"):
            return f'unable to locate ObjectStore plugin named velero.io/{spec.get("provider")}'
        prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""  # object_store.go:137 strings.Trim
        try:
            dirs = self.store.list_common_prefixes(bucket, prefix)
        except NoSuchBucket as err:
            return f"rpc error: code = Unknown desc = {err}"
        invalid = [d[len(prefix):].rstrip("/") for d in dirs if d[len(prefix):].rstrip("/") not in SUBDIRS]
        if len(invalid) > 3:  # Go's %v of a []string: [a b c ...]
            return f"Backup store contains {len(invalid)} invalid top-level directories: [{' '.join(invalid[:3])} ...]"
        if invalid:
            return f"Backup store contains invalid top-level directories: [{' '.join(invalid)}]"
        return None

    def reconcile_location(self, namespace: str, name: str) -> Optional[float]:
        """backup_storage_location_controller.go Reconcile."""
        location = self.locations.get(namespace, name)
        if location is None:
            return None
        spec, status = location.get("spec") or {}, location.get("status") or {}
        frequency = VALIDATION_FREQUENCY
        if spec.get("validationFrequency"):
            try:
                frequency = parse_duration(spec["validationFrequency"])
            except ValueError:
                pass
        if frequency == 0:
            return None  # validation disabled
        last = status.get("lastValidationTime")
        if last and time.time() - parse_time(last) < frequency and status.get("phase"):
            return frequency - (time.time() - parse_time(last))
        error = self._validate_store(location)
        new = {"lastValidationTime": now(), "phase": "Unavailable" if error else "Available",
               "message": f'BackupStorageLocation "{name}" is unavailable: {error}' if error else ""}
        self._patch_status("backupstoragelocations", location, new)
        return frequency

    def reconcile_sync(self, namespace: str, name: str) -> Optional[float]:
        """backup_sync_controller.go Reconcile: backups in the location's store that the cluster lacks are created
        from their velero-backup.json (resourceVersion cleared, labelled with the location; a Finalizing one only once
        expired, as PartiallyFailed), and a Completed or PartiallyFailed backup of the location that the store no
        longer holds is deleted (deleteOrphanedBackups). Every backupSyncPeriod (server default 1m, 0 disables)."""
        location = self.locations.get(namespace, name)
        if location is None:
            self.last_sync.pop(name, None)
            return None
        period = 60.0
        if (location.get("spec") or {}).get("backupSyncPeriod"):
            try:
                period = parse_duration(location["spec"]["backupSyncPeriod"])
            except ValueError:
                period = 60.0
        if period == 0:
            return None
        since = time.time() - self.last_sync.get(name, 0.0)
        if since < period:
            return period - since
        self.last_sync[name] = time.time()
        if (location.get("status") or {}).get("phase") != "Available":
            return period
        bucket, prefix = self._bucket_prefix(location)
        try:
            stored = {d[len(prefix) + len("backups/"):].rstrip("/")
                      for d in self.store.list_common_prefixes(bucket, f"{prefix}backups/")}
        except NoSuchBucket:
            return period
        in_cluster = {b["metadata"]["name"]: b for b in self.backups.list()}
        for backup_name in sorted(stored - set(in_cluster)):
            key = f"{prefix}backups/{backup_name}/velero-backup.json"
            if not self.store.object_exists(bucket, key):
                continue
            backup = json.loads(self.store.get_object(bucket, key))
            status = backup.get("status") or {}
            if status.get("phase") in ("WaitingForPluginOperations", "WaitingForPluginOperationsPartiallyFailed",
                                       "Finalizing", "FinalizingPartiallyFailed"):
                if not status.get("expiration") or parse_time(status["expiration"]) > time.time():
                    continue
                status["phase"] = "PartiallyFailed"
            meta = backup["metadata"]
            backup["metadata"] = {"name": backup_name, "namespace": NAMESPACE,
                                  "labels": dict(meta.get("labels") or {},
                                                 **{STORAGE_LOCATION_LABEL: backup["spec"].get("storageLocation", "")}),
                                  "annotations": meta.get("annotations") or {}}
            try:
                self.kube.create(object_path(API, "backups", namespace=NAMESPACE), backup)
            except KubeError as err:
                if err.status != 409:
                    log.warning("syncing backup %s: %s", backup_name, err)
        for backup_name, backup in in_cluster.items():
            labels = backup["metadata"].get("labels") or {}
            if labels.get(STORAGE_LOCATION_LABEL) != name or backup_name in stored:
                continue
            if (backup.get("status") or {}).get("phase") in ("Completed", "PartiallyFailed"):
                self.kube.delete(self._path("backups", backup_name))
        return period

    def _location(self, name: str) -> Optional[JSON]:
        return self.locations.get(NAMESPACE, name)

    @staticmethod
    def _bucket_prefix(location: JSON) -> Tuple[str, str]:
        storage = (location.get("spec") or {}).get("objectStorage") or {}
        prefix = storage.get("prefix", "").strip("/")  # object_store.go:136-137: trimmed of "/" at both ends
        return storage.get("bucket", "").strip("/"), (prefix + "/" if prefix else "")

    # -- Backup ------------------------------------------------------------------------------------------

    def reconcile_backup(self, namespace: str, name: str) -> Optional[float]:
        backup = self.backups.get(namespace, name)
        if backup is None:
            return None
        phase = (backup.get("status") or {}).get("phase", "")
        if phase in ("", "New"):
            return self._start_backup(backup)
        if phase == "InProgress":
            return self._run_backup(backup)
        if phase in ("Finalizing", "FinalizingPartiallyFailed"):
            return self._finalize_backup(backup)
        return self._collect_garbage(backup)

    def _collect_garbage(self, backup: JSON) -> Optional[float]:
        """gc_controller.go Reconcile: an expired backup gets a DeleteBackupRequest (delete_helpers.go
        NewDeleteBackupRequest: generateName <backup>-, labels backup-name and backup-uid)."""
        expiration = (backup.get("status") or {}).get("expiration")
        if not expiration or (backup.get("status") or {}).get("phase") == "Deleting":
            return None
        left = parse_time(expiration) - time.time()
        if left > 0:
            return min(left + 0.5, 3600.0)  # looked at again when it expires (Velero's GC runs every hour)
        meta = backup["metadata"]
        pending = [d for d in self.deletions.list() if (d.get("spec") or {}).get("backupName") == meta["name"]
                   and (d.get("status") or {}).get("phase") != "Processed"]
        if not pending:
            self.kube.create(object_path(API, "deletebackuprequests", namespace=NAMESPACE), {
                "apiVersion": API, "kind": "DeleteBackupRequest",
                "metadata": {"generateName": f"{meta['name']}-", "namespace": NAMESPACE,
                             "labels": {BACKUP_NAME_LABEL: valid_label_name(meta["name"]),
                                        BACKUP_UID_LABEL: meta["uid"]}},
                "spec": {"backupName": meta["name"]}})
        return None

    def _start_backup(self, backup: JSON) -> Optional[float]:
        """backup_controller.go prepareBackupRequest + the patch to InProgress or FailedValidation: a zero ttl takes
        the server's --default-backup-ttl (:365), namespaces labelled exclude-from-backup are appended to
        spec.excludedNamespaces (:480-488), the resource lists are validated and the CSI VolumeSnapshot resources
        appended to spec.excludedResources (:500-512, modifyResourceIncludeExclude), the namespace lists validated
        (:548); the changed spec is written back with the status (kubeutil.PatchResource)."""
        spec = json.loads(json.dumps(backup.get("spec") or {}))
        errors: List[str] = []
        ttl = spec.get("ttl")
        try:
            ttl_seconds = parse_duration(ttl) if ttl else 0.0
        except ValueError:
            # a ttl Go cannot parse fails to decode in Velero's informer: the backup is never processed
            log.warning("backup %s: ttl %r is not a duration", backup["metadata"]["name"], ttl)
            return None
        if ttl_seconds == 0:
            ttl_seconds = DEFAULT_TTL
        spec["ttl"] = go_duration(ttl_seconds)  # the patch writes the Duration back in Go's form
        location_name = spec.get("storageLocation") or ""
        server_specified = not location_name
        if server_specified:
            location_name = "default"
            for location in self.locations.list():
                if (location.get("spec") or {}).get("default"):
                    location_name = location["metadata"]["name"]
                    break
        spec["storageLocation"] = location_name
        location = self._location(location_name)
        if location is None:
            if server_specified:
                errors.append(f"an existing backup storage location was not specified at backup creation time and "
                              f"the default {location_name} was not found. Please address this issue (see `velero "
                              f"backup-location -h` for options) and create a new backup. Error: "
                              f'backupstoragelocations.velero.io "{location_name}" not found')
            else:
                errors.append(f'error getting backup storage location: backupstoragelocations.velero.io '
                              f'"{location_name}" not found')
        else:
            if (location.get("spec") or {}).get("accessMode") == "ReadOnly":
                errors.append(f"backup can't be created because backup storage location {location_name} is "
                              f"currently in read-only mode")
            if (location.get("status") or {}).get("phase") != "Available":
                errors.append(f"backup can't be created because BackupStorageLocation {location_name} is in "
                              f"Unavailable status.")
        labelled = self.kube.get(object_path("v1", "namespaces"), labelSelector=f"{EXCLUDE_LABEL}=true")
        for ns in labelled.get("items", []):
            spec["excludedNamespaces"] = (spec.get("excludedNamespaces") or []) + [ns["metadata"]["name"]]
        resource_errors = validate_includes_excludes(spec.get("includedResources"), spec.get("excludedResources"))
        errors += [f"Invalid included/excluded resource lists: {e}" for e in resource_errors]
        if not resource_errors:
            spec["includedResources"], spec["excludedResources"] = modify_resource_include_exclude(
                spec.get("includedResources"), spec.get("excludedResources"), AUTO_EXCLUDED_RESOURCES)
        errors += [f"Invalid included/excluded namespace lists: {e}" for e in
                   validate_namespace_includes_excludes(spec.get("includedNamespaces"), spec.get("excludedNamespaces"))]
        if spec.get("labelSelector") and spec.get("orLabelSelectors"):
            errors.append("encountered labelSelector as well as orLabelSelectors in backup spec, only one can be "
                          "specified")
        status = dict(backup.get("status") or {})
        status.update(version=BACKUP_VERSION, formatVersion=FORMAT_VERSION, expiration=after(ttl_seconds))
        if errors:
            status.update(phase="FailedValidation", validationErrors=errors)
        else:
            status.update(phase="InProgress", startTimestamp=now())
        labels = {STORAGE_LOCATION_LABEL: location_name}
        patch: JSON = {"metadata": {"resourceVersion": backup["metadata"]["resourceVersion"], "labels": labels},
                       "spec": spec, "status": status}
        self.kube.merge_patch(self._path("backups", backup["metadata"]["name"]), patch)
        return None

    def _run_backup(self, backup: JSON) -> Optional[float]:
        """backup_controller.go runBackup: items into the tarball, the files of the backup into the store."""
        name = backup["metadata"]["name"]
        location = self._location(backup["spec"].get("storageLocation", ""))
        status = dict(backup.get("status") or {})
        if location is None:
            status.update(phase="Failed", completionTimestamp=now(), failureReason="backup storage location is gone")
            self._patch_status("backups", backup, status)
            return None
        bucket, prefix = self._bucket_prefix(location)
        base = f"{prefix}backups/{name}/"
        if self.store.object_exists(bucket, f"{base}velero-backup.json"):
            status.update(phase="Failed", completionTimestamp=now(),
                          failureReason="backup already exists in object storage")
            self._patch_status("backups", backup, status)
            return None
        run = BackupRun(self, backup, self.resources())
        tarball, resource_list = run.run()
        error_count = sum(len(v) for v in run.errors.get("namespaces", {}).values()) + len(run.errors.get("velero", []))
        warning_count = sum(len(v) for v in run.warnings.get("namespaces", {}).values()) + \
            len(run.warnings.get("velero", []))
        # backup.go:617: at the end both counts are BackedUpItems.Len()
        status.update(progress={"totalItems": len(run.backed_up), "itemsBackedUp": len(run.backed_up)},
                      warnings=warning_count, errors=error_count,
                      phase="FinalizingPartiallyFailed" if error_count else "Finalizing")
        stored = json.loads(json.dumps(backup))
        stored["status"] = status
        stored["metadata"].pop("managedFields", None)
        self.store.put_object(bucket, f"{base}{name}.tar.gz", tarball)
        self.store.put_object(bucket, f"{base}{name}-resource-list.json.gz", gzip_json(resource_list))
        self.store.put_object(bucket, f"{base}{name}-results.gz",
                              gzip_json({"warnings": run.warnings, "errors": run.errors}))
        self.store.put_object(bucket, f"{base}{name}-logs.gz", gzip.compress("\n".join(run.logs).encode()))
        self.store.put_object(bucket, f"{base}{name}-volumesnapshots.json.gz", gzip_json([]))
        self.store.put_object(bucket, f"{base}velero-backup.json", json.dumps(stored).encode())
        self._patch_status("backups", backup, status)
        return None

    def _finalize_backup(self, backup: JSON) -> Optional[float]:
        """backup_finalizer_controller.go Reconcile: the terminal phase, and the metadata uploaded again."""
        status = dict(backup.get("status") or {})
        status.update(phase="PartiallyFailed" if status["phase"] == "FinalizingPartiallyFailed" else "Completed",
                      completionTimestamp=now())
        location = self._location(backup["spec"].get("storageLocation", ""))
        if location is not None:
            bucket, prefix = self._bucket_prefix(location)
            stored = json.loads(json.dumps(backup))
            stored["status"] = status
            stored["metadata"].pop("managedFields", None)
            name = backup["metadata"]["name"]
            self.store.put_object(bucket, f"{prefix}backups/{name}/velero-backup.json", json.dumps(stored).encode())
        self._patch_status("backups", backup, status)
        return None

    # -- Restore -----------------------------------------------------------------------------------------

    def reconcile_restore(self, namespace: str, name: str) -> Optional[float]:
        restore = self.restores.get(namespace, name)
        if restore is None:
            return None
        phase = (restore.get("status") or {}).get("phase", "")
        if phase in ("", "New"):
            return self._start_restore(restore)
        if phase == "InProgress":
            return self._run_restore(restore)
        if phase in ("Finalizing", "FinalizingPartiallyFailed"):
            status = dict(restore["status"])
            # restore_finalizer_controller.go: the terminal phase
            status.update(phase="PartiallyFailed" if status["phase"] == "FinalizingPartiallyFailed" else "Completed",
                          completionTimestamp=now())
            self._patch_status("restores", restore, status)
        return None

    def _start_restore(self, restore: JSON) -> Optional[float]:
        """restore_controller.go validateAndComplete: the non-restorable resources are appended to the restore's
        excludedResources (and persisted with the status), then the checks."""
        spec = restore.get("spec") or {}
        errors: List[str] = []
        excluded = list(spec.get("excludedResources") or [])
        excluded += [r for r in NON_RESTORABLE if r not in excluded]
        for resource in spec.get("includedResources") or []:
            if resource in NON_RESTORABLE:
                errors.append(f"{resource} are non-restorable resources")
        # restore_controller.go:324-331 ValidateIncludesExcludes, after the non-restorable resources were appended
        errors += [f"Invalid included/excluded resource lists: {e}"
                   for e in validate_includes_excludes(spec.get("includedResources"), excluded)]
        errors += [f"Invalid included/excluded namespace lists: {e}"
                   for e in validate_includes_excludes(spec.get("includedNamespaces"), spec.get("excludedNamespaces"))]
        if spec.get("labelSelector") and spec.get("orLabelSelectors"):
            errors.append("encountered labelSelector as well as orLabelSelectors in restore spec, only one can be "
                          "specified")
        if bool(spec.get("backupName")) == bool(spec.get("scheduleName")):
            errors.append("Either a backup or schedule must be specified as a source for the restore, but not both")
        policy = spec.get("existingResourcePolicy")
        if policy and policy not in ("none", "update"):
            errors.append(f"Invalid ExistingResourcePolicy: {policy}")
        backup = self.backups.get(NAMESPACE, spec.get("backupName") or "") if spec.get("backupName") else None
        if spec.get("backupName") and backup is None:
            errors.append(f'Error retrieving backup: backups.velero.io "{spec["backupName"]}" not found')
        elif backup is not None:
            location = self._location(backup["spec"].get("storageLocation", ""))
            if location is None or (location.get("status") or {}).get("phase") != "Available":
                errors.append(f"The BSL {backup['spec'].get('storageLocation')} is unavailable, cannot retrieve the "
                              f"backup")
        status = dict(restore.get("status") or {})
        if errors:
            status.update(phase="FailedValidation", validationErrors=errors)
        else:
            status.update(phase="InProgress", startTimestamp=now())
        self.kube.merge_patch(self._path("restores", restore["metadata"]["name"]), {
            "metadata": {"resourceVersion": restore["metadata"]["resourceVersion"]},
            "spec": {"excludedResources": excluded}, "status": status})
        return None

    def _run_restore(self, restore: JSON) -> Optional[float]:
        """restore_controller.go runValidatedRestore with pkg/restore/restore.go execute."""
        name = restore["metadata"]["name"]
        backup = self.backups.get(NAMESPACE, restore["spec"]["backupName"])
        status = dict(restore.get("status") or {})
        location = self._location(backup["spec"].get("storageLocation", "")) if backup else None
        if backup is None or location is None:
            status.update(phase="Failed", completionTimestamp=now(), failureReason="backup or its location is gone")
            self._patch_status("restores", restore, status)
            return None
        bucket, prefix = self._bucket_prefix(location)
        backup_name = backup["metadata"]["name"]
        try:
            tarball = self.store.get_object(bucket, f"{prefix}backups/{backup_name}/{backup_name}.tar.gz")
        except (OSError, NoSuchBucket) as err:
            status.update(phase="Failed", completionTimestamp=now(), failureReason=f"error downloading backup: {err}")
            self._patch_status("restores", restore, status)
            return None
        run = RestoreRun(self, restore, backup, tarball, self.resources())
        run.run()
        counts = {k: sum(len(v) for v in t.get("namespaces", {}).values()) + len(t.get("cluster", []))
                  for k, t in (("warnings", run.warnings), ("errors", run.errors))}
        restored = sum(1 for action in run.restored.values() if action in ("created", "updated", "skipped"))
        status.update(progress={"totalItems": run.total, "itemsRestored": min(restored, run.total)},
                      warnings=counts["warnings"], errors=counts["errors"],
                      phase="FinalizingPartiallyFailed" if counts["errors"] else "Finalizing")
        base = f"{prefix}restores/{name}/"
        self.store.put_object(bucket, f"{base}restore-{name}-results.gz",
                              gzip_json({"warnings": run.warnings, "errors": run.errors}))
        self.store.put_object(bucket, f"{base}restore-{name}-resource-list.json.gz", gzip_json(run.resource_list()))
        self.store.put_object(bucket, f"{base}restore-{name}-logs.gz", gzip.compress("\n".join(run.logs).encode()))
        self._patch_status("restores", restore, status)
        return None

    # -- DownloadRequest ---------------------------------------------------------------------------------

    def reconcile_download(self, namespace: str, name: str) -> Optional[float]:
        """download_request_controller.go Reconcile."""
        request = self.downloads.get(namespace, name)
        if request is None:
            return None
        status = request.get("status") or {}
        expiration = status.get("expiration")
        if expiration and parse_time(expiration) <= time.time():
            self.kube.delete(self._path("downloadrequests", name))  # expired, whatever the phase
            return None
        if status.get("phase") == "Processed":
            return max(1.0, parse_time(expiration) - time.time()) if expiration else None
        target = (request.get("spec") or {}).get("target") or {}
        kind, target_name = target.get("kind", ""), target.get("name", "")

        def not_found() -> Optional[float]:
            # download_request_controller.go: the restore, backup or location NotFound is logged and not retried;
            # the deferred patch has set status.expiration, and the request is deleted once that passes
            if not expiration:
                self._patch_status("downloadrequests", request, {"expiration": after(DOWNLOAD_URL_TTL)})
                return DOWNLOAD_URL_TTL + 1.0
            return max(1.0, parse_time(expiration) - time.time() + 1.0)

        backup_name = target_name
        if kind.startswith("Restore"):
            restore = self.restores.get(NAMESPACE, target_name)
            if restore is None:
                return not_found()  # "fail to get restore for DownloadRequest"
            backup_name = restore["spec"].get("backupName", "")
        backup = self.backups.get(NAMESPACE, backup_name)
        if backup is None:
            return not_found()  # "fail to get backup for DownloadRequest"
        location = self._location(backup["spec"].get("storageLocation", ""))
        if location is None:
            return not_found()  # "BSL for DownloadRequest cannot be found"
        bucket, prefix = self._bucket_prefix(location)
        keys = {  # object_store.go GetDownloadURL with object_store_layout.go
            "BackupContents": f"backups/{target_name}/{target_name}.tar.gz",
            "BackupLog": f"backups/{target_name}/{target_name}-logs.gz",
            "BackupVolumeSnapshots": f"backups/{target_name}/{target_name}-volumesnapshots.json.gz",
            "BackupResourceList": f"backups/{target_name}/{target_name}-resource-list.json.gz",
            "BackupResults": f"backups/{target_name}/{target_name}-results.gz",
            "RestoreLog": f"restores/{target_name}/restore-{target_name}-logs.gz",
            "RestoreResults": f"restores/{target_name}/restore-{target_name}-results.gz",
            "RestoreResourceList": f"restores/{target_name}/restore-{target_name}-resource-list.json.gz",
        }
        if kind not in keys:
            # GetDownloadURL's "unsupported download target kind" is returned: retried with backoff, unprocessed
            return 5.0
        new = {"phase": "Processed", "downloadURL": self.store.create_signed_url(bucket, prefix + keys[kind],
                                                                                 DOWNLOAD_URL_TTL),
               "expiration": after(DOWNLOAD_URL_TTL)}
        self._patch_status("downloadrequests", request, new)
        return DOWNLOAD_URL_TTL

    # -- DeleteBackupRequest ----------------------------------------------------------------------------

    def _processed(self, request: JSON, errors: List[str]) -> None:
        """backup_deletion_controller.go patchDeleteBackupRequestWithError / the final patch: Processed, errors."""
        self._patch_status("deletebackuprequests", request, {"phase": "Processed", "errors": errors})

    def reconcile_deletion(self, namespace: str, name: str) -> Optional[float]:
        """backup_deletion_controller.go Reconcile."""
        request = self.deletions.get(namespace, name)
        if request is None or (request.get("status") or {}).get("phase") in ("Processed", "InProgress"):
            return None
        backup_name = (request.get("spec") or {}).get("backupName")
        if not backup_name:
            self._processed(request, ["spec.backupName is required"])
            return None
        # deleteExistingDeletionRequests: other requests for the backup are deleted first, one at a time
        for other in self.kube.get(object_path(API, "deletebackuprequests", namespace=NAMESPACE),
                                   labelSelector=f"{BACKUP_NAME_LABEL}={valid_label_name(backup_name)}").get("items", []):
            if other["metadata"]["name"] != name:
                self.kube.delete(self._path("deletebackuprequests", other["metadata"]["name"]))
        backup = self.backups.get(NAMESPACE, backup_name)
        # backupTracker.Contains: a backup the backup controller has taken on and not finished (InProgress, waiting for
        # plugin operations, finalizing); a New one is not tracked yet
        if backup is not None and (backup.get("status") or {}).get("phase", "") in IN_PROGRESS_PHASES:
            self._processed(request, ["backup is still in progress"])
            return None
        if backup is None:
            self._processed(request, ["backup not found"])
            return None
        location_name = backup["spec"].get("storageLocation", "")
        location = self._location(location_name)
        if location is None:
            self._processed(request, [f"backup storage location {location_name} not found"])
            return None
        if (location.get("spec") or {}).get("accessMode") == "ReadOnly":
            self._processed(request, [f"cannot delete backup because backup storage location {location_name} is "
                                      f"currently in read-only mode"])
            return None
        if (location.get("status") or {}).get("phase") != "Available":
            self._processed(request, [f"cannot delete backup because backup storage location {location_name} is "
                                      f"currently in Unavailable state"])
            return None
        labels = {BACKUP_NAME_LABEL: valid_label_name(backup_name), BACKUP_UID_LABEL: backup["metadata"]["uid"]}
        self.kube.merge_patch(self._path("deletebackuprequests", name), {
            "metadata": {"resourceVersion": request["metadata"]["resourceVersion"], "labels": labels},
            "status": {"phase": "InProgress"}})
        self.kube.merge_patch(self._path("backups", backup_name), {"status": {"phase": "Deleting"}})
        errors: List[str] = []
        bucket, prefix = self._bucket_prefix(location)
        try:  # object_store.go DeleteBackup: every object under backups/<name>/
            for key in self.store.list_objects(bucket, f"{prefix}backups/{backup_name}/"):
                self.store.delete_object(bucket, key)
        except (OSError, NoSuchBucket) as err:
            errors.append(str(err))
        for restore in self.restores.list():  # "Removing restores": those referencing the backup
            if (restore.get("spec") or {}).get("backupName") == backup_name:
                restore_name = restore["metadata"]["name"]
                try:
                    for key in self.store.list_objects(bucket, f"{prefix}restores/{restore_name}/"):
                        self.store.delete_object(bucket, key)
                    self.kube.delete(self._path("restores", restore_name))
                except (KubeError, OSError, NoSuchBucket) as err:
                    errors.append(f"error deleting restore {NAMESPACE}/{restore_name}: {err}")
        if not errors:  # "Only try to delete the backup object from kube if everything preceding went smoothly"
            try:
                self.kube.delete(self._path("backups", backup_name))
            except KubeError as err:
                errors.append(f"error deleting backup {NAMESPACE}/{backup_name}: {err}")
        current = self.kube.get_or_none(self._path("deletebackuprequests", name))
        if current is not None:
            self._processed(current, errors)
        if not errors:  # "delete all DeleteBackupRequests for this backup"
            selector = f"{BACKUP_NAME_LABEL}={valid_label_name(backup_name)},{BACKUP_UID_LABEL}={backup['metadata']['uid']}"
            for other in self.kube.get(object_path(API, "deletebackuprequests", namespace=NAMESPACE),
                                       labelSelector=selector).get("items", []):
                self.kube.delete(self._path("deletebackuprequests", other["metadata"]["name"]))
        return None


def register(manager: Manager, kube: Kube, state_dir) -> VeleroServer:
    store = ObjectStore(state_dir / "velero-objects")
    store.make_bucket("velero")
    store.serve()
    return VeleroServer(manager, kube, store)
