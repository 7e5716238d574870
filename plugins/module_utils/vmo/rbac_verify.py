# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Proves declared bindings with SubjectAccessReviews: each subject may do what its roles allow, and no more.

For every subject and every place it is bound (a namespace, or the whole cluster), the apiserver is asked
about each operation of the VMO table (vmo_roles.VMO_OPERATIONS). The expectation is the union of the VMO
roles the task binds the subject to there; a cluster-scoped operation is expected only from a cluster-wide
binding. Where the task also binds a role outside the table, only the operations that must be allowed are
checked, since nothing says what that role forbids.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.palette.vmo.plugins.module_utils.common.concurrency import run_concurrently
from ansible_collections.palette.vmo.plugins.module_utils.vmo.roles import VMO_OPERATIONS, VMO_ROLE_NAMES

SAR_PATH = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
CLUSTER = ""  # the scope of a cluster-wide binding
SETTLE_SECONDS = 10


def subject_name(subject):
    if subject["kind"] == "ServiceAccount":
        return "ServiceAccount %s/%s" % (subject["namespace"], subject["name"])
    return "%s %s" % (subject["kind"], subject["name"])


def review_identity(subject):
    """The user and groups a SubjectAccessReview asks about for one RBAC subject.

    Every authenticated request carries the group system:authenticated, so the review does too: access granted
    to all authenticated people is access this subject has.
    """
    if subject["kind"] == "User":
        return {"user": subject["name"], "groups": ["system:authenticated"]}
    if subject["kind"] == "Group":
        return {"groups": [subject["name"], "system:authenticated"]}
    namespace = subject["namespace"]
    return {"user": "system:serviceaccount:%s:%s" % (namespace, subject["name"]),
            "groups": ["system:serviceaccounts", "system:serviceaccounts:%s" % namespace, "system:authenticated"]}


class Scope(object):
    """One subject in one place, with the roles the task binds it to there."""

    def __init__(self, subject, namespace):
        self.subject, self.namespace = subject, namespace
        self.roles = set()
        self.cluster_roles = set()  # from cluster-wide bindings; they alone grant cluster-scoped operations

    def expected(self, operation, allowed_roles):
        roles = self.cluster_roles if operation.cluster_scoped else self.roles | self.cluster_roles
        return bool(roles & set(allowed_roles))

    @property
    def table_known(self):
        return (self.roles | self.cluster_roles) <= set(VMO_ROLE_NAMES)


def scopes_of(bindings):
    """Scopes for every subject of the present bindings: each namespace it is bound in, and the cluster."""
    scopes = {}
    present = [b for b in bindings if b.state == "present"]
    cluster_wide = {}
    for binding in present:
        for subject in binding.subjects:
            key = tuple(sorted(subject.items()))
            if binding.cluster_wide:
                cluster_wide.setdefault(key, set()).add(binding.role)
                scopes.setdefault((key, CLUSTER), Scope(subject, CLUSTER))
            for namespace in binding.namespaces:
                scopes.setdefault((key, namespace), Scope(subject, namespace)).roles.add(binding.role)
    for (key, _namespace), scope in scopes.items():
        scope.cluster_roles = set(cluster_wide.get(key, ()))
    return [scopes[key] for key in sorted(scopes, key=lambda k: (subject_name(scopes[k].subject), k[1]))]


def checks_of(scope):
    """[(Operation, expected)] to ask for one scope."""
    checks = []
    for operation, allowed_roles in VMO_OPERATIONS:
        expected = scope.expected(operation, allowed_roles)
        if operation.cluster_scoped and scope.namespace != CLUSTER:
            continue  # asked once, in the cluster scope, if the subject is bound cluster-wide
        if expected or scope.table_known:
            checks.append((operation, expected))
    return checks


def _review(client, scope, operation):
    body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "spec": dict(review_identity(scope.subject),
                         resourceAttributes=operation.resource_attributes(scope.namespace))}
    status = (client.request("POST", SAR_PATH, body=body) or {}).get("status") or {}
    return bool(status.get("allowed")) and not status.get("denied")


def _ask(client, asks, concurrency):
    answers = run_concurrently(lambda ask: _review(client, ask[0], ask[1]), asks, concurrency)
    for answer in answers:
        if isinstance(answer, Exception):
            raise answer
    return answers


def _answers(client, asks, concurrency, settle_seconds):
    """The apiserver's answers; a differing one is asked again for a few seconds, because the authorizer sees
    a binding just written only once its informer cache has caught up."""
    answers = _ask(client, asks, concurrency)
    deadline = time.monotonic() + settle_seconds
    while time.monotonic() < deadline:
        differing = [i for i, (ask, allowed) in enumerate(zip(asks, answers)) if allowed != ask[2]]
        if not differing:
            break
        time.sleep(0.5)
        for index, allowed in zip(differing, _ask(client, [asks[i] for i in differing], concurrency)):
            answers[index] = allowed
    return answers


def verify_bindings(client, bindings, concurrency, settle_seconds=SETTLE_SECONDS):
    """One entry per scope: what was allowed, what was denied, and every mismatch with the table."""
    scopes = scopes_of(bindings)
    asks = [(scope, operation, expected) for scope in scopes for operation, expected in checks_of(scope)]
    answers = _answers(client, asks, concurrency, settle_seconds)
    report = {}
    for (scope, operation, expected), allowed in zip(asks, answers):
        entry = report.setdefault(id(scope), {
            "subject": subject_name(scope.subject), "namespace": scope.namespace or None,
            "roles": sorted(scope.roles | scope.cluster_roles), "allowed": [], "denied": [], "mismatches": []})
        entry["allowed" if allowed else "denied"].append(operation.name)
        if allowed != expected:
            entry["mismatches"].append({"operation": operation.name, "expected": expected, "allowed": allowed})
    return [report[id(scope)] for scope in scopes if id(scope) in report]


def describe_mismatches(entries):
    lines = []
    for entry in entries:
        where = "namespace %s" % entry["namespace"] if entry["namespace"] else "cluster-wide"
        for mismatch in entry["mismatches"]:
            lines.append("%s in %s (%s): %s is %s, the VMO role table says %s" % (
                entry["subject"], where, ", ".join(entry["roles"]), mismatch["operation"],
                "allowed" if mismatch["allowed"] else "denied", "allowed" if mismatch["expected"] else "denied"))
    return lines
