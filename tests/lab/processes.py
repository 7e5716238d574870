"""Starting, finding and stopping the lab's background processes."""

import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(argv: List[str], log_path: Path, env: Optional[Dict[str, str]] = None,
          cwd: Optional[Path] = None) -> int:
    """Starts a detached process (its own session, so it outlives the caller) and returns its pid."""
    log = open(log_path, "ab")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env=env, cwd=cwd, start_new_session=True)
    log.close()
    return proc.pid


def is_running(pid: int, marker: str = "") -> bool:
    """True if pid is alive and, when a marker is given, its command line contains it.

    The marker guards against a recycled pid: `down` must stop only what `up` started.
    """
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        status = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except (FileNotFoundError, ProcessLookupError):
        return False
    if status == "Z":
        return False
    return marker in cmdline


def stop(pid: int, marker: str, grace: float = 10.0) -> None:
    if not is_running(pid, marker):
        return
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not is_running(pid, marker):
            return
        time.sleep(0.1)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def wait_until(check: Callable[[], bool], timeout: float, what: str, log_path: Optional[Path] = None,
               interval: float = 0.2) -> None:
    """Polls `check` until it holds; on timeout names what it waited for and shows the log tail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - a server that is still starting answers with anything
            pass
        time.sleep(interval)
    tail = ""
    if log_path and log_path.exists():
        tail = "\n" + "\n".join(log_path.read_text(errors="replace").splitlines()[-30:])
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}{tail}")
