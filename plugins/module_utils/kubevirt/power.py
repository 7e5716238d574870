# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""VM power: which subresource verb (if any) a desired state needs, and what to wait for.

A verb is planned only when the VM is not already where the state asks, so a satisfied state reports
`changed=false`, in check mode too. The verbs go through KubeVirt's `subresources.kubevirt.io` API.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

POWER_STATES = ("started", "stopped", "restarted", "paused", "unpaused")
RUN_STRATEGIES = ("Always", "Halted", "Manual", "RerunOnFailure", "Once")
# Strategies under which KubeVirt itself keeps a VMI running; a start request would be refused.
SELF_STARTING = ("Always", "RerunOnFailure", "Once")
FINAL_PHASES = ("Succeeded", "Failed")


class PowerConflict(Exception):
    """The declared run strategy and state contradict each other."""


def vmi_active(vmi):
    """A VMI that exists, is not being deleted and has not finished."""
    if not vmi:
        return False
    if (vmi.get("metadata") or {}).get("deletionTimestamp"):
        return False
    return (vmi.get("status") or {}).get("phase") not in FINAL_PHASES


def vmi_paused(vmi):
    for cond in (vmi or {}).get("status", {}).get("conditions") or []:
        if cond.get("type") == "Paused" and cond.get("status") == "True":
            return True
    return False


def effective_run_strategy(vm):
    spec = (vm or {}).get("spec") or {}
    if spec.get("runStrategy"):
        return spec["runStrategy"]
    return "Always" if spec.get("running") else "Halted"


def check_power_options(state, run_strategy):
    """Rejects combinations that would fight each other on every run."""
    if run_strategy == "Halted" and state in ("started", "restarted", "paused", "unpaused"):
        raise PowerConflict("run_strategy Halted keeps the VM off, so state=%s contradicts it" % state)
    if run_strategy in SELF_STARTING and state == "stopped":
        raise PowerConflict("run_strategy %s keeps the VM running, so state=stopped contradicts it" % run_strategy)


def default_run_strategy(state):
    """The strategy a new VM gets when none is declared."""
    return "Halted" if state == "stopped" else "Always"


def plan_power(state, strategy, vmi):
    """The verb to send now (start, stop, restart, pause, unpause) and whether to pause once running.

    Returns (verb or None, pause_when_running).
    """
    active = vmi_active(vmi)
    if state == "started" or (state in ("restarted", "unpaused") and not active):
        if active or strategy in SELF_STARTING:
            return None, False
        return "start", False
    if state == "stopped":
        if not active:
            return None, False
        return "stop", False
    if state == "restarted":
        return "restart", False
    if state == "unpaused":
        return ("unpause" if vmi_paused(vmi) else None), False
    if state == "paused":
        if active and vmi_paused(vmi):
            return None, False
        if active and (vmi.get("status") or {}).get("phase") == "Running":
            return "pause", False
        # Not running yet: start it (unless KubeVirt already does) and pause it once it runs.
        return (None if strategy in SELF_STARTING else "start"), True
    return None, False


def expected_state(state, strategy):
    """What a wait should see: ready, stopped, paused, or None (only that the VM exists)."""
    if state in ("started", "restarted", "unpaused"):
        return "ready"
    if state == "stopped":
        return "stopped"
    if state == "paused":
        return "paused"
    if state == "present":
        if strategy in SELF_STARTING:
            return "ready"
        if strategy == "Halted":
            return "stopped"
    return None


def vm_matches(vm, expectation):
    if vm is None:
        return False
    status = vm.get("status") or {}
    printable = status.get("printableStatus")
    if expectation == "ready":
        return printable == "Running" and bool(status.get("ready"))
    if expectation == "stopped":
        return printable == "Stopped"
    if expectation == "paused":
        return printable == "Paused"
    return True


def describe_vm(vm):
    if vm is None:
        return "absent"
    status = vm.get("status") or {}
    return "printableStatus=%s ready=%s" % (status.get("printableStatus", "<none>"), bool(status.get("ready")))
