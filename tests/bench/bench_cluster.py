"""Benchmark: a Palette MAAS cluster of 5 machines (1 control plane, 4 workers), from Ready MAAS machines to
Running and Healthy, against the simulated provisioning time.

    python -m tests.bench.bench_cluster [--deploying 10] [--repeats 3]

The lab's MAAS simulator deploys every machine in D seconds (--deploying); the Palette simulator allocates and
deploys the machines of every pool at once, as Palette's MAAS provider does, and makes each a Node. The simulated
provisioning time P is measured on the simulator itself: from its log's time of the create request to the moment
it first reports the cluster Running (watched every 50 ms through its lab endpoint, which logs nothing). The
benchmark reports the wall time of one palette.vmo.palette_maas_cluster task through `ansible-playbook` (create and
wait, Ansible's start-up included), its second, no-op run, and the deletion (until every machine is released),
with wall / P.
"""

import argparse
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from tests.conftest import MaasLab, PaletteLab

from .frame import REPO, lab_up, run_playbook, write_result

WORKERS = 4
INFRA_PROFILE = {"name": "lab-maas-infra", "version": "1.0.0"}


def servers(run_id, batch_number):
    # Loopback BMC addresses unique to this batch, so no run finds the machines of an earlier one.
    return [{"hostname": f"bench-{run_id}-{i}", "power_type": "ipmi",
             "power_parameters": {"power_address": f"127.90.{batch_number % 256}.{i + 1}", "power_user": "admin",
                                  "power_pass": "bench"}} for i in range(1 + WORKERS)]


def cluster_task(palette, name, tag, state, account):
    options = dict(palette.connection(), name=name, state=state, wait_timeout=900)
    if state == "present":
        options.update(cloud_account=account, domain="maas", profiles=[INFRA_PROFILE],
                       control_plane={"size": 1, "resource_pool": "default", "node_tags": [tag]},
                       worker_pools=[{"name": "workers", "size": WORKERS, "resource_pool": "default",
                                      "node_tags": [tag]}])
    return {"name": f"cluster {state}", "palette.vmo.palette_maas_cluster": options}


class RunningWatch:
    """The wall-clock time at which the simulator first reports the cluster Running, watched in a thread."""

    def __init__(self, palette, name):
        self.palette, self.name, self.running_at = palette, name, None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.watch, daemon=True)

    def watch(self):
        while not self.stop.is_set() and self.running_at is None:
            state = ((self.palette.info().get("maas_clusters") or {}).get(self.name) or {}).get("state")
            if state == "Running":
                self.running_at = time.time()
            self.stop.wait(0.05)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *_):
        self.stop.set()
        self.thread.join()


def create_request_time(palette, mark):
    return next(r["time"] for r in palette.requests_since(mark)
                if r["method"] == "POST" and r["path"] == "/v1/spectroclusters/maas")


def run_once(maas, palette, account, workdir, batch_number):
    run_id = uuid.uuid4().hex[:6]
    tag, name = f"bench-{run_id}", f"bench-{run_id}"
    machines = servers(run_id, batch_number)
    enroll = {"name": "enroll",
              "palette.vmo.maas_machine": dict(maas.connection(), state="ready", tags=[tag], machines=machines)}
    run_playbook(workdir, f"enroll-{run_id}", [enroll])
    mark = palette.mark()
    with RunningWatch(palette, name) as watch:
        create = run_playbook(workdir, f"create-{run_id}", [cluster_task(palette, name, tag, "present", account)])
    provisioning = watch.running_at - create_request_time(palette, mark)
    noop = run_playbook(workdir, f"noop-{run_id}", [cluster_task(palette, name, tag, "present", account)])
    delete = run_playbook(workdir, f"delete-{run_id}", [cluster_task(palette, name, tag, "absent", account)])
    return provisioning, create, noop, delete


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deploying", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(REPO / "docs"))
    args = parser.parse_args(argv)
    state = lab_up()
    maas, palette = MaasLab(state), PaletteLab(state)
    account = os.environ.get("LAB_PALETTE_MAAS_ACCOUNT", "lab-maas")
    maas.reset()
    palette.reset()
    maas.durations(commissioning=0.5, deploying=args.deploying, releasing=0.5, erasing=0.5)
    samples = {"provisioning": [], "create": [], "noop": [], "delete": []}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for repeat in range(args.repeats):
                provisioning, create, noop, delete = run_once(maas, palette, account, Path(tmp),
                                                              int(time.time()) + repeat)
                for key, value in (("provisioning", provisioning), ("create", create), ("noop", noop),
                                   ("delete", delete)):
                    samples[key].append(value)
                print(f"5 machines, D={args.deploying:g}s: simulated provisioning {provisioning:.1f}s, create "
                      f"{create:.1f}s, no-op {noop:.1f}s, delete {delete:.1f}s", flush=True)
    finally:
        palette.reset()
        maas.reset()
    write_result(args.out, "bench-cluster.json", {"machines": 1 + WORKERS, "deploying": args.deploying, "samples": samples})
    return 0


if __name__ == "__main__":
    sys.exit(main())
