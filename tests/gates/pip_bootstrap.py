"""Puts pip into an empty virtual environment without downloading a bootstrap script.

ansible-test creates one virtual environment per sanity test and seeds it by running a cached
`get-pip` script that it would otherwise download from a host outside the package index. This file
stands in for that script: pip comes from the interpreter's own bundled wheel (`ensurepip`), then the
pip version ansible-test asked for is installed from the package index like every other requirement.
"""

import subprocess
import sys

# get-pip options that plain `pip install` does not know.
GET_PIP_ONLY_OPTIONS = ("--no-setuptools", "--no-wheel")


def main(argv):
    # In a child process: ensurepip switches off pip's configuration (its CA bundle among it) in the
    # environment of the process that runs it.
    subprocess.check_call([sys.executable, "-m", "ensurepip"])
    pip_args = [arg for arg in argv if arg not in GET_PIP_ONLY_OPTIONS]
    subprocess.check_call([sys.executable, "-m", "pip", "install", *pip_args])


if __name__ == "__main__":
    main(sys.argv[1:])
