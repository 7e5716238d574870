"""Reading the apiserver's JSON audit log: what was changed, by whom, since a mark."""

import json
from pathlib import Path
from typing import Dict, List, Optional

MUTATING_VERBS = ("create", "update", "patch", "delete", "deletecollection")


class AuditLog:
    def __init__(self, path: Path):
        self.path = Path(path)

    def mark(self) -> int:
        """A position to read from later: everything logged after this call."""
        return self.path.stat().st_size if self.path.exists() else 0

    def events(self, since: int = 0) -> List[Dict]:
        with open(self.path, "rb") as log:
            log.seek(max(since - 1, 0))
            data = log.read()
        # A mark taken while the apiserver was writing a line falls inside it: that event was under way
        # before the mark, so reading starts after its end. The last line may still be being written too;
        # only whole lines count.
        if since > 0:
            data = data[data.index(b"\n") + 1:] if b"\n" in data else b""
        lines = data.split(b"\n")[:-1]
        return [json.loads(line) for line in lines if line.strip()]

    def mutations(self, since: int = 0, user: Optional[str] = None) -> List[Dict]:
        """Requests that changed something: mutating verbs that succeeded and were not dry runs.

        The apiserver logs a `dryRun=All` request like any other (its requestURI says dryRun=All),
        but it persists nothing; a check-mode run is one that leaves no entry here.
        """
        found = []
        for event in self.events(since):
            if event.get("verb") not in MUTATING_VERBS:
                continue
            if "dryRun=All" in event.get("requestURI", ""):
                continue
            if event.get("responseStatus", {}).get("code", 0) >= 400:
                continue
            if user and event.get("user", {}).get("username") != user:
                continue
            found.append(event)
        return found
