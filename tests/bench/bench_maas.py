"""Benchmark: enroll and commission M machines with a commissioning time of D seconds, in MAAS.

    python -m tests.bench.bench_maas [--machines 50] [--commissioning 5] [--repeats 3]

(a) palette.vmo.maas_machine with every machine in one task (all commission at once, one wait)
(b) the same module in a loop, one machine per task (each task waits for its own machine)

The target for (a) is a wall time of at most 1.2 x D plus a fixed overhead for the batch. The
simulator's durations are set for the run and restored afterwards.
"""

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

from tests.conftest import MaasLab

from .frame import REPO, lab_up, run_playbook, write_result

TOOLS = {"a": "palette.vmo.maas_machine (one task)", "b": "palette.vmo.maas_machine (loop, one per task)"}


def servers(count, run_id, batch_number):
    # Loopback BMC addresses unique to this batch, so no run finds the machines of an earlier one.
    return [{"hostname": f"bench-{run_id}-{i:03d}", "power_type": "ipmi",
             "power_parameters": {"power_address": f"127.{200 + batch_number // 256 % 50}.{batch_number % 256}.{i + 1}",
                                  "power_user": "admin", "power_pass": "bench"}} for i in range(count)]


def enroll_task(tool, maas, machines):
    connection = dict(maas.connection(), poll_interval=0.5)
    if tool == "a":
        task = {"palette.vmo.maas_machine": dict(connection, state="ready", machines=machines)}
    else:
        task = {"palette.vmo.maas_machine": dict(connection, state="ready", hostname="{{ item.hostname }}",
                                                 power_type="ipmi", power_parameters="{{ item.power_parameters }}"),
                "loop": machines}
    return dict(task, name="enroll")


def run_once(tool, maas, count, workdir, batch_number):
    run_id = uuid.uuid4().hex[:6]
    machines = servers(count, run_id, batch_number)
    return run_playbook(workdir, f"{tool}-{run_id}", [enroll_task(tool, maas, machines)])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--machines", type=int, default=50)
    parser.add_argument("--commissioning", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--slow-repeats", type=int, default=1)
    parser.add_argument("--out", default=str(REPO / "docs"))
    args = parser.parse_args(argv)
    maas = MaasLab(lab_up())
    maas.reset()
    maas.durations(commissioning=args.commissioning)
    samples = {}
    batch_number = int(time.time()) % 10000
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for repeat in range(args.repeats):
                for tool in TOOLS:
                    if tool == "b" and repeat >= args.slow_repeats:
                        continue
                    batch_number += 1
                    elapsed = run_once(tool, maas, args.machines, Path(tmp), batch_number)
                    samples.setdefault(tool, []).append(elapsed)
                    print(f"M={args.machines} D={args.commissioning}s ({tool}) {TOOLS[tool]}: {elapsed:.1f}s", flush=True)
    finally:
        maas.reset()
    write_result(args.out, "bench-maas.json",
                 {"machines": args.machines, "commissioning": args.commissioning, "samples": samples})
    return 0


if __name__ == "__main__":
    sys.exit(main())
