"""Runs the MAAS simulator for the lab: `python -m tests.lab.maas` (started by `python -m tests.lab up`)."""

import os
import ssl
import sys
import threading
from http.server import ThreadingHTTPServer

from ..state import LabState
from .api import ApiKey, MaasApi, RequestLog, make_handler
from .model import Durations, MaasModel


def durations_from_env() -> Durations:
    defaults = Durations()
    return Durations(**{name: float(os.environ.get("LAB_MAAS_%s_SECONDS" % name.upper(), getattr(defaults, name)))
                        for name in vars(defaults)})


def serve(state: LabState) -> ThreadingHTTPServer:
    pki = state.dir / "pki"
    api = MaasApi(MaasModel(durations_from_env()), [ApiKey(state.maas_api_key)],
                  RequestLog(state.dir / "logs" / "maas-requests.jsonl"))
    server = ThreadingHTTPServer(("127.0.0.1", state.ports["maas"]), make_handler(api))
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(pki / "maas.crt"), str(pki / "maas.key"))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    return server


def main() -> int:
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
