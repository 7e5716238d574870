# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What velero_backup and velero_restore share: Velero's API, input checks, the wait and the read of a backup's
or restore's files.

Velero keeps a backup's item list and its warnings in object storage, not in the Backup's status; its CLI reads
them through a DownloadRequest (`velero backup describe --details`: BackupResourceList, BackupResults), which the
Velero server answers with a signed URL. The modules do the same, then delete the DownloadRequest.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import gzip
import hashlib
import json
import re
import uuid

from ansible_collections.palette.vmo.plugins.module_utils.common.errors import ModuleFailure
from ansible_collections.palette.vmo.plugins.module_utils.kube.client import KubeApiError, object_path
from ansible_collections.palette.vmo.plugins.module_utils.kube.wait import WaitTarget, WaitTimeout, wait_for

try:
    import urllib3

    HAS_URLLIB3 = True
except ImportError:  # pragma: no cover - urllib3 comes with the kubernetes library
    HAS_URLLIB3 = False

API_VERSION = "velero.io/v1"
INVALID_INPUT = "invalid input, nothing was changed: "
REFUSED = "refused, nothing was changed: "
NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
DURATION = re.compile(r"^([0-9]+(\.[0-9]+)?(ns|us|ms|h|m|s))+$")
SELECTOR_TERM = re.compile(r"^\s*(!?)([A-Za-z0-9][-A-Za-z0-9_./]*)\s*(?:(==|=|!=)\s*([-A-Za-z0-9_.]*)|\s+(in|notin)\s*"
                           r"\(([^()]*)\))?\s*$")
# Phases after which Velero does nothing more with a backup or restore (pkg/apis/velero/v1/backup_types.go,
# restore_types.go)
FINAL_PHASES = ("Completed", "PartiallyFailed", "Failed", "FailedValidation")
RESTORABLE_PHASES = ("Completed", "PartiallyFailed")
# pkg/controller/restore_controller.go nonRestorableResources: validateAndComplete appends them to every restore's
# excludedResources
NON_RESTORABLE = ("nodes", "events", "events.events.k8s.io", "backups.velero.io", "restores.velero.io",
                  "resticrepositories.velero.io", "csinodes.storage.k8s.io", "volumeattachments.storage.k8s.io",
                  "backuprepositories.velero.io")


# pkg/controller/backup_controller.go autoExcludeNamespaceScopedResources + autoExcludeClusterScopedResources:
# prepareBackupRequest appends them to every backup's excludedResources (and drops them from includedResources)
AUTO_EXCLUDED_RESOURCES = ("volumesnapshots.snapshot.storage.k8s.io", "volumesnapshotcontents.snapshot.storage.k8s.io")
EXCLUDE_LABEL = "velero.io/exclude-from-backup"
DEFAULT_LOCATION = "default"  # velero server --default-backup-storage-location
DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


# backup_deletion_controller.go: backupTracker holds a backup from InProgress until it has finished; Velero refuses
# to delete it meanwhile ("backup is still in progress")
IN_PROGRESS_PHASES = ("InProgress", "WaitingForPluginOperations", "WaitingForPluginOperationsPartiallyFailed",
                      "Finalizing", "FinalizingPartiallyFailed")


def valid_label_name(name):
    """pkg/label/label.go GetValidName: a name over 63 characters as a label value (57 characters and 6 of its
    sha256)."""
    if len(name) <= 63:
        return name
    return name[:57] + hashlib.sha256(name.encode("utf-8")).hexdigest()[:6]


def valid_name(name):
    return bool(name) and len(name) <= 253 and NAME.match(name) is not None


def valid_namespace(name):
    return bool(name) and NAMESPACE.match(name) is not None


def valid_duration(value):
    """Go's time.ParseDuration forms metav1.Duration takes: 720h, 1h30m, 90m, 0.5h."""
    return bool(value) and DURATION.match(value) is not None


def duration_seconds(value):
    """A Go duration in seconds (Velero writes a backup's ttl back in Go's form: 720h becomes 720h0m0s)."""
    return sum(float(number) * DURATION_UNITS[unit]
               for number, _fraction, unit in re.findall(r"([0-9]+(\.[0-9]+)?)(ns|us|ms|h|m|s)", value or ""))


def includes_excludes_errors(option, includes, excludes, exclude_option):
    """pkg/util/collections/includes_excludes.go ValidateIncludesExcludes: what makes Velero fail a backup's
    validation, worded for the module's options."""
    errors = []
    includes, excludes = list(includes or []), list(excludes or [])
    if len(set(includes)) > 1 and "*" in includes:
        errors.append("%s: '*' must be the only entry (Velero refuses '*' with other entries)" % option)
    if "*" in excludes:
        errors.append("%s: '*' cannot be excluded (Velero refuses it)" % exclude_option)
    for item in sorted(set(excludes) & set(includes)):
        errors.append("%s: %r is also in %s" % (exclude_option, item, option))
    return errors


