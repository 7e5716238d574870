"""Benchmark: enroll and commission M machines with a commissioning time of D seconds, in MAAS.

    python -m tests.bench.bench_maas [--machines 50] [--commissioning 5] [--repeats 3]

(a) palette.vmo.maas_machine with every machine in one task (all commission at once, one wait)
(b) the same module in a loop, one machine per task (each task waits for its own machine)

The target for (a) is a wall time of at most 1.2 x D plus a fixed overhead for the batch. The
simulator's durations are set for the run and restored afterwards.
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

from tests.conftest import MaasLab
from tests.lab.state import LabState

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TOOLS = {"a": "palette.vmo.maas_machine (one task)", "b": "palette.vmo.maas_machine (loop, one per task)"}


def servers(count, run_id, batch_number):
    # Loopback BMC addresses unique to this batch, so no run finds the machines of an earlier one.
    return [{"hostname": f"bench-{run_id}-{i:03d}", "power_type": "ipmi",
             "power_parameters": {"power_address": f"127.{200 + batch_number // 256 % 50}.{batch_number % 256}.{i + 1}",
                                  "power_user": "admin", "power_pass": "bench"}} for i in range(count)]


def playbook(tool, maas, machines):
    connection = dict(maas.connection(), poll_interval=0.5)
    if tool == "a":
        task = {"palette.vmo.maas_machine": dict(connection, state="ready", machines=machines)}
    else:
        task = {"palette.vmo.maas_machine": dict(connection, state="ready", hostname="{{ item.hostname }}",
                                                 power_type="ipmi", power_parameters="{{ item.power_parameters }}"),
                "loop": machines}
    return [{"hosts": "localhost", "gather_facts": False, "tasks": [dict(task, name="enroll")]}]


def run_once(tool, maas, count, workdir, batch_number):
    run_id = uuid.uuid4().hex[:6]
    machines = servers(count, run_id, batch_number)
    path = workdir / f"{tool}-{run_id}.yml"
    path.write_text(json.dumps(playbook(tool, maas, machines)))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_LOCAL_TEMP=str(REPO / "build" / "ansible-tmp"))
    started = time.perf_counter()
    proc = subprocess.run([str(BIN / "ansible-playbook"), str(path)], cwd=REPO, env=env, check=False,
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(proc.stdout[-3000:] + proc.stderr[-2000:])
    return elapsed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--machines", type=int, default=50)
    parser.add_argument("--commissioning", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--slow-repeats", type=int, default=1)
    parser.add_argument("--out", default=str(REPO / "docs"))
    args = parser.parse_args(argv)
    subprocess.run([sys.executable, "-m", "tests.lab", "up"], cwd=REPO, check=True)
    maas = MaasLab(LabState.load())
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
    result = {"machines": args.machines, "commissioning": args.commissioning, "samples": samples,
              "medians": {tool: statistics.median(values) for tool, values in samples.items()}}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench-maas.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result["medians"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
