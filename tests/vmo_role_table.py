"""The VMO operation table read back for tests: what each role may do, whether RBAC rules grant it, and the
table's lines as vmo_rbac's documentation prints them."""

from ansible_collections.palette.vmo.plugins.module_utils.vmo.roles import VMO_OPERATIONS, VMO_ROLE_NAMES


def expected_operations(role):
    """[(Operation, allowed)] for a VMO role, from the documented table."""
    return [(operation, role in allowed_roles) for operation, allowed_roles in VMO_OPERATIONS]


def rules_allow(rules, verb, group, resource, subresource=""):
    """Whether RBAC `rules` grant `verb` on group/resource[/subresource] (the apiserver's matching, no names)."""
    wanted = resource + "/" + subresource if subresource else resource
    for rule in rules:
        if (_matches(rule.get("apiGroups"), group) and _matches(rule.get("resources"), wanted)
                and _matches(rule.get("verbs"), verb) and not rule.get("resourceNames")):
            return True
    return False


def _matches(values, wanted):
    return bool(values) and ("*" in values or wanted in values)


def matrix_lines():
    """The operation table as one line per operation, as the module documentation prints it."""
    short = dict(zip(VMO_ROLE_NAMES, ("admin", "power-user", "user", "viewer")))
    return ["%s: %s" % (operation.name, ", ".join(
        "%s %s" % (short[role], "yes" if role in allowed else "no") for role in VMO_ROLE_NAMES))
        for operation, allowed in VMO_OPERATIONS]
