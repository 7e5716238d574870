"""Runs the KubeVirt stand-in: operators, virt-controller and virt-api in one process.

    python -m tests.lab.kubevirt   (started by `python -m tests.lab up`; reads the lab's state)
"""

import logging
import os
import sys
import threading

from ..state import KUBEVIRT_STANDIN_USER, LabState
from ..kube import Kube
from ..velero import server as velero_server
from . import cdi_upload, migration, storage, virt_api, vm_export
from .controller import VirtController
from .operator import Operators
from .runtime import Manager
from . import vm_snapshot
from . import vm_clone, vm_restore


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    state = LabState.load()
    if state is None:
        print("no lab state: run `python -m tests.lab up`", file=sys.stderr)
        return 1
    kube = Kube(state.apiserver_url, state.token(KUBEVIRT_STANDIN_USER), str(state.ca_file))
    pki = state.dir / "pki"
    port = state.ports["virt-api"]
    step = float(os.environ.get("LAB_VMI_STEP_SECONDS", "0.3"))
    manager = Manager(kube)
    operators = Operators(manager, kube, port, (pki / "ca.crt").read_bytes())
    virt = VirtController(manager, kube, operators, step)
    migration.MigrationController(manager, kube, operators, virt, step)
    parts = storage.register(manager, kube)
    vm_snapshot.register(manager, kube, parts)
    vm_restore.VMRestoreController(manager, kube)  # pkg/storage/snapshot/restore.go
    vm_clone.VMCloneController(manager, kube)  # pkg/virt-controller/watch/clone
    vm_export.register(manager, kube, state.ports["virt-exportproxy"], pki)
    cdi_upload.register(manager, kube, state.ports["cdi-api"], state.ports["cdi-uploadproxy"], pki)
    virt_api.serve(kube, port, str(pki / "virt-api.crt"), str(pki / "virt-api.key"), str(pki / "front-proxy-ca.crt"),
                   operators.kubevirt_config, controller_users=(KUBEVIRT_STANDIN_USER,))
    velero_server.register(manager, kube, state.dir)  # Velero's server with the kubevirt-velero-plugin
    manager.start()
    threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
