# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one way a palette.vmo module fails.

Every error the collection raises on purpose (bad input, a refused API request, a timeout, a connection
that cannot be made) derives from `ModuleFailure`: a message, the list of every problem found (so a batch
reports all of them at once) and any result keys that must reach the user even on failure (above all
`changed: true` and what was already written). `run_module` runs a module's runner and turns any of them
into the same `fail_json`. Anything else is a bug and keeps its traceback.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleFailure(Exception):
    """Why a module stops: `str(err)` is the message, `errors` every problem, `result` extra result keys."""

    def __init__(self, message, errors=None, **result):
        super(ModuleFailure, self).__init__(message)
        self.errors = list(errors or [])
        self.result = result


def failure_result(err):
    """The keyword arguments of fail_json for a ModuleFailure."""
    result = dict(err.result)
    result["msg"] = str(err)
    if err.errors:
        result["errors"] = err.errors
    return result


def run_module(module, runner):
    """Runs `runner(module)`, which ends in module.exit_json; every ModuleFailure becomes one fail_json."""
    try:
        runner(module)
    except ModuleFailure as err:
        module.fail_json(**failure_result(err))