def parse_label_selector(text):
    """A label selector string (as kubectl and `velero backup create --selector` take it) as a metav1.LabelSelector;
    raises ValueError naming the term it cannot read."""
    selector = {"matchLabels": {}, "matchExpressions": []}
    for term in _split_terms(text):
        match = SELECTOR_TERM.match(term)
        if not match or (match.group(1) and (match.group(3) or match.group(5))):
            raise ValueError("cannot read %r" % term.strip())
        negated, key, op, value, set_op, values = match.groups()
        if set_op:
            selector["matchExpressions"].append({"key": key, "operator": "In" if set_op == "in" else "NotIn",
                                                 "values": [v.strip() for v in values.split(",") if v.strip()]})
        elif op in ("=", "=="):
            selector["matchLabels"][key] = value
        elif op == "!=":
            selector["matchExpressions"].append({"key": key, "operator": "NotIn", "values": [value]})
        else:
            selector["matchExpressions"].append({"key": key, "operator": "DoesNotExist" if negated else "Exists"})
    return {k: v for k, v in selector.items() if v}


def _split_terms(text):
    terms, depth, current = [], 0, ""
    for char in text or "":
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    terms.append(current)
    if not text or any(not t.strip() for t in terms):
        raise ValueError("cannot read %r" % text)
    return terms


def velero_path(plural, namespace, name=None):
    return object_path(API_VERSION, plural, name, namespace)


def read_velero(client, plural, namespace, name):
    """The object, or None when it does not exist; a cluster without Velero's API is said plainly."""
    try:
        return client.get(velero_path(plural, namespace, name))
    except KubeApiError as err:
        if err.status != 404:
            raise
    ensure_served(client)
    return None


def ensure_served(client):
    try:
        client.get("/apis/%s" % API_VERSION)
    except KubeApiError as err:
        if err.status == 404:
            raise ModuleFailure(REFUSED + "the cluster does not serve %s: is Velero installed?" % API_VERSION,
                                ["%s: not served" % API_VERSION])
        raise


def location_problem(client, velero_namespace, name, option):
    """What keeps a backup from being written to a BackupStorageLocation (backup_controller.go prepareBackupRequest),
    or None; `name` None means the default location."""
    if name is None:
        # prepareBackupRequest: the location marked default, else the server's default name, "default"
        locations = client.list_all(velero_path("backupstoragelocations", velero_namespace))[0]
        defaults = [loc for loc in locations if (loc.get("spec") or {}).get("default")]
        named = [loc for loc in locations if loc["metadata"]["name"] == DEFAULT_LOCATION]
        if not defaults and not named:
            return ("%s: no BackupStorageLocation in namespace %s is marked default and none is named %r, name one"
                    % (option, velero_namespace, DEFAULT_LOCATION))
        location = (defaults or named)[0]
        name = location["metadata"]["name"]
    else:
        location = read_velero(client, "backupstoragelocations", velero_namespace, name)
        if location is None:
            return "%s: no BackupStorageLocation %r in namespace %s" % (option, name, velero_namespace)
    if (location.get("spec") or {}).get("accessMode") == "ReadOnly":
        return "%s: BackupStorageLocation %r is read-only" % (option, name)
    phase = (location.get("status") or {}).get("phase")
    if phase != "Available":
        message = (location.get("status") or {}).get("message")
        return "%s: BackupStorageLocation %r is %s%s" % (option, name, phase or "not validated yet",
                                                         ": " + message if message else "")
    return None


def spec_differences(existing_spec, desired_spec, defaulted=(), added=None):
    """The fields of the task's spec that the existing object has otherwise. `defaulted` are fields Velero fills in
    when unset (a backup's storageLocation and ttl); `added` maps a list field to entries Velero appends itself (a
    restore's excludedResources gets the non-restorable resources)."""
    differences = []
    for key, value in sorted(desired_spec.items()):
        have = existing_spec.get(key)
        if value is None and key in defaulted:
            continue
        if added and key in added and isinstance(have, list):
            have = [h for h in have if h not in added[key] or h in (value or [])] or None
        if _normal(have) != _normal(value):
            differences.append("%s: %s, not %s" % (key, json.dumps(have, sort_keys=True), json.dumps(value, sort_keys=True)))
    return differences


