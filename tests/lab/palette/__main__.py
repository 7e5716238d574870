"""Runs the Palette simulator for the lab: `python -m tests.lab.palette` (started by `python -m tests.lab up`)."""

import ssl
import sys
import threading
from http.server import ThreadingHTTPServer

from ..kube import Kube
from ..paths import REPO_ROOT
from ..state import ADMIN_USER, LabState
from .agent import Agent
from .api import PaletteApi, RequestLog, make_handler
from .model import PaletteModel

# The agent applies the VMO ClusterRoles the collection defines, imported as Ansible imports it.
COLLECTIONS = REPO_ROOT / "build" / "collections"


def serve(state: LabState) -> ThreadingHTTPServer:
    pki = state.dir / "pki"
    model = PaletteModel()
    agent = Agent(Kube(state.apiserver_url, state.token(ADMIN_USER), str(state.ca_file)), model.cluster.uid)
    api = PaletteApi(model, state.palette_api_key, RequestLog(state.palette_request_log), agent, str(state.kubeconfig))
    server = ThreadingHTTPServer(("127.0.0.1", state.ports["palette"]), make_handler(api))
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(pki / "palette.crt"), str(pki / "palette.key"))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    return server


def main() -> int:
    if str(COLLECTIONS) not in sys.path:
        sys.path.insert(0, str(COLLECTIONS))
    state = LabState.load()
    if state is None:
        print("no lab state: run `python -m tests.lab up`", file=sys.stderr)
        return 1
    server = serve(state)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
