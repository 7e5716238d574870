"""What the lab's HTTP simulators (MAAS, Palette) share: a TLS server on loopback, verb dispatch,
a JSON-lines request log and the process entry point."""

import json
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

from .state import LabState


def mirrors(*operations: str, source: str = ""):
    """Names the published operations a simulator handler serves, and the product source it follows.

    `operations` are the spec's operationIds (MAAS OpenAPI `Handler_method`, Palette Swagger `v1...`);
    `source` is the product file and function the behaviour was read from. The project's contract test
    reads both: a route whose handler names no operation, or an operation the spec lacks, fails it.
    """

    def mark(handler: Callable) -> Callable:
        handler.spec_operations = tuple(operations)
        handler.product_source = source
        return handler

    return mark


def spend_fault(lock, faults, name: str) -> bool:
    """Spends one of the fault counter `name` (e.g. `lose_write_answers`) if any is left; True when it did."""
    with lock:
        left = getattr(faults, name)
        if left <= 0:
            return False
        setattr(faults, name, left - 1)
        return True


class RequestLog:
    """One JSON line per request, so tests can prove that check mode wrote nothing."""

    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()

    def write(self, entry: dict) -> None:
        with self.lock, open(self.path, "a") as log:
            log.write(json.dumps(entry) + "\n")


class VerbHandler(BaseHTTPRequestHandler):
    """Sends every HTTP verb to `_serve(method)`; the request log replaces the default stderr lines."""

    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def _serve(self, method: str) -> None:
        raise NotImplementedError

    def do_GET(self):  # noqa: N802
        self._serve("GET")

    def do_POST(self):  # noqa: N802
        self._serve("POST")

    def do_PUT(self):  # noqa: N802
        self._serve("PUT")

    def do_PATCH(self):  # noqa: N802
        self._serve("PATCH")

    def do_DELETE(self):  # noqa: N802
        self._serve("DELETE")


def tls_server(port: int, handler: type, cert: Path) -> ThreadingHTTPServer:
    """HTTPS on 127.0.0.1 with `cert` (and the key beside it), signed by the lab CA."""
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(cert.with_suffix(".key")))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    return server


def run_forever(serve: Callable[[LabState], ThreadingHTTPServer]) -> int:
    """A simulator's `main`: serves the running lab until the process is stopped."""
    state = LabState.load()
    if state is None:
        print("no lab state: run `python -m tests.lab up`", file=sys.stderr)
        return 1
    server = serve(state)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    threading.Event().wait()
    return 0
