"""docs/benchmarks.md from the JSON results of the benchmarks (tests/bench/bench_*.py)."""

import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def vm_section(data):
    tools, medians = data["tools"], dict(data["medians"])
    lines = ["## Declaring N KubeVirt VMs", "",
             "Each sample declares N VMs (runStrategy Halted) in a fresh namespace of the lab (real kube-apiserver "
             "and etcd, KubeVirt's CRDs): *create* is the first run, *no-op* the second, both through "
             "`ansible-playbook` (or `kubectl`), so each time includes the tool's own start-up. Medians, in seconds.", "",
             "| N | tool | samples | create (s) | no-op (s) | create: (b) / this | create: this / (d) | no-op: this / (d) |",
             "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for n in data["sizes"]:
        b, d = medians.get(f"b:{n}"), medians.get(f"d:{n}")
        for tool, label in tools.items():
            key = f"{tool}:{n}"
            if key not in medians:
                continue
            create, noop = medians[key]
            vs_b = f"{b[0] / create:.1f}x" if b and tool != "b" else ""
            vs_d = f"{create / d[0]:.2f}" if d and tool != "d" else ""
            noop_d = f"{noop / d[1]:.2f}" if d and tool != "d" else ""
            lines.append(f"| {n} | ({tool}) {label} | {len(data['samples'][key])} | {create:.2f} | {noop:.2f} | "
                         f"{vs_b} | {vs_d} | {noop_d} |")
    memory = {int(k): v for k, v in data.get("memory_kib", {}).items()}
    if memory:
        lines += ["", "Peak memory (RSS) of the palette.vmo module process: " + ", ".join(
            f"{n} VM(s): {kib / 1024:.1f} MiB" for n, kib in sorted(memory.items()))
            + f"; ratio {memory[max(memory)] / memory[min(memory)]:.2f}."]
    lines += ["", "![create and no-op medians](benchmarks.png)", ""]
    return lines


def maas_section(data):
    medians, d = data["medians"], data["commissioning"]
    lines = ["## Enrolling and commissioning M MAAS machines", "",
             f"M = {data['machines']} machines enlisted by BMC and commissioned, with a simulated commissioning time "
             f"D = {d:g} s, through `ansible-playbook`. Medians, in seconds.", "",
             "| tool | samples | wall (s) | wall / D | wall - D (s) |", "| --- | ---: | ---: | ---: | ---: |"]
    labels = {"a": "palette.vmo.maas_machine, one task", "b": "palette.vmo.maas_machine, a loop of one-machine tasks"}
    for tool, wall in sorted(medians.items()):
        lines.append(f"| ({tool}) {labels[tool]} | {len(data['samples'][tool])} | {wall:.1f} | {wall / d:.2f} | {wall - d:.1f} |")
    return lines + [""]


def cluster_section(data):
    medians, d = data["medians"], data["deploying"]
    p = medians["provisioning"]
    lines = ["## A Palette MAAS cluster of 5 machines", "",
             f"{data['machines']} Ready MAAS machines (1 control plane, 4 workers) become a Palette cluster, Running "
             f"and Healthy, with one palette.vmo.palette_maas_cluster task through `ansible-playbook`. The MAAS "
             f"simulator deploys each machine in D = {d:g} s and the Palette simulator deploys them all at once; "
             f"the simulated provisioning time P (create request to Running, read on the simulator) has a median of "
             f"{p:.1f} s. Medians, in seconds; the wall times include Ansible's start-up.", "",
             "| step | samples | wall (s) | wall / P | wall - P (s) |", "| --- | ---: | ---: | ---: | ---: |"]
    labels = {"create": "create and wait until Running and Healthy", "noop": "second run (no change)",
              "delete": "absent, until every machine is released"}
    for step in ("create", "noop", "delete"):
        wall = medians[step]
        ratio = f"{wall / p:.2f}" if step == "create" else ""
        over = f"{wall - p:.1f}" if step == "create" else ""
        lines.append(f"| {labels[step]} | {len(data['samples'][step])} | {wall:.1f} | {ratio} | {over} |")
    return lines + [""]


def migration_section(data):
    medians, n = data["medians"], data["vms"]
    a, b = medians["a"], medians["b"]
    lines = ["## Live-migrating N KubeVirt VMs", "",
             f"N = {n} running VMs in one namespace of the lab, each migrated to another node once per sample, "
             "through `ansible-playbook` (Ansible's start-up included). KubeVirt's migration limits "
             "(`spec.configuration.migrations` of the KubeVirt CR: parallelMigrationsPerCluster, default 5, and "
             f"parallelOutboundMigrationsPerNode, default 2) were raised to {data['parallel']} for the run, for both "
             "tools; the loop migrates one VM at a time whatever the limits. "
             f"{data.get('note', '')}".rstrip(), "",
             "| tool | samples | wall (s) | per VM (s) | (b) / this |", "| --- | ---: | ---: | ---: | ---: |"]
    for tool, label in data["tools"].items():
        wall = medians[tool]
        ratio = f"{b / wall:.1f}x" if tool != "b" else ""
        lines.append(f"| ({tool}) {label} | {len(data['samples'][tool])} | {wall:.1f} | {wall / n:.2f} | {ratio} |")
    return lines + ["", f"Ratio of the medians, loop / one task: {b / a:.1f}x.", ""]


def snapshot_section(data):
    medians, n = data["medians"], data["vms"]
    b = medians["b"]
    lines = ["## Snapshotting N KubeVirt VMs", "",
             f"N = {n} stopped VMs in one namespace of the lab, each with a 1Gi DataVolume on a storage class with a "
             "VolumeSnapshotClass; every sample makes one new VirtualMachineSnapshot of each VM and waits until it "
             "is ready to use, through `ansible-playbook` (Ansible's start-up included). "
             f"{data.get('note', '')}".rstrip(), "",
             "| tool | samples | wall (s) | per VM (s) | (b) / this |", "| --- | ---: | ---: | ---: | ---: |"]
    for tool, label in data["tools"].items():
        wall = medians[tool]
        ratio = f"{b / wall:.1f}x" if tool != "b" else ""
        lines.append(f"| ({tool}) {label} | {len(data['samples'][tool])} | {wall:.1f} | {wall / n:.2f} | {ratio} |")
    return lines + ["", f"Ratio of the medians, loop / one task: {b / medians['a']:.1f}x.", ""]


def main(out=REPO / "docs"):
    lines = ["# Benchmarks", "",
             "Measured by `make bench` on one machine (2 cores), every tool against the same local lab in the same run.", ""]
    for name, section in (("bench-vms.json", vm_section), ("bench-maas.json", maas_section),
                          ("bench-cluster.json", cluster_section), ("bench-migration.json", migration_section),
                          ("bench-snapshot.json", snapshot_section)):
        path = Path(out) / name
        if path.exists():
            lines += section(json.loads(path.read_text()))
    (Path(out) / "benchmarks.md").write_text("\n".join(lines))
    print(f"wrote {Path(out) / 'benchmarks.md'}")


if __name__ == "__main__":
    main()
