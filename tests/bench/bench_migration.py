"""Benchmark: live-migrate N running VMs, with two tools on the same lab.

    python -m tests.bench.bench_migration [--vms 100] [--repeats 3] [--loop-repeats 1] [--parallel 100]

(a) palette.vmo.kubevirt_vm_migration with every VM in one task (concurrent creates, one shared watch)
(b) a loop of kubernetes.core tasks per VM: k8s creates the VirtualMachineInstanceMigration, then k8s_info
    is retried (delay 1 s) until its phase is Succeeded or Failed - what a playbook without a migration
    module does

Both migrate the same N VMs (runStrategy Always, running) in one namespace; every sample migrates each VM
once more. KubeVirt's migration limits (the KubeVirt CR's spec.configuration.migrations:
parallelMigrationsPerCluster, default 5, and parallelOutboundMigrationsPerNode, default 2) are raised to
--parallel for the whole run, for both tools, and restored afterwards; the loop runs one migration at a time
whatever the limits. Samples and medians go to docs/bench-migration.json; `python -m tests.bench.report`
writes the report.
"""

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

from tests.lab.kube import Kube, object_path
from tests.lab.state import ADMIN_USER

from .frame import REPO, lab_up, run_playbook, write_result

TOOLS = {"a": "palette.vmo.kubevirt_vm_migration (one task)",
         "b": "kubernetes.core.k8s + k8s_info until Succeeded (loop, one VM per iteration)"}
KUBEVIRT_CR = object_path("kubevirt.io/v1", "kubevirts", "kubevirt", "kubevirt")


def vm_names(n):
    return [f"bench-{i:03d}" for i in range(n)]


def start_vms(workdir, kubeconfig, namespace, names):
    run_playbook(workdir, "start-vms", [{"palette.vmo.kubevirt_vm": {
        "kubeconfig": kubeconfig, "namespace": namespace, "memory": "128Mi", "state": "started", "wait": True,
        "wait_timeout": 900, "vms": [{"name": name} for name in names]}}])


def module_tasks(kubeconfig, namespace, names, sample):
    return [{"name": "migrate every VM", "palette.vmo.kubevirt_vm_migration": {
        "kubeconfig": kubeconfig, "namespace": namespace, "vms": names, "migration_id": sample,
        "wait_timeout": 1800}}]


def loop_tasks(workdir, kubeconfig, namespace, names, sample):
    """The per-VM pair of tasks in a file, included once per VM."""
    per_vm = workdir / f"migrate-one-{sample}.yml"
    per_vm.write_text(json.dumps([
        {"name": "create the migration", "kubernetes.core.k8s": {
            "kubeconfig": kubeconfig, "state": "present", "definition": {
                "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstanceMigration",
                "metadata": {"name": "{{ vm }}-%s" % sample, "namespace": namespace},
                "spec": {"vmiName": "{{ vm }}"}}}},
        {"name": "wait until it is done", "kubernetes.core.k8s_info": {
            "kubeconfig": kubeconfig, "api_version": "kubevirt.io/v1", "kind": "VirtualMachineInstanceMigration",
            "namespace": namespace, "name": "{{ vm }}-%s" % sample},
         "register": "migration", "retries": 600, "delay": 1,
         "until": "migration.resources | length > 0 and migration.resources[0].status.phase | default('') "
                  "in ['Succeeded', 'Failed']",
         "failed_when": "migration.resources[0].status.phase | default('') != 'Succeeded'"},
    ]))
    return [{"name": "migrate each VM", "ansible.builtin.include_tasks": str(per_vm), "loop": names,
             "loop_control": {"loop_var": "vm"}}]


def set_limits(admin, parallel):
    """Sets the KubeVirt CR's migration limits; returns what they were (None when unset)."""
    before = ((admin.get(KUBEVIRT_CR).get("spec") or {}).get("configuration") or {}).get("migrations")
    migrations = None if parallel is None else {"parallelMigrationsPerCluster": parallel,
                                                "parallelOutboundMigrationsPerNode": parallel}
    admin.merge_patch(KUBEVIRT_CR, {"spec": {"configuration": {"migrations": migrations}}})
    if before:
        return before
    return None


def restore_limits(admin, before):
    admin.merge_patch(KUBEVIRT_CR, {"spec": {"configuration": {"migrations": None}}})
    if before:
        admin.merge_patch(KUBEVIRT_CR, {"spec": {"configuration": {"migrations": before}}})


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vms", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--loop-repeats", type=int, default=1, help="samples of (b), which takes minutes")
    parser.add_argument("--parallel", type=int, default=100,
                        help="parallelMigrationsPerCluster and parallelOutboundMigrationsPerNode for the run")
    parser.add_argument("--out", default=str(REPO / "docs"))
    args = parser.parse_args(argv)
    lab = lab_up()
    admin = Kube(lab.apiserver_url, lab.token(ADMIN_USER), str(lab.ca_file), timeout=120)
    kubeconfig = str(lab.kubeconfig)
    namespace = f"bench-migration-{uuid.uuid4().hex[:6]}"
    admin.create(object_path("v1", "namespaces"), {"apiVersion": "v1", "kind": "Namespace",
                                                   "metadata": {"name": namespace}})
    names = vm_names(args.vms)
    samples = {"a": [], "b": []}
    load_before = os.getloadavg()[0]
    before = set_limits(admin, args.parallel)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            start_vms(workdir, kubeconfig, namespace, names)
            for repeat in range(max(args.repeats, args.loop_repeats)):
                for tool in "ab":
                    if repeat >= (args.repeats if tool == "a" else args.loop_repeats):
                        continue
                    sample = f"s{tool}{repeat}-{uuid.uuid4().hex[:4]}"
                    tasks = module_tasks(kubeconfig, namespace, names, sample) if tool == "a" \
                        else loop_tasks(workdir, kubeconfig, namespace, names, sample)
                    seconds = run_playbook(workdir, f"migrate-{sample}", tasks)
                    samples[tool].append(seconds)
                    print(f"N={args.vms} ({tool}) {TOOLS[tool]}: {seconds:.1f}s", flush=True)
    finally:
        restore_limits(admin, before)
        admin.delete(object_path("v1", "namespaces", namespace))
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and admin.get_or_none(object_path("v1", "namespaces", namespace)):
            time.sleep(1)
    # The machine may be busy with other work; the report says how busy it was.
    note = "Load average (1 min) at the start of the run %.1f, at the end %.1f (other work on the machine)." % (
        load_before, os.getloadavg()[0])
    result = write_result(args.out, "bench-migration.json", {
        "vms": args.vms, "tools": TOOLS, "parallel": args.parallel, "samples": samples, "note": note})
    medians = result["medians"]
    print(f"ratio (b)/(a): {medians['b'] / medians['a']:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