def _normal(value):
    if value in (None, [], {}):
        return None
    if isinstance(value, list):
        return sorted(json.dumps(v, sort_keys=True) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return value


def phase_of(obj):
    return ((obj or {}).get("status") or {}).get("phase") or "New"


def wait_final(client, plural, velero_namespace, names, timeout, kind):
    """One watch for every named backup or restore until each has a final phase; {name: object}."""

    def describe(obj):
        if obj is None:
            return "absent"
        status = obj.get("status") or {}
        progress = status.get("progress") or {}
        done = progress.get("itemsBackedUp", progress.get("itemsRestored"))
        return "phase %s%s" % (phase_of(obj), ", %s of %s items" % (done, progress.get("totalItems"))
                               if progress else "")

    targets = [WaitTarget(velero_namespace, name, lambda obj: phase_of(obj) in FINAL_PHASES,
                          "%s to finish (Completed, PartiallyFailed, Failed)" % kind, describe) for name in names]
    seen = wait_for(client, API_VERSION, plural, targets, timeout)
    return {name: seen[(velero_namespace, name)] for name in names}


def location_ca_cert(client, velero_namespace, location_name):
    """The PEM certificate authority of a BackupStorageLocation's object store (spec.objectStorage.caCert), or None:
    what the velero CLI verifies download URLs with (pkg/cmd/util/cacert/bsl_cacert.go GetCACertFromBSL)."""
    if not location_name:
        return None
    location = read_velero(client, "backupstoragelocations", velero_namespace, location_name) or {}
    encoded = ((location.get("spec") or {}).get("objectStorage") or {}).get("caCert")
    return base64.b64decode(encoded).decode("utf-8") if encoded else None


def download(client, velero_namespace, requests, timeout, ca_cert=None):
    """Reads Velero's files through DownloadRequests: `requests` is [(kind, name)] (e.g. ("BackupResourceList", b));
    returns {(kind, name): decoded JSON}. Velero answers each with a signed URL (download_request_controller.go);
    the request is deleted once read, as its expiry would. HTTPS URLs are verified: against the location's
    `ca_cert` when it has one, else against the system's authorities."""
    created = []
    try:
        for kind, name in requests:
            request_name = "%s-%s" % (name[:200], uuid.uuid4())  # downloadrequest.go StreamWithBSLCACert
            client.request("POST", velero_path("downloadrequests", velero_namespace), body={
                "apiVersion": API_VERSION, "kind": "DownloadRequest",
                "metadata": {"name": request_name, "namespace": velero_namespace},
                "spec": {"target": {"kind": kind, "name": name}}})
            created.append(request_name)
        targets = [WaitTarget(velero_namespace, request_name, lambda obj: phase_of(obj) == "Processed",
                              "Velero to process the DownloadRequest", lambda obj: "phase %s" % phase_of(obj))
                   for request_name in created]
        try:
            seen = wait_for(client, API_VERSION, "downloadrequests", targets, timeout)
        except WaitTimeout as err:
            raise ModuleFailure("Velero did not answer: %s" % err, [str(err)])
        found = {}
        pool = urllib3.PoolManager(cert_reqs="CERT_REQUIRED", ca_cert_data=ca_cert) if ca_cert else \
            urllib3.PoolManager(cert_reqs="CERT_REQUIRED")
        for request_name, key in zip(created, requests):
            url = seen[(velero_namespace, request_name)]["status"]["downloadURL"]
            try:
                resp = pool.request("GET", url, timeout=urllib3.Timeout(connect=15, read=120), retries=3)
            except urllib3.exceptions.HTTPError as err:
                raise ModuleFailure(unreachable_message(key, url, err), [str(err)])
            if resp.status != 200:
                raise ModuleFailure("reading %s %s from object storage: HTTP %s" % (key[0], key[1], resp.status))
            found[key] = json.loads(gzip.decompress(resp.data).decode("utf-8"))
        return found
    finally:
        for request_name in created:
            client.delete(velero_path("downloadrequests", velero_namespace, request_name))


def unreachable_message(key, url, err):
    """A signed URL that cannot be fetched: Velero signs it for the object store's address as the location gives it
    (spec.config.s3Url), often a service inside the cluster, unless the location has a spec.config.publicUrl."""
    host = urllib3.util.parse_url(url).host if HAS_URLLIB3 else url
    return ("reading %s %s: the download URL Velero signed (host %s) cannot be reached from here: %s. Velero signs it "
            "for the object store's address in the BackupStorageLocation (s3Url), which may point inside the cluster; "
            "give the location a publicUrl reachable from the Ansible host (spec.config.publicUrl), or set "
            "list_items=false" % (key[0], key[1], host, err))


def items_of(resource_list):
    """Velero's resource list ("apiVersion/Kind" -> ["namespace/name"]) as one entry per item."""
    items = []
    for group_kind, names in sorted((resource_list or {}).items()):
        api_version, _slash, kind = group_kind.rpartition("/")
        for entry in names:
            namespace, _sep, name = entry.rpartition("/")
            action = None
            if name.endswith(")") and "(" in name:
                name, action = name[:-1].split("(", 1)
            item = {"api_version": api_version, "kind": kind, "namespace": namespace or None, "name": name}
            if action:
                item["action"] = action
            items.append(item)
    return items


def messages_of(results):
    """Velero's results file ({"warnings": Result, "errors": Result}) as plain lines, the scope first."""
    lines = {"warnings": [], "errors": []}
    for key in lines:
        result = (results or {}).get(key) or {}
        lines[key] += ["velero: %s" % m for m in result.get("velero") or []]
        lines[key] += ["cluster: %s" % m for m in result.get("cluster") or []]
        for namespace, messages in sorted((result.get("namespaces") or {}).items()):
            lines[key] += ["namespace %s: %s" % (namespace, m) for m in messages]
    return lines
