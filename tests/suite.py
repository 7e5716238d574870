"""`make test`: the quality gates and the test suites at the same time, then one summary.

The gates (`make gates`: contract, ansible-test sanity, ansible-lint, changelog lint) need no lab, so they run in
the background while pytest runs the unit, lab and integration tests on `PYTEST_WORKERS` workers (pytest-xdist,
a file per worker at a time; every worker has a lab of its own, see tests/conftest.py). The gates' output is
printed when they end, then the time of each stage and a closing line with the counts of both.

    python -m tests.suite [extra pytest options, e.g. -x or -k name]
"""

import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from xml.etree import ElementTree

REPO_ROOT = Path(__file__).resolve().parents[1]
BUILD = REPO_ROOT / "build"
SUITES = ("tests/unit", "tests/lab/tests", "tests/integration")
STAGES = {"tests.unit": "unit", "tests.lab": "lab", "tests.integration": "integration"}


def start_gates(log_path):
    make = os.environ.get("MAKE", "make")
    # Closed by main() once the gates end.
    log = open(log_path, "w")  # pylint: disable=consider-using-with
    return subprocess.Popen([make, "--no-print-directory", "gates"], cwd=REPO_ROOT, stdout=log,
                            stderr=subprocess.STDOUT), log


def run_pytest(workers, junit, extra):
    argv = [sys.executable, "-m", "pytest", "-n", str(workers), "--dist", "loadfile", "--junitxml", str(junit)]
    return subprocess.run(argv + list(extra) + list(SUITES), cwd=REPO_ROOT, check=False).returncode


def stage_times(junit):
    """{stage: (tests, failures, seconds of test time)} from pytest's JUnit report."""
    totals = defaultdict(lambda: [0, 0, 0.0])
    if not junit.exists():
        return {}
    for case in ElementTree.parse(junit).iter("testcase"):
        stage = next((name for prefix, name in STAGES.items() if case.get("classname", "").startswith(prefix)), "other")
        totals[stage][0] += 1
        totals[stage][1] += any(child.tag in ("failure", "error") for child in case)
        totals[stage][2] += float(case.get("time") or 0)
    return {stage: tuple(values) for stage, values in totals.items()}


def main(argv):
    BUILD.mkdir(exist_ok=True)
    workers = int(os.environ.get("PYTEST_WORKERS", "2"))
    junit, gates_log = BUILD / "junit.xml", BUILD / "gates.log"
    started = time.monotonic()
    gates, log = start_gates(gates_log)
    tests_rc = run_pytest(workers, junit, argv)
    tests_done = time.monotonic()
    gates_rc = gates.wait()
    log.close()
    sys.stdout.write(gates_log.read_text())
    print("gates: %s; tests: %s in %.0fs on %d workers; whole run %.0fs" % (
        "passed" if gates_rc == 0 else "FAILED (exit %d)" % gates_rc, "passed" if tests_rc == 0 else "FAILED",
        tests_done - started, workers, time.monotonic() - started))
    times = stage_times(junit)
    for stage in ("unit", "lab", "integration", "other"):
        if stage in times:
            count, failures, seconds = times[stage]
            print("  %s: %d tests, %d failed, %.0fs of test time" % (stage, count, failures, seconds))
    passed = sum(count - failures for count, failures, _seconds in times.values())
    failed = sum(failures for _count, failures, _seconds in times.values()) + (1 if gates_rc else 0)
    print("summary: %d passed, %d failed" % (passed, failed))
    return 0 if gates_rc == 0 and tests_rc == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
