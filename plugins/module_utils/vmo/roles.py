# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The four VMO ClusterRoles: their rules, and the operations each role may and may not perform.

This file is the one definition of VMO's access model in the collection. The rules follow the documented
role table (spectro-vm-admin manages everything including VM templates; spectro-vm-power-user performs most VM
operations but manages no VM templates and no cluster infrastructure; spectro-vm-user uses VMs made by others
and cannot create, clone, delete or migrate them; spectro-vm-viewer only reads). `VMO_OPERATIONS` states the
same table as named operations, so bindings can be checked against it (SubjectAccessReview) and tests can
prove it as real users.

Subresources of `subresources.kubevirt.io` are authorised by the apiserver as `<resource>/<first path segment>`
(for example `virtualmachineinstances/vnc` also covers `vnc/screenshot`); PUT actions need `update`, streams
and reads need `get`.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

ADMIN = "spectro-vm-admin"
POWER_USER = "spectro-vm-power-user"
USER = "spectro-vm-user"
VIEWER = "spectro-vm-viewer"
VMO_ROLE_NAMES = (ADMIN, POWER_USER, USER, VIEWER)

READ = ("get", "list", "watch")
CHANGE = ("update", "patch")
MANAGE = READ + ("create",) + CHANGE + ("delete", "deletecollection")

KUBEVIRT = "kubevirt.io"
SUBRESOURCES = "subresources.kubevirt.io"
CDI = "cdi.kubevirt.io"
SNAPSHOT = "snapshot.kubevirt.io"
CLONE = "clone.kubevirt.io"
EXPORT = "export.kubevirt.io"
VMTEMPLATES = "spectrocloud.com"

# Subresource families, so each role's rules below read as decisions rather than lists.
VM_POWER_ACTIONS = ("virtualmachines/start", "virtualmachines/stop", "virtualmachines/restart",
                    "virtualmachineinstances/pause", "virtualmachineinstances/unpause",
                    "virtualmachineinstances/softreboot", "virtualmachineinstances/reset",
                    "virtualmachineinstances/freeze", "virtualmachineinstances/unfreeze")
VM_HOTPLUG_ACTIONS = ("virtualmachines/addvolume", "virtualmachines/removevolume",
                      "virtualmachineinstances/addvolume", "virtualmachineinstances/removevolume")
VM_MIGRATE_ACTIONS = ("virtualmachines/migrate", "virtualmachines/evacuate", "virtualmachineinstances/evacuate")
VM_DEBUG_ACTIONS = ("virtualmachines/memorydump", "virtualmachines/removememorydump",
                    "virtualmachineinstances/backup", "virtualmachineinstances/redefine-checkpoint",
                    "virtualmachineinstances/sev")
VM_CONSOLE_STREAMS = ("virtualmachineinstances/console", "virtualmachineinstances/vnc",
                      "virtualmachineinstances/portforward", "virtualmachineinstances/usbredir",
                      "virtualmachineinstances/vsock", "virtualmachines/portforward")
VM_INFO_READS = ("virtualmachineinstances/guestosinfo", "virtualmachineinstances/userlist",
                 "virtualmachineinstances/filesystemlist", "virtualmachineinstances/objectgraph",
                 "virtualmachines/objectgraph", "virtualmachines/expand-spec", "virtualmachineinstances/sev")

VMS = ("virtualmachines", "virtualmachineinstances")
VM_GROUPS = ("virtualmachineinstancepresets", "virtualmachineinstancereplicasets")
MIGRATIONS = ("virtualmachineinstancemigrations",)
NAMESPACED_SIZES = ("virtualmachineinstancetypes", "virtualmachinepreferences")
CLUSTER_SIZES = ("virtualmachineclusterinstancetypes", "virtualmachineclusterpreferences")
IMAGE_SOURCES = ("dataimportcrons", "datasources")
CORE_VM_OBJECTS = ("persistentvolumeclaims", "services", "configmaps")
CORE_READS = ("pods", "events", "namespaces", "nodes")


