"""Runs the Palette simulator for the lab: `python -m tests.lab.palette` (started by `python -m tests.lab up`)."""

import sys
from http.server import ThreadingHTTPServer

from ..kube import Kube
from ..paths import REPO_ROOT
from ..simulator_http import RequestLog, run_forever, tls_server
from ..state import ADMIN_USER, LabState
from .agent import Agent
from .api import PaletteApi, make_handler
from .kubeconfigs import Kubeconfigs
from .maas_client import MaasClient
from .model import PaletteModel

# The agent applies the VMO ClusterRoles the collection defines, imported as Ansible imports it.
COLLECTIONS = REPO_ROOT / "build" / "collections"


def serve(state: LabState) -> ThreadingHTTPServer:
    model = PaletteModel()
    kube = Kube(state.apiserver_url, state.token(ADMIN_USER), str(state.ca_file))
    agent = Agent(kube, model.cluster.uid)
    kubeconfigs = Kubeconfigs(state.dir / "palette-kubeconfigs", state.dir / "pki" / "ca", state.apiserver_url, kube)
    api = PaletteApi(model, state.palette_api_key, RequestLog(state.palette_request_log), agent, str(state.kubeconfig),
                     kubeconfigs=kubeconfigs, maas=MaasClient(state.maas_url, state.maas_api_key, str(state.ca_file)),
                     ledger=state.dir / "palette-maas-machines.json")
    api.maas.recover()  # what an earlier run left: its MAAS machines, Nodes and bindings
    kubeconfigs.ensure_bound(model.cluster.name, model.cluster.uid)
    return tls_server(state.ports["palette"], make_handler(api), state.dir / "pki" / "palette.crt")


if __name__ == "__main__":
    if str(COLLECTIONS) not in sys.path:
        sys.path.insert(0, str(COLLECTIONS))
    sys.exit(run_forever(serve))
