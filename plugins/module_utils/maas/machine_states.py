# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""maas_machine's view of MAAS's machine state machine: which op moves a machine one step towards its
declared state, whether it is there, and whether it failed on the way.

Pure functions of a request (its `state`) and a machine as MAAS returns it (its `status_name`); the converge
loop in machine_runner calls them each round.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

STATES = ("present", "ready", "commissioned", "deployed", "released", "broken", "fixed", "absent")
# Every status MAAS names a machine by (maascommon/node.py NODE_STATUS_LABELS).
STATUSES = ("New", "Commissioning", "Failed commissioning", "Missing", "Ready", "Reserved", "Allocated", "Deploying",
            "Deployed", "Retired", "Broken", "Failed deployment", "Releasing", "Releasing failed", "Disk erasing",
            "Failed disk erasing", "Rescue mode", "Entering rescue mode", "Failed to enter rescue mode",
            "Exiting rescue mode", "Failed to exit rescue mode", "Testing", "Failed testing")
# Statuses MAAS leaves on its own: the loop waits instead of acting.
TRANSITIONAL = ("Commissioning", "Deploying", "Releasing", "Disk erasing", "Testing", "Entering rescue mode",
                "Exiting rescue mode")
# Failures the loop tries once more (commission or deploy again) before it gives up on the machine.
RETRIED_FAILURES = ("Failed commissioning", "Failed deployment")
FAILURES = RETRIED_FAILURES + ("Releasing failed", "Failed disk erasing", "Failed testing")
UNCOMMISSIONED = ("New", "Failed commissioning")
RELEASABLE = ("Deployed", "Allocated", "Failed deployment", "Releasing failed", "Failed disk erasing")
# The states a failure status stops: on the way to them a machine in FAILURES has failed.
DRIVEN_STATES = ("ready", "deployed", "released")
# `commissioned` leaves a machine alone once it is commissioned: Ready for Palette to take, or already taken
# (allocated, deploying or deployed into a cluster). Only the failures of its own commissioning stop it.
COMMISSIONED_STATUSES = ("Ready", "Allocated", "Deploying", "Deployed", "Failed deployment", "Releasing",
                         "Disk erasing")
COMMISSIONING_FAILURES = ("Failed commissioning", "Failed testing")
# For each state, in order: the statuses a machine is moved on from, and the op that moves it. `broken` (every
# status but Broken) is in next_transition.
STEPS = {
    "ready": ((UNCOMMISSIONED, "commission"), (RELEASABLE, "release"), (("Broken",), "mark_fixed")),
    "commissioned": ((UNCOMMISSIONED, "commission"),),
    "deployed": ((UNCOMMISSIONED, "commission"), (("Ready", "Allocated"), "deploy"), (("Broken",), "mark_fixed")),
    "released": ((RELEASABLE, "release"),),
    "fixed": ((("Broken",), "mark_fixed"),),
}
# The status a machine shows once its state is reached, for check mode and diffs.
FINAL_STATUS = {"ready": "Ready", "commissioned": "Ready", "deployed": "Deployed", "released": "Ready",
                "broken": "Broken"}


def next_transition(request, machine):
    """The op that moves a machine one step towards its state, or None when it is there (or moving)."""
    state, status = request["state"], machine["status_name"]
    if status in TRANSITIONAL:
        return None
    if state == "broken":
        return "mark_broken" if status != "Broken" else None
    return next((op for statuses, op in STEPS.get(state, ()) if status in statuses), None)


def reached(request, machine):
    """Whether the machine (None: MAAS has none) is at the request's state."""
    status = machine["status_name"] if machine else None
    return {
        "present": machine is not None, "absent": machine is None, "ready": status == "Ready",
        "commissioned": status in COMMISSIONED_STATUSES,
        "deployed": status == "Deployed", "released": status in ("Ready", "New"), "broken": status == "Broken",
        "fixed": machine is not None and status != "Broken",
    }[request["state"]]


def failed(request, machine):
    """A machine that ended in a failure status on the way to its state."""
    status = machine["status_name"] if machine else None
    if request["state"] == "commissioned":
        return status in COMMISSIONING_FAILURES
    return status in FAILURES and request["state"] in DRIVEN_STATES


def owned_after_run(request, machine):
    """Whether the machine will have an owner once its state is reached (only owned machines start)."""
    if request["state"] == "deployed":
        return True
    return bool(machine and machine.get("owner")) and request["state"] in ("present", "broken", "fixed")
