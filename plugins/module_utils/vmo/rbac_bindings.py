# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""vmo_rbac's declared bindings: checked without a network, then turned into RBAC objects.

A binding item names a role, its subjects, and where it applies (namespaces, or the whole cluster).
Each namespace gets one RoleBinding; a cluster-wide item is one ClusterRoleBinding. Names are
deterministic (`vmo-<role>` unless the item names it), so a re-run finds what it made, and every object
carries the labels that mark it as the collection's, which is all that exclusive mode ever prunes.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.palette.vmo.plugins.module_utils.common.errors import ModuleFailure
from ansible_collections.palette.vmo.plugins.module_utils.common.items import validate_items

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "palette.vmo"
ROLE_LABEL = "palette.vmo/role"
RBAC_API = "rbac.authorization.k8s.io/v1"
RBAC_GROUP = "rbac.authorization.k8s.io"
ROLE_BINDING, CLUSTER_ROLE_BINDING = "RoleBinding", "ClusterRoleBinding"

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
SUBJECT_KINDS = ("users", "groups", "service_accounts")

SUBJECT_OPTIONS = dict(users=dict(type="list", elements="str"), groups=dict(type="list", elements="str"),
                       service_accounts=dict(type="list", elements="str"))
BINDING_OPTIONS = dict(
    role=dict(type="str", required=True),
    subjects=dict(type="dict", required=True, options=SUBJECT_OPTIONS),
    namespaces=dict(type="list", elements="str"),
    cluster_wide=dict(type="bool", default=False),
    name=dict(type="str"),
    state=dict(type="str", choices=["present", "absent"], default="present"),
)


class RbacInputError(ModuleFailure):
    """Declared input that cannot be applied; `errors` names each item, field and reason."""

    def __init__(self, errors):
        errors = list(errors)
        super(RbacInputError, self).__init__("invalid input, nothing was changed: " + "; ".join(errors), errors)


class DeclaredBinding(object):
    """One item of `bindings`, validated."""

    def __init__(self, index, item):
        self.index = index
        self.role = (item.get("role") or "").strip()
        self.state = item.get("state") or "present"
        self.cluster_wide = bool(item.get("cluster_wide"))
        self.namespaces = list(item.get("namespaces") or [])
        self.name = item.get("name") or default_binding_name(self.role)
        self.raw_subjects = item.get("subjects") or {}
        self.subjects = []

    @property
    def label(self):
        return "bindings[%d] (%s)" % (self.index, self.name)

    def keys(self):
        """(kind, namespace, name) of every object this item stands for."""
        if self.cluster_wide:
            return [(CLUSTER_ROLE_BINDING, "", self.name)]
        return [(ROLE_BINDING, namespace, self.name) for namespace in self.namespaces]


def default_binding_name(role):
    return "vmo-" + role if role else ""


def role_label_value(role):
    """The role as a label value (at most 63 of [A-Za-z0-9-_.], alphanumeric at both ends)."""
    return re.sub(r"[^A-Za-z0-9._-]", "-", role)[:63].strip("-_.")


def managed_labels(role=None):
    labels = {MANAGED_BY_LABEL: MANAGED_BY}
    if role and role_label_value(role):
        labels[ROLE_LABEL] = role_label_value(role)
    return labels


def is_managed(obj):
    return ((obj.get("metadata") or {}).get("labels") or {}).get(MANAGED_BY_LABEL) == MANAGED_BY


# -- validation -------------------------------------------------------------------------------------

def _subject_errors(binding):
    raw = binding.raw_subjects
    errors = []
    for kind in SUBJECT_KINDS:
        seen = set()
        for position, value in enumerate(raw.get(kind) or []):
            field = "%s: subjects.%s[%d]" % (binding.label, kind, position)
            if not isinstance(value, str) or not value.strip():
                errors.append("%s: must be a non-empty name" % field)
            elif value in seen:
                errors.append("%s: %r is given more than once" % (field, value))
            elif kind == "service_accounts":
                errors.extend(_service_account_errors(field, value))
            seen.add(value)
    if not errors and not any(raw.get(kind) for kind in SUBJECT_KINDS):
        errors.append("%s: subjects: give at least one of users, groups or service_accounts" % binding.label)
    return errors