def _rule(group, resources, verbs):
    return {"apiGroups": [group], "resources": list(resources), "verbs": list(verbs)}


def _admin_rules():
    return [
        _rule(KUBEVIRT, VMS + VM_GROUPS + MIGRATIONS, MANAGE),
        _rule("pool.kubevirt.io", ("virtualmachinepools",), MANAGE),
        _rule("instancetype.kubevirt.io", NAMESPACED_SIZES + CLUSTER_SIZES, MANAGE),
        _rule("migrations.kubevirt.io", ("migrationpolicies",), MANAGE),
        _rule(SUBRESOURCES, VM_POWER_ACTIONS + VM_HOTPLUG_ACTIONS + VM_MIGRATE_ACTIONS + VM_DEBUG_ACTIONS
              + ("expand-vm-spec",), ("update",)),
        _rule(SUBRESOURCES, VM_CONSOLE_STREAMS + VM_INFO_READS, ("get",)),
        _rule(CDI, ("datavolumes",) + IMAGE_SOURCES, MANAGE),
        _rule(CDI, ("datavolumes/source",), ("create",)),
        _rule("upload.cdi.kubevirt.io", ("uploadtokenrequests",), ("create",)),
        _rule(SNAPSHOT, ("virtualmachinesnapshots", "virtualmachinerestores", "virtualmachinesnapshotcontents"),
              MANAGE),
        _rule(CLONE, ("virtualmachineclones",), MANAGE),
        _rule(EXPORT, ("virtualmachineexports",), MANAGE),
        _rule("backup.kubevirt.io", ("virtualmachinebackups",), MANAGE),
        _rule(VMTEMPLATES, ("vmtemplates",), MANAGE),
        _rule("", CORE_VM_OBJECTS + ("secrets",), MANAGE),
        _rule("", CORE_READS, READ),
        _rule("k8s.cni.cncf.io", ("network-attachment-definitions",), MANAGE),
        _rule("storage.k8s.io", ("storageclasses",), READ),
    ]


def _power_user_rules():
    # Everything a VM's life needs; templates, instance types, image imports and cluster objects only read.
    return [
        _rule(KUBEVIRT, VMS + MIGRATIONS, MANAGE),
        _rule(KUBEVIRT, VM_GROUPS, READ),
        _rule("pool.kubevirt.io", ("virtualmachinepools",), MANAGE),
        _rule("instancetype.kubevirt.io", NAMESPACED_SIZES + CLUSTER_SIZES, READ),
        _rule("migrations.kubevirt.io", ("migrationpolicies",), READ),
        _rule(SUBRESOURCES, VM_POWER_ACTIONS + VM_HOTPLUG_ACTIONS + VM_MIGRATE_ACTIONS
              + ("virtualmachines/memorydump", "virtualmachines/removememorydump", "expand-vm-spec"), ("update",)),
        _rule(SUBRESOURCES, VM_CONSOLE_STREAMS + VM_INFO_READS, ("get",)),
        _rule(CDI, ("datavolumes",), MANAGE),
        _rule(CDI, IMAGE_SOURCES, READ),
        _rule(CDI, ("datavolumes/source",), ("create",)),
        _rule("upload.cdi.kubevirt.io", ("uploadtokenrequests",), ("create",)),
        _rule(SNAPSHOT, ("virtualmachinesnapshots", "virtualmachinerestores"), MANAGE),
        _rule(SNAPSHOT, ("virtualmachinesnapshotcontents",), READ),
        _rule(CLONE, ("virtualmachineclones",), MANAGE),
        _rule(EXPORT, ("virtualmachineexports",), MANAGE),
        _rule("backup.kubevirt.io", ("virtualmachinebackups",), READ),
        _rule(VMTEMPLATES, ("vmtemplates",), READ),
        _rule("", CORE_VM_OBJECTS, MANAGE),
        # A VM export's token lives in a Secret the power user must read by name (VMO's export docs), so `get`
        # only: never list or watch, which would expose every Secret (service-account tokens too) of the namespace.
        _rule("", ("secrets",), ("get",)),
        _rule("", CORE_READS, READ),
        _rule("k8s.cni.cncf.io", ("network-attachment-definitions",), READ),
        _rule("storage.k8s.io", ("storageclasses",), READ),
    ]


