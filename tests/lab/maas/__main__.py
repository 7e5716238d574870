"""Runs the MAAS simulator for the lab: `python -m tests.lab.maas` (started by `python -m tests.lab up`)."""

import os
import sys
from http.server import ThreadingHTTPServer

from ..simulator_http import RequestLog, run_forever, tls_server
from ..state import LabState
from .api import ApiKey, MaasApi, make_handler
from .model import Durations, MaasModel


def durations_from_env() -> Durations:
    defaults = Durations()
    return Durations(**{name: float(os.environ.get("LAB_MAAS_%s_SECONDS" % name.upper(), getattr(defaults, name)))
                        for name in vars(defaults)})


def serve(state: LabState) -> ThreadingHTTPServer:
    keys = [ApiKey(state.maas_api_key)]
    if state.maas_user_api_key:
        keys.append(ApiKey(state.maas_user_api_key, username="user", is_admin=False))
    api = MaasApi(MaasModel(durations_from_env()), keys, RequestLog(state.dir / "logs" / "maas-requests.jsonl"))
    return tls_server(state.ports["maas"], make_handler(api), state.dir / "pki" / "maas.crt")


if __name__ == "__main__":
    sys.exit(run_forever(serve))
