# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The outcomes of a batch run by concurrency.run_concurrently, turned into one failure."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.palette.vmo.plugins.module_utils.common.errors import ModuleFailure


def _as_written(_item, error):
    return str(error)


def raise_failures(items, outcomes, describe=_as_written):
    """Raises one ModuleFailure naming every item whose outcome is an exception (`describe(item, error)` words
    each one; by default the error's own message), so one failure of a batch never hides another."""
    errors = [describe(item, outcome) for item, outcome in zip(items, outcomes) if isinstance(outcome, Exception)]
    if errors:
        raise ModuleFailure("; ".join(errors), errors)