def _user_rules():
    # Runs and changes existing VMs (power, console, hot-plug, snapshots); never creates, clones, deletes or
    # migrates one, so VMIs, migrations, clones, exports, disk sources and DataVolumes stay read only.
    return [
        _rule(KUBEVIRT, ("virtualmachines",), READ + CHANGE),
        _rule(KUBEVIRT, ("virtualmachineinstances",) + VM_GROUPS + MIGRATIONS, READ),
        _rule("pool.kubevirt.io", ("virtualmachinepools",), READ),
        _rule("instancetype.kubevirt.io", NAMESPACED_SIZES + CLUSTER_SIZES, READ),
        _rule(SUBRESOURCES, VM_POWER_ACTIONS + VM_HOTPLUG_ACTIONS, ("update",)),
        _rule(SUBRESOURCES, VM_CONSOLE_STREAMS + VM_INFO_READS, ("get",)),
        _rule(CDI, ("datavolumes",) + IMAGE_SOURCES, READ),
        _rule(SNAPSHOT, ("virtualmachinesnapshots",), MANAGE),
        _rule(SNAPSHOT, ("virtualmachinerestores", "virtualmachinesnapshotcontents"), READ),
        _rule(CLONE, ("virtualmachineclones",), READ),
        _rule(EXPORT, ("virtualmachineexports",), READ),
        _rule("backup.kubevirt.io", ("virtualmachinebackups",), READ),
        _rule(VMTEMPLATES, ("vmtemplates",), READ),
        _rule("", CORE_VM_OBJECTS + CORE_READS, READ),
        _rule("k8s.cni.cncf.io", ("network-attachment-definitions",), READ),
        _rule("storage.k8s.io", ("storageclasses",), READ),
    ]


def _viewer_rules():
    # Reads only: no console or VNC either, those are interactive access to the guest.
    return [
        _rule(KUBEVIRT, VMS + VM_GROUPS + MIGRATIONS, READ),
        _rule("pool.kubevirt.io", ("virtualmachinepools",), READ),
        _rule("instancetype.kubevirt.io", NAMESPACED_SIZES + CLUSTER_SIZES, READ),
        _rule(SUBRESOURCES, VM_INFO_READS, ("get",)),
        _rule(CDI, ("datavolumes",) + IMAGE_SOURCES, READ),
        _rule(SNAPSHOT, ("virtualmachinesnapshots", "virtualmachinerestores", "virtualmachinesnapshotcontents"),
              READ),
        _rule(CLONE, ("virtualmachineclones",), READ),
        _rule(EXPORT, ("virtualmachineexports",), READ),
        _rule("backup.kubevirt.io", ("virtualmachinebackups",), READ),
        _rule(VMTEMPLATES, ("vmtemplates",), READ),
        _rule("", ("persistentvolumeclaims", "services") + CORE_READS, READ),
        _rule("k8s.cni.cncf.io", ("network-attachment-definitions",), READ),
        _rule("storage.k8s.io", ("storageclasses",), READ),
    ]


ROLE_RULES = {
    ADMIN: _admin_rules,
    POWER_USER: _power_user_rules,
    USER: _user_rules,
    VIEWER: _viewer_rules,
}


def vmo_role_rules(role):
    """The RBAC rules of one VMO ClusterRole (a fresh list, safe to change)."""
    return ROLE_RULES[role]()


def vmo_cluster_roles(labels=None):
    """The four VMO ClusterRoles as rbac.authorization.k8s.io/v1 objects, optionally with extra labels."""
    roles = []
    for name in VMO_ROLE_NAMES:
        metadata = {"name": name}
        if labels:
            metadata["labels"] = dict(labels)
        roles.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                      "metadata": metadata, "rules": vmo_role_rules(name)})
    return roles


