"""`make sanity`: `ansible-test sanity` on the collection, for Python 3.11, without containers.

ansible-test only runs from a directory of the form .../ansible_collections/<namespace>/<name> and
reads the file list from git, so the checkout's files (tracked and not yet tracked, minus the ignored
ones) are copied into build/sanity/ansible_collections/palette/vmo and made a throwaway git repository
there. ansible-test then runs each sanity test in its own virtual environment with the tool versions
that ansible-core pins (cached under ~/.ansible/test/venv, so only the first run installs them).

Extra arguments go to ansible-test, e.g. `python -m tests.gates.sanity --test pylint`.
"""

import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
COLLECTION_COPY = REPO_ROOT / "build" / "sanity" / "ansible_collections" / "palette" / "vmo"
PYTHON_VERSION = "%d.%d" % sys.version_info[:2]


def checkout_files():
    listing = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             cwd=REPO_ROOT, check=True, capture_output=True).stdout
    names = sorted({name for name in listing.decode().split("\0") if name})
    # A tracked file deleted in the working tree is not part of what is tested.
    return [name for name in names if (REPO_ROOT / name).is_file()]


def copy_collection():
    shutil.rmtree(COLLECTION_COPY.parents[2], ignore_errors=True)
    for name in checkout_files():
        target = COLLECTION_COPY / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, target)
    git = ["git", "-c", "init.defaultBranch=main", "-c", "user.name=sanity", "-c", "user.email=sanity@localhost"]
    subprocess.run(git + ["init", "--quiet"], cwd=COLLECTION_COPY, check=True)
    subprocess.run(git + ["add", "--all"], cwd=COLLECTION_COPY, check=True)


def seed_pip_bootstrap():
    """ansible-test looks for its pip bootstrap script in its cache before downloading one."""
    from ansible_test._internal.python_requirements import get_venv_packages

    pip_version = get_venv_packages(types.SimpleNamespace(version=PYTHON_VERSION))["pip"]
    cached = Path.home() / ".ansible" / "test" / "cache" / ("get_pip_%s.py" % pip_version.replace(".", "_"))
    if not cached.exists():
        cached.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(Path(__file__).with_name("pip_bootstrap.py"), cached)


def main(argv):
    copy_collection()
    seed_pip_bootstrap()
    bindir = str(Path(sys.executable).parent)
    env = dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", ""))
    command = [os.path.join(bindir, "ansible-test"), "sanity", "--local", "--python", PYTHON_VERSION, *argv]
    return subprocess.run(command, cwd=COLLECTION_COPY, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