def _service_account_errors(field, value):
    namespace, slash, name = value.partition("/")
    if not slash or not DNS_LABEL.match(namespace) or not DNS_SUBDOMAIN.match(name) or len(name) > 253:
        return ["%s: %r is not <namespace>/<name> of a service account" % (field, value)]
    return []


def _scope_errors(binding):
    if binding.cluster_wide and binding.namespaces:
        return ["%s: give namespaces or cluster_wide: true, not both" % binding.label]
    if not binding.cluster_wide and not binding.namespaces:
        return ["%s: namespaces: give the namespaces to bind in, or cluster_wide: true" % binding.label]
    return ["%s: namespaces[%d]: %r is not a namespace name" % (binding.label, position, namespace)
            for position, namespace in enumerate(binding.namespaces)
            if not isinstance(namespace, str) or not DNS_LABEL.match(namespace) or len(namespace) > 63]


def _name_errors(binding):
    if not binding.role:
        return ["%s: role: is required (one of the VMO roles or an existing ClusterRole)" % binding.label]
    # RBAC names are path segments: anything but '/', '%' and the relative names.
    if "/" in binding.name or "%" in binding.name or binding.name in (".", "..") or len(binding.name) > 253:
        return ["%s: name: %r is not a valid RBAC object name" % (binding.label, binding.name)]
    return []


def _duplicate_errors(bindings):
    seen, errors = {}, []
    for binding in bindings:
        for key in binding.keys():
            if key in seen:
                where = "cluster-wide" if key[0] == CLUSTER_ROLE_BINDING else "in namespace %s" % key[1]
                errors.append("%s: name: %s %s %s is also declared by %s (give each a distinct name)"
                              % (binding.label, key[0], key[2], where, seen[key].label))
            else:
                seen[key] = binding
    return errors


def _subject_objects(raw):
    """RBAC subjects in a stable order (users, groups, service accounts), each once."""
    subjects, seen = [], set()
    for kind in SUBJECT_KINDS:
        for value in raw.get(kind) or []:
            if kind == "service_accounts":
                namespace, _slash, name = value.partition("/")
                subject = {"kind": "ServiceAccount", "name": name, "namespace": namespace}
            else:
                subject = {"kind": "User" if kind == "users" else "Group", "apiGroup": RBAC_GROUP, "name": value}
            key = tuple(sorted(subject.items()))
            if key not in seen:
                seen.add(key)
                subjects.append(subject)
    return subjects


def parse_bindings(items):
    """Validated DeclaredBindings; raises RbacInputError listing every problem of every item.

    Each item goes through Ansible's argument-spec validation first, as a task-level option would.
    """
    items, errors = validate_items("bindings", items, BINDING_OPTIONS)
    if errors:
        raise RbacInputError(errors)
    bindings = []
    for index, item in enumerate(items):
        binding = DeclaredBinding(index, item)
        problems = _name_errors(binding) + _scope_errors(binding) + _subject_errors(binding)
        errors.extend(problems)
        if not problems:
            binding.subjects = _subject_objects(binding.raw_subjects)
        bindings.append(binding)
    errors.extend(_duplicate_errors([b for b in bindings if not _name_errors(b)]))
    if errors:
        raise RbacInputError(errors)
    return bindings


# -- objects ----------------------------------------------------------------------------------------

def binding_object(binding, key):
    kind, namespace, name = key
    metadata = {"name": name, "labels": managed_labels(binding.role)}
    if namespace:
        metadata["namespace"] = namespace
    return {"apiVersion": RBAC_API, "kind": kind, "metadata": metadata,
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": binding.role},
            "subjects": [dict(subject) for subject in binding.subjects]}


def object_key(obj):
    metadata = obj.get("metadata") or {}
    return (obj.get("kind"), metadata.get("namespace") or "", metadata.get("name"))