class Operation:
    """One thing a person does with VMO, as the apiserver authorises it."""

    def __init__(self, name, verb, group, resource, subresource="", cluster_scoped=False):
        self.name, self.verb, self.group, self.resource, self.subresource = (
            name, verb, group, resource, subresource)
        # A cluster-scoped request (listing namespaces, VmTemplates) is granted by a ClusterRoleBinding only.
        self.cluster_scoped = cluster_scoped

    def resource_attributes(self, namespace):
        """The resourceAttributes of a SubjectAccessReview for this operation in `namespace`."""
        attributes = {"verb": self.verb, "group": self.group, "resource": self.resource}
        if self.subresource:
            attributes["subresource"] = self.subresource
        if namespace and not self.cluster_scoped:
            attributes["namespace"] = namespace
        return attributes


# The documented table as operations: which roles may perform each (every role not listed may not).
ALL_ROLES = VMO_ROLE_NAMES
OPERATORS = (ADMIN, POWER_USER, USER)
CREATORS = (ADMIN, POWER_USER)
VMO_OPERATIONS = (
    (Operation("list VMs", "list", KUBEVIRT, "virtualmachines"), ALL_ROLES),
    (Operation("get a VM", "get", KUBEVIRT, "virtualmachines"), ALL_ROLES),
    (Operation("create a VM", "create", KUBEVIRT, "virtualmachines"), CREATORS),
    (Operation("update a VM", "patch", KUBEVIRT, "virtualmachines"), OPERATORS),
    (Operation("delete a VM", "delete", KUBEVIRT, "virtualmachines"), CREATORS),
    (Operation("start a VM", "update", SUBRESOURCES, "virtualmachines", "start"), OPERATORS),
    (Operation("stop a VM", "update", SUBRESOURCES, "virtualmachines", "stop"), OPERATORS),
    (Operation("restart a VM", "update", SUBRESOURCES, "virtualmachines", "restart"), OPERATORS),
    (Operation("pause a VM", "update", SUBRESOURCES, "virtualmachineinstances", "pause"), OPERATORS),
    (Operation("open the VNC console", "get", SUBRESOURCES, "virtualmachineinstances", "vnc"), OPERATORS),
    (Operation("migrate a VM", "update", SUBRESOURCES, "virtualmachines", "migrate"), CREATORS),
    (Operation("create a migration", "create", KUBEVIRT, "virtualmachineinstancemigrations"), CREATORS),
    (Operation("create a snapshot", "create", SNAPSHOT, "virtualmachinesnapshots"), OPERATORS),
    (Operation("restore a snapshot", "create", SNAPSHOT, "virtualmachinerestores"), CREATORS),
    (Operation("clone a VM", "create", CLONE, "virtualmachineclones"), CREATORS),
    (Operation("export a VM", "create", EXPORT, "virtualmachineexports"), CREATORS),
    (Operation("read a DataVolume", "get", CDI, "datavolumes"), ALL_ROLES),
    (Operation("create a DataVolume", "create", CDI, "datavolumes"), CREATORS),
    (Operation("clone a disk", "create", CDI, "datavolumes", "source"), CREATORS),
    (Operation("read a VmTemplate", "get", VMTEMPLATES, "vmtemplates", cluster_scoped=True), ALL_ROLES),
    (Operation("update a VmTemplate", "update", VMTEMPLATES, "vmtemplates", cluster_scoped=True), (ADMIN,)),
    (Operation("create a VmTemplate", "create", VMTEMPLATES, "vmtemplates", cluster_scoped=True), (ADMIN,)),
    (Operation("manage image imports", "create", CDI, "dataimportcrons"), (ADMIN,)),
    (Operation("manage Secrets", "create", "", "secrets"), (ADMIN,)),
    (Operation("list Secrets", "list", "", "secrets"), (ADMIN,)),
    (Operation("list namespaces", "list", "", "namespaces", cluster_scoped=True), ALL_ROLES),
)
