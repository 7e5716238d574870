"""Benchmark: declare N VMs, then declare them again, with four tools side by side on the same lab.

    python -m tests.bench.bench_vms [--sizes 10,100,1000] [--repeats 3] [--slow-repeats 1]

(a) palette.vmo.kubevirt_vm, all VMs in one task      (b) kubevirt.core.kubevirt_vm in a loop
(c) kubernetes.core.k8s with the list of definitions  (d) kubectl apply --server-side (the floor)

Every tool declares the same VMs (runStrategy Halted, so the measurement is the tool, not the VMs
booting) into a fresh namespace; "create" is the first run, "no-op" the second. Samples and medians go
to docs/bench-vms.json and a chart to docs/benchmarks.png; `python -m tests.bench` writes the report.
Also measured: the peak memory of the palette.vmo module process for 1 VM and for the largest N.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from tests.lab import gobuild
from tests.lab.kube import Kube, object_path
from tests.lab.state import ADMIN_USER

from .frame import BIN, REPO, ansible_env, lab_up, timed
TOOLS = {
    "a": "palette.vmo.kubevirt_vm (one task)",
    "b": "kubevirt.core.kubevirt_vm (loop)",
    "c": "kubernetes.core.k8s (list)",
    "d": "kubectl apply --server-side",
}
MEMORY = "128Mi"


def vm_names(n):
    return [f"bench-{i:04d}" for i in range(n)]


def vmi_template_spec():
    return {"domain": {"memory": {"guest": MEMORY},
                       "devices": {"interfaces": [{"name": "default", "masquerade": {}}]}},
            "networks": [{"name": "default", "pod": {}}]}


def vm_object(name, namespace):
    return {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"runStrategy": "Halted", "template": {"spec": vmi_template_spec()}}}


def playbook_for(tool, namespace, names, kubeconfig):
    if tool == "a":
        task = {"palette.vmo.kubevirt_vm": {
            "kubeconfig": kubeconfig, "namespace": namespace, "run_strategy": "Halted", "memory": MEMORY,
            "vms": [{"name": n} for n in names]}}
    elif tool == "b":
        task = {"kubevirt.core.kubevirt_vm": {
            "kubeconfig": kubeconfig, "namespace": namespace, "name": "{{ item }}", "run_strategy": "Halted",
            "spec": vmi_template_spec()}, "loop": names}
    else:
        task = {"kubernetes.core.k8s": {
            "kubeconfig": kubeconfig, "state": "present",
            "definition": [vm_object(n, namespace) for n in names]}}
    return [{"hosts": "localhost", "gather_facts": False, "tasks": [dict(task, name="declare VMs")]}]


def run_tool(tool, namespace, names, lab, workdir):
    """Seconds for the first (create) and second (no-op) run of one tool."""
    if tool == "d":
        manifest = workdir / f"{namespace}.json"
        manifest.write_text(json.dumps({"apiVersion": "v1", "kind": "List",
                                        "items": [vm_object(n, namespace) for n in names]}))
        kubectl = str(gobuild.program("kubectl"))
        argv = [kubectl, "--kubeconfig", str(lab.kubeconfig), "apply", "--server-side",
                "--field-manager", "bench", "-f", str(manifest)]
        return timed(argv), timed(argv)
    playbook = workdir / f"{namespace}.yml"
    playbook.write_text(json.dumps(playbook_for(tool, namespace, names, str(lab.kubeconfig))))
    argv = [str(BIN / "ansible-playbook"), str(playbook)]
    return timed(argv, ansible_env()), timed(argv, ansible_env())


def module_peak_memory_kib(namespace, n, lab, workdir):
    """Peak RSS of the palette.vmo module process itself, run as Ansible runs it (args file)."""
    args = workdir / f"args-{n}.json"
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {
        "kubeconfig": str(lab.kubeconfig), "namespace": namespace, "run_strategy": "Halted", "memory": MEMORY,
        "vms": [{"name": name} for name in vm_names(n)]}}))
    env = dict(os.environ, PYTHONPATH=str(REPO / "build" / "collections"))
    module = REPO / "plugins" / "modules" / "kubevirt_vm.py"
    proc = subprocess.run(["/usr/bin/time", "-f", "%M", sys.executable, str(module), str(args)],
                          cwd=workdir, env=env, check=False, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(proc.stdout[-2000:] + proc.stderr[-2000:])
    return int(proc.stderr.strip().splitlines()[-1])


def fresh_namespace(admin, prefix):
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    admin.create(object_path("v1", "namespaces"), {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


def drop_namespace(admin, name):
    admin.delete(object_path("v1", "namespaces", name))
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and admin.get_or_none(object_path("v1", "namespaces", name)):
        time.sleep(0.5)


def write_results(samples, memory, sizes, out_dir):
    """Raw samples and medians as JSON; tests.bench.report turns them into docs/benchmarks.md."""
    medians = {}
    for key, runs in samples.items():
        medians[key] = [statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)]
    (out_dir / "bench-vms.json").write_text(json.dumps(
        {"sizes": sizes, "tools": TOOLS, "samples": samples, "medians": medians, "memory_kib": memory}, indent=1))
    chart({(k.split(":")[0], int(k.split(":")[1])): v for k, v in medians.items()}, sizes, out_dir / "benchmarks.png")


def chart(medians, sizes, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for index, title in enumerate(("create", "no-op re-run")):
        ax = axes[index]
        for tool, label in TOOLS.items():
            points = [(n, medians[(tool, n)][index]) for n in sizes if (tool, n) in medians]
            if points:
                ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=f"({tool}) {label}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("VMs (N)")
        ax.set_ylabel("seconds (median)")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--slow-repeats", type=int, default=1,
                        help="samples of (b), the per-VM loop, from N=100 on (each takes minutes)")
    parser.add_argument("--tools", default="abcd")
    parser.add_argument("--out", default=str(REPO / "docs"))
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    lab = lab_up()
    admin = Kube(lab.apiserver_url, lab.token(ADMIN_USER), str(lab.ca_file), timeout=120)
    samples, memory = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for n in sizes:
            for repeat in range(args.repeats):
                for tool in args.tools:
                    # The per-VM loop takes minutes from 100 VMs on: fewer samples of it.
                    if tool == "b" and n >= 100 and repeat >= args.slow_repeats:
                        continue
                    namespace = fresh_namespace(admin, f"bench-{tool}")
                    try:
                        create, noop = run_tool(tool, namespace, vm_names(n), lab, workdir)
                    finally:
                        drop_namespace(admin, namespace)
                    samples.setdefault(f"{tool}:{n}", []).append((create, noop))
                    print(f"N={n} ({tool}) {TOOLS[tool]}: create {create:.2f}s, no-op {noop:.2f}s", flush=True)
        for n in sorted({1, max(sizes)}):
            namespace = fresh_namespace(admin, "bench-mem")
            try:
                memory[n] = module_peak_memory_kib(namespace, n, lab, workdir)
            finally:
                drop_namespace(admin, namespace)
            print(f"module peak RSS for {n} VMs: {memory[n] / 1024:.1f} MiB", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_results(samples, memory, sizes, out)
    print(f"wrote {out / 'bench-vms.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
