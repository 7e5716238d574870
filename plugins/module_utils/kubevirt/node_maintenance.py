# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What evacuating a node means for each VM on it, decided before anything is written.

A VMI on a node under maintenance either moves (a live migration) or cannot, and then it is reported, stopped
or the run is refused. Whether it may move follows what KubeVirt itself does when a node is drained
(virt-api's pod eviction admitter, `migrations.VMIMigratableOnEviction`): the VMI's own `evictionStrategy`, else
the cluster's (KubeVirt CR `spec.configuration.evictionStrategy`, `None` when unset, as virt-config's
default); `LiveMigrate` needs the VMI's `LiveMigratable` condition true; `LiveMigrateIfPossible` moves a
migratable VMI (KubeVirt shuts the others down); `External` leaves the VMI to an external controller; `None`
never moves it. A migration also needs a node to go to: schedulable (KubeVirt's `kubevirt.io/schedulable`
label, not cordoned), not under maintenance itself, and matching the VMI's node selector.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import re

SCHEDULABLE_LABEL = "kubevirt.io/schedulable"
FINAL_PHASES = ("Succeeded", "Failed")
# KubeVirt's default when neither the VMI nor the cluster sets one (pkg/virt-config/configuration.go).
DEFAULT_EVICTION_STRATEGY = "None"
UNMOVABLE_CHOICES = ("fail", "report", "stop")
FINAL_MIGRATION_PHASES = ("Succeeded", "Failed")
# The migrations of an evacuation carry the node they empty: a label (a short value, for selectors) and an
# annotation of the same key (the full node name).
EVACUATED_NODE_KEY = "palette.vmo/evacuated-node"
# A label value is at most 63 characters (k8s.io/apimachinery/pkg/util/validation IsValidLabelValue).
LABEL_VALUE_MAX = 63
# A Node's name is a DNS subdomain (k8s.io/apimachinery/pkg/util/validation IsDNS1123Subdomain).
NODE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def meta(obj):
    return (obj or {}).get("metadata") or {}


def status(obj):
    return (obj or {}).get("status") or {}


def evacuated_node_label(node_name):
    """The label value naming a node: the name itself when it fits a label value (at most 63 characters), else its
    first characters and a hash of the whole name (the annotation carries the name itself)."""
    if len(node_name) <= LABEL_VALUE_MAX:
        return node_name
    digest = hashlib.sha256(node_name.encode("utf-8")).hexdigest()[:10]
    return "%s-%s" % (node_name[:LABEL_VALUE_MAX - len(digest) - 1].rstrip("-."), digest)


def mark_evacuation(migration, node_name):
    """Labels and annotates a migration object with the node it empties."""
    metadata = migration.setdefault("metadata", {})
    metadata.setdefault("labels", {})[EVACUATED_NODE_KEY] = evacuated_node_label(node_name)
    metadata.setdefault("annotations", {})[EVACUATED_NODE_KEY] = node_name
    return migration


def vmi_key(vmi):
    return (meta(vmi).get("namespace"), meta(vmi).get("name"))


def label(key):
    return "%s/%s" % key


def condition(obj, kind):
    for cond in status(obj).get("conditions") or []:
        if cond.get("type") == kind:
            return cond
    return None


def is_cordoned(node):
    return bool(((node or {}).get("spec") or {}).get("unschedulable"))


def node_schedulable(node):
    """Whether KubeVirt may put a VMI (or a migration target) on the node."""
    return meta(node).get("labels", {}).get(SCHEDULABLE_LABEL) == "true" and not is_cordoned(node)


def vmi_on_node(vmi, node_name):
    """A VMI the node holds: placed there, not finished and not gone."""
    return status(vmi).get("nodeName") == node_name and status(vmi).get("phase") not in FINAL_PHASES


def cluster_eviction_strategy(kubevirt_cr):
    """The cluster-wide evictionStrategy of the KubeVirt CR, KubeVirt's default when it sets none."""
    configuration = ((kubevirt_cr or {}).get("spec") or {}).get("configuration") or {}
    return configuration.get("evictionStrategy") or DEFAULT_EVICTION_STRATEGY


def eviction_strategy(vmi, cluster_strategy):
    """pkg/util/migrations VMIEvictionStrategy: the VMI's own, else the cluster's."""
    return ((vmi or {}).get("spec") or {}).get("evictionStrategy") or cluster_strategy


def live_migratable(vmi):
    """(migratable, reason, message) from the VMI's LiveMigratable condition (virt-handler computes it)."""
    cond = condition(vmi, "LiveMigratable")
    if cond is None:
        return False, None, "the VMI has no LiveMigratable condition yet"
    return cond.get("status") == "True", cond.get("reason"), cond.get("message")


