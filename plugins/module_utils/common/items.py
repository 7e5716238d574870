# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Items of list options (`vms`, `bindings`) validated by Ansible's own argument-spec machinery.

An item then gets exactly what a task-level option gets: the same type conversion (`cores: "2"` is 2),
the same sub-option checks and defaults, and the same messages, prefixed with the item it concerns.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.errors import UnsupportedError


def item_label(option, index, item):
    name = item.get("name") if isinstance(item, dict) else None
    return "%s[%d] (%s)" % (option, index, name if isinstance(name, str) and name else "?")


def _messages(errors):
    """Ansible's messages for one item, without the bare ones that a fuller message repeats."""
    messages = []
    for error in errors:
        text = error.msg if hasattr(error, "msg") else str(error)
        if isinstance(error, UnsupportedError):
            text = "unsupported parameters: " + text
        messages.append(text)
    messages = [m for m in messages if not any(m != other and m in other for other in messages)]
    # A conversion failure also comes as a bare reason ("dictionary requested, ...") beside the message that
    # quotes the option it concerns; only the latter says where.
    naming = [m for m in messages if "'" in m]
    return [m for m in messages if "'" in m or not naming]


def validate_items(option, items, spec):
    """(validated items, errors): each dict item checked and converted against `spec`.

    An option an item does not give is None in its validated form, as at the task level.
    """
    validator = ArgumentSpecValidator(spec)
    validated, errors = [], []
    for index, item in enumerate(items or []):
        label = item_label(option, index, item)
        if not isinstance(item, dict):
            errors.append("%s: must be a dict of the item's options, not %s" % (label, type(item).__name__))
            continue
        result = validator.validate(item)
        problems = _messages(result.errors.errors)
        errors.extend("%s: %s" % (label, problem) for problem in problems)
        validated.append(result.validated_parameters)
    return validated, errors


# A failed batch of thousands names the first few problems in its message; the result's `errors` has them all.
MESSAGE_ERRORS = 10


def joined_errors(errors, shown=MESSAGE_ERRORS):
    """The problems of a batch as one line for a message: the first `shown`, then how many more there are."""
    if len(errors) <= shown:
        return "; ".join(errors)
    return "; ".join(errors[:shown]) + "; ... and %d more (see errors)" % (len(errors) - shown)
