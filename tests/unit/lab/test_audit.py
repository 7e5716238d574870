"""The audit reader counts only what persisted a change."""

import json

from tests.lab.audit import AuditLog


def _event(verb, uri, code=200, user="lab-admin"):
    return {"verb": verb, "requestURI": uri, "responseStatus": {"code": code}, "user": {"username": user}}


def test_mutations_skip_reads_dry_runs_failures_and_partial_lines(tmp_path):
    path = tmp_path / "audit.log"
    events = [
        _event("get", "/api/v1/namespaces/a/configmaps/x"),
        _event("create", "/api/v1/namespaces/a/configmaps?dryRun=All", 201),
        _event("create", "/api/v1/namespaces/a/configmaps", 403),
        _event("patch", "/apis/kubevirt.io/v1/namespaces/a/virtualmachines/vm", 200, "alice"),
        _event("create", "/api/v1/namespaces/a/configmaps", 201),
    ]
    path.write_text("".join(json.dumps(e) + "\n" for e in events) + '{"verb": "ge')
    log = AuditLog(path)
    assert [e["verb"] for e in log.mutations()] == ["patch", "create"]
    assert [e["verb"] for e in log.mutations(user="alice")] == ["patch"]
    mark = log.mark()
    with open(path, "a") as f:
        f.write('t"}\n' + json.dumps(_event("delete", "/api/v1/namespaces/a")) + "\n")
    assert [e["verb"] for e in log.mutations(since=mark - len('{"verb": "ge'))] == ["delete"]


def test_a_mark_inside_a_line_being_written_reads_from_the_next_whole_line(tmp_path):
    path = tmp_path / "audit.log"
    path.write_text(json.dumps(_event("get", "/api/v1/namespaces")) + "\n" + '{"verb": "cre')
    log = AuditLog(path)
    mark = log.mark()
    with open(path, "a") as f:
        f.write('ate", "requestURI": "/api/v1/namespaces", "responseStatus": {"code": 201}}\n')
        f.write(json.dumps(_event("delete", "/api/v1/namespaces/a")) + "\n")
    assert [e["verb"] for e in log.events(since=mark)] == ["delete"]