def active_migration(migrations, key):
    """The VMI's migration that is not final (KubeVirt allows one at a time), or None."""
    for migration in migrations:
        spec = migration.get("spec") or {}
        if (meta(migration).get("namespace"), spec.get("vmiName")) == key \
                and status(migration).get("phase") not in FINAL_MIGRATION_PHASES \
                and not meta(migration).get("deletionTimestamp"):
            return migration
    return None


def target_nodes(vmi, nodes, evacuated):
    """Names of the nodes a migration of `vmi` could land on: schedulable, not evacuated, matching its selector."""
    selector = ((vmi or {}).get("spec") or {}).get("nodeSelector") or {}
    found = []
    for node in nodes:
        name = meta(node).get("name")
        labels = meta(node).get("labels") or {}
        if name in evacuated or not node_schedulable(node):
            continue
        if all(labels.get(k) == v for k, v in selector.items()):
            found.append(name)
    return sorted(found)


class VmiPlan(object):
    """One VMI on a node under maintenance: what will happen to it and why."""

    def __init__(self, vmi, node):
        self.vmi = vmi
        self.node = node
        self.namespace, self.name = vmi_key(vmi)
        self.action = None  # migrate, adopt (a migration already runs), unmovable, stop, leaving (being deleted)
        self.reason = None  # why it cannot move
        self.strategy = None
        self.migratable = None  # (status, reason, message) of LiveMigratable
        self.migration = None  # the running migration it adopts
        self.request = None  # the migration module's request that moves it
        self.vm_owned = any(ref.get("kind") == "VirtualMachine" for ref in meta(vmi).get("ownerReferences") or [])

    @property
    def key(self):
        return (self.namespace, self.name)

    @property
    def label(self):
        return label(self.key)


def unmovable_reason(vmi, strategy, nodes, evacuated):
    """Why KubeVirt would not live-migrate this VMI off its node (None when it would)."""
    phase = status(vmi).get("phase")
    if phase != "Running":
        return "its instance is %s, not Running: only a running VMI migrates" % (phase or "not started")
    migratable, reason, message = live_migratable(vmi)
    if strategy == "None":
        return "evictionStrategy None: KubeVirt never migrates it off a drained node (it would be shut down)"
    if strategy == "External":
        return "evictionStrategy External: an external controller, not KubeVirt, evacuates it"
    if strategy not in ("LiveMigrate", "LiveMigrateIfPossible"):
        return "evictionStrategy %s: not one KubeVirt migrates on a drain" % strategy
    if not migratable:
        why = "not live-migratable (LiveMigratable False%s): %s" % (
            ", reason %s" % reason if reason else "", message or "no message")
        if strategy == "LiveMigrateIfPossible":
            return "evictionStrategy LiveMigrateIfPossible and " + why
        return why
    if not target_nodes(vmi, nodes, evacuated):
        selector = ((vmi or {}).get("spec") or {}).get("nodeSelector") or {}
        return "no schedulable node outside the nodes under maintenance%s can take it" % (
            " matches its nodeSelector %s" % ",".join("%s=%s" % kv for kv in sorted(selector.items()))
            if selector else "")
    return None


def leaving_reason(vmi, terminating_namespaces):
    """Why a VMI is on its way out by itself (None when it is not): it is waited for, never migrated, as
    kubectl drain waits for a pod already being deleted."""
    if meta(vmi).get("deletionTimestamp"):
        return "being deleted"
    if meta(vmi).get("namespace") in terminating_namespaces:
        return "its namespace is being deleted"
    return None


def plan_node(node_name, vmis, migrations, nodes, evacuated, cluster_strategy, terminating_namespaces=()):
    """A VmiPlan for every VMI the node holds, sorted by namespace and name."""
    plans = []
    for vmi in sorted((v for v in vmis if vmi_on_node(v, node_name)), key=vmi_key):
        plan = VmiPlan(vmi, node_name)
        plan.strategy = eviction_strategy(vmi, cluster_strategy)
        plan.migratable = live_migratable(vmi)
        running = active_migration(migrations, plan.key)
        leaving = leaving_reason(vmi, terminating_namespaces)
        if leaving:
            plan.action, plan.reason = "leaving", leaving
        elif running is not None:
            plan.action, plan.migration = "adopt", running
        else:
            plan.reason = unmovable_reason(vmi, plan.strategy, nodes, evacuated)
            plan.action = "unmovable" if plan.reason else "migrate"
        plans.append(plan)
    return plans


def unmovable_summary(plan):
    migratable = plan.migratable or (None, None, None)
    return {"vm": plan.name, "namespace": plan.namespace, "node": plan.node, "reason": plan.reason,
            "eviction_strategy": plan.strategy, "live_migratable": migratable[0],
            "live_migratable_reason": migratable[1], "live_migratable_message": migratable[2],
            "vm_owned": plan.vm_owned}
