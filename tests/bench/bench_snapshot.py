"""Benchmark: snapshot N VMs, with two tools on the same lab.

    python -m tests.bench.bench_snapshot [--vms 100] [--repeats 3] [--loop-repeats 1]

(a) palette.vmo.kubevirt_vm_snapshot with every VM in one task (concurrent creates, one shared watch until each
    snapshot is ready to use)
(b) a loop of kubernetes.core tasks per VM: k8s creates the VirtualMachineSnapshot, then k8s_info is retried
    (delay 1 s) until its status.readyToUse is true or its phase Failed - what a playbook without a snapshot
    module does

Both snapshot the same N stopped VMs, each with a 1Gi blank DataVolume on the lab's lab-rwo class (which has
a VolumeSnapshotClass), in one namespace; every sample makes one new snapshot of each VM. Samples and medians
go to docs/bench-snapshot.json; `python -m tests.bench.report` writes the report.
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

TOOLS = {"a": "palette.vmo.kubevirt_vm_snapshot (one task)",
         "b": "kubernetes.core.k8s + k8s_info until readyToUse (loop, one VM per iteration)"}


def vm_names(n):
    return [f"bench-{i:03d}" for i in range(n)]


def make_vms(workdir, kubeconfig, namespace, names):
    run_playbook(workdir, "make-vms", [{"palette.vmo.kubevirt_vm": {
        "kubeconfig": kubeconfig, "namespace": namespace, "memory": "128Mi", "state": "stopped", "wait": True,
        "wait_timeout": 1800, "vms": [{"name": name, "disks": [{"name": "root", "data_volume": {
            "size": "1Gi", "storage_class": "lab-rwo", "blank": True}}]} for name in names]}}])


def module_tasks(kubeconfig, namespace, names, sample):
    return [{"name": "snapshot every VM", "palette.vmo.kubevirt_vm_snapshot": {
        "kubeconfig": kubeconfig, "namespace": namespace, "vms": names, "snapshot_id": sample,
        "wait_timeout": 1800}}]


def loop_tasks(workdir, kubeconfig, namespace, names, sample):
    """The per-VM pair of tasks in a file, included once per VM."""
    per_vm = workdir / f"snapshot-one-{sample}.yml"
    per_vm.write_text(json.dumps([
        {"name": "create the snapshot", "kubernetes.core.k8s": {
            "kubeconfig": kubeconfig, "state": "present", "definition": {
                "apiVersion": "snapshot.kubevirt.io/v1beta1", "kind": "VirtualMachineSnapshot",
                "metadata": {"name": "{{ vm }}-%s" % sample, "namespace": namespace},
                "spec": {"source": {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": "{{ vm }}"}}}}},
        {"name": "wait until it is ready", "kubernetes.core.k8s_info": {
            "kubeconfig": kubeconfig, "api_version": "snapshot.kubevirt.io/v1beta1", "kind": "VirtualMachineSnapshot",
            "namespace": namespace, "name": "{{ vm }}-%s" % sample},
         "register": "snapshot", "retries": 600, "delay": 1,
         "until": "snapshot.resources | length > 0 and (snapshot.resources[0].status.readyToUse | default(false) "
                  "or snapshot.resources[0].status.phase | default('') == 'Failed')",
         "failed_when": "not (snapshot.resources[0].status.readyToUse | default(false))"},
    ]))
    return [{"name": "snapshot each VM", "ansible.builtin.include_tasks": str(per_vm), "loop": names,
             "loop_control": {"loop_var": "vm"}}]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vms", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--loop-repeats", type=int, default=1, help="samples of (b), which takes minutes")
    parser.add_argument("--out", default=str(REPO / "docs"))
    args = parser.parse_args(argv)
    lab = lab_up()
    admin = Kube(lab.apiserver_url, lab.token(ADMIN_USER), str(lab.ca_file), timeout=120)
    kubeconfig = str(lab.kubeconfig)
    namespace = f"bench-snapshot-{uuid.uuid4().hex[:6]}"
    admin.create(object_path("v1", "namespaces"), {"apiVersion": "v1", "kind": "Namespace",
                                                   "metadata": {"name": namespace}})
    names = vm_names(args.vms)
    samples = {"a": [], "b": []}
    load_before = os.getloadavg()[0]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            make_vms(workdir, kubeconfig, namespace, names)
            for repeat in range(max(args.repeats, args.loop_repeats)):
                for tool in "ab":
                    if repeat >= (args.repeats if tool == "a" else args.loop_repeats):
                        continue
                    sample = f"s{tool}{repeat}-{uuid.uuid4().hex[:4]}"
                    tasks = module_tasks(kubeconfig, namespace, names, sample) if tool == "a" \
                        else loop_tasks(workdir, kubeconfig, namespace, names, sample)
                    seconds = run_playbook(workdir, f"snapshot-{sample}", tasks)
                    samples[tool].append(seconds)
                    print(f"N={args.vms} ({tool}) {TOOLS[tool]}: {seconds:.1f}s", flush=True)
    finally:
        admin.delete(object_path("v1", "namespaces", namespace))
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and admin.get_or_none(object_path("v1", "namespaces", namespace)):
            time.sleep(1)
    note = "Load average (1 min) at the start of the run %.1f, at the end %.1f (other work on the machine)." % (
        load_before, os.getloadavg()[0])
    result = write_result(args.out, "bench-snapshot.json", {
        "vms": args.vms, "tools": TOOLS, "samples": samples, "note": note})
    medians = result["medians"]
    print(f"ratio (b)/(a): {medians['b'] / medians['a']:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
