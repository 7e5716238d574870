# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""vmo_rbac through Palette: the cluster's RBAC settings (`/v1/spectroclusters/{uid}/config/rbacs`).

Palette replaces a cluster's whole RBAC configuration on every PUT, so the module reads it, merges the
declared bindings in (a binding is identified by its type, namespace and role; a declared one replaces the
subjects of the live one), and writes only when the merged set differs from the live one as a set of
bindings: order, entry names and uids do not count. Entries Palette marks `isSystem` are sent back as they
were. Check mode only reads.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.module_utils.six.moves.urllib.parse import quote

from ansible_collections.palette.vmo.plugins.module_utils.vmo.rbac_bindings import CLUSTER_ROLE_BINDING, ROLE_BINDING
from ansible_collections.palette.vmo.plugins.module_utils.vmo.roles import VMO_ROLE_NAMES


def rbacs_path(cluster_uid):
    return "/v1/spectroclusters/%s/config/rbacs" % quote(cluster_uid, safe="")


def binding_key(binding):
    """What makes a Palette binding itself: (type, namespace, role kind, role name)."""
    role = binding.get("role") or {}
    namespace = binding.get("namespace") or "" if binding.get("type") == ROLE_BINDING else ""
    return (binding.get("type"), namespace, role.get("kind") or "ClusterRole", role.get("name"))


def subject_key(subject):
    namespace = subject.get("namespace") or "" if subject.get("type") == "ServiceAccount" else ""
    return (subject.get("type"), subject.get("name"), namespace)


def palette_subject(subject):
    """An RBAC subject of vmo_rbac_bindings as Palette writes it."""
    out = {"type": subject["kind"], "name": subject["name"]}
    if subject["kind"] == "ServiceAccount":
        out["namespace"] = subject["namespace"]
    return out


def live_bindings(rbacs):
    """(system entries, {binding key: set of subject keys}) of the cluster's non-system entries."""
    system, bindings = [], {}
    for entry in rbacs or []:
        spec = entry.get("spec") or {}
        if spec.get("isSystem"):
            system.append(entry)
            continue
        for binding in spec.get("bindings") or []:
            subjects = bindings.setdefault(binding_key(binding), set())
            subjects.update(subject_key(s) for s in binding.get("subjects") or [])
    return system, bindings


def prunable(declared, exclusive_scope):
    """Which live bindings O(exclusive) may remove in Palette mode, where bindings carry no labels.

    Those to the four VMO roles or to a role the task binds (the collection's domain), and with the
    `namespaces` scope only RoleBindings in the namespaces the task names; bindings others made to other
    roles (cluster-admin from the Palette UI, say) are never touched.
    """
    roles = set(VMO_ROLE_NAMES) | set(b.role for b in declared)
    namespaces = set(ns for b in declared if not b.cluster_wide for ns in b.namespaces)

    def may_remove(key):
        btype, namespace, _kind, role = key
        if role not in roles:
            return False
        return exclusive_scope == "cluster" or (btype == ROLE_BINDING and namespace in namespaces)
    return may_remove


def desired_bindings(current, declared, may_remove=None):
    """The cluster's bindings after this task: the live ones (less those `may_remove` prunes, when exclusive)
    with the declared merged in."""
    merged = {key: set(subjects) for key, subjects in current.items() if not (may_remove and may_remove(key))}
    declared_subjects = {}
    for binding in declared:
        for key in palette_keys(binding):
            if binding.state == "absent":
                merged.pop(key, None)
            else:
                declared_subjects.setdefault(key, set()).update(
                    subject_key(palette_subject(s)) for s in binding.subjects)
    merged.update(declared_subjects)
    return merged


def palette_keys(binding):
    if binding.cluster_wide:
        return [(CLUSTER_ROLE_BINDING, "", "ClusterRole", binding.role)]
    return [(ROLE_BINDING, namespace, "ClusterRole", binding.role) for namespace in binding.namespaces]


def binding_document(key, subjects):
    btype, namespace, role_kind, role_name = key
    doc = {"type": btype, "role": {"kind": role_kind, "name": role_name},
           "subjects": [_subject_document(s) for s in sorted(subjects)]}
    if btype == ROLE_BINDING:
        doc["namespace"] = namespace
    return doc


def _subject_document(key):
    stype, name, namespace = key
    doc = {"type": stype, "name": name}
    if stype == "ServiceAccount":
        doc["namespace"] = namespace
    return doc


def update_body(system, bindings):
    """The PUT body: system entries as they were, then one entry of ClusterRoleBindings and one of
    RoleBindings, the grouping Palette's own Terraform provider uses."""
    rbacs = [{"metadata": {k: v for k, v in (entry.get("metadata") or {}).items() if k in ("name", "uid")},
              "spec": entry.get("spec") or {}} for entry in system]
    for btype in (CLUSTER_ROLE_BINDING, ROLE_BINDING):
        docs = [binding_document(key, bindings[key]) for key in sorted(bindings) if key[0] == btype]
        if docs:
            rbacs.append({"spec": {"bindings": docs}})
    return {"rbacs": rbacs}


def listing(bindings):
    """Bindings as a sorted list of documents, for results and diffs."""
    return [binding_document(key, bindings[key]) for key in sorted(bindings)]


def binding_results(declared, before, after):
    results = []
    for binding in declared:
        for key in palette_keys(binding):
            if binding.state == "absent":
                action = "deleted" if key in before else "absent"
            elif key not in before:
                action = "created"
            else:
                action = "unchanged" if before[key] == after[key] else "updated"
            results.append({"kind": key[0], "namespace": key[1] or None, "role": key[3], "action": action,
                            "subjects": [_subject_document(s) for s in sorted(after.get(key, ()))]})
    for key in sorted(set(before) - set(after)):
        if not any(key in palette_keys(b) for b in declared):
            results.append({"kind": key[0], "namespace": key[1] or None, "role": key[3], "action": "deleted",
                            "subjects": [_subject_document(s) for s in sorted(before[key])]})
    return results


def run_palette(module, client, declared):
    """Plans and (unless in check mode) writes the cluster's RBAC settings; returns the result dict."""
    params = module.params
    cluster_uid = client.cluster_uid(params["palette_cluster"])
    path = rbacs_path(cluster_uid)
    system, before = live_bindings((client.get(path) or {}).get("items"))
    after = desired_bindings(before, declared,
                             prunable(declared, params["exclusive_scope"]) if params["exclusive"] else None)
    changed = before != after
    result = {"changed": changed, "palette_cluster_uid": cluster_uid,
              "bindings": binding_results(declared, before, after)}
    if module._diff and changed:
        result["diff"] = [{"before_header": "Palette cluster %s RBAC" % params["palette_cluster"],
                           "after_header": "Palette cluster %s RBAC" % params["palette_cluster"],
                           "before": {"bindings": listing(before)}, "after": {"bindings": listing(after)}}]
    if changed and not module.check_mode:
        client.put(path, update_body(system, after))
    return result
