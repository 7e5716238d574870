"""Kubernetes credentials never appear in `ansible-playbook -vvv` output, whichever form they are given in."""

import json

import yaml

from tests.lab.state import ADMIN_USER


def _play(tmp_path, auth):
    """A read, then a task that fails in argument validation (its result carries the invocation too)."""
    playbook = tmp_path / "auth.yml"
    playbook.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "read", "palette.vmo.kubevirt_vm_info": dict(auth, namespace="default")},
        {"name": "rbac check", "palette.vmo.vmo_rbac": dict(auth, bindings=[]), "check_mode": True},
        {"name": "refused", "palette.vmo.kubevirt_vm": dict(auth, name="x", namespace="default", colour="blue"),
         "ignore_errors": True},
    ]}]))
    return str(playbook)


def _assert_never_shown(run, token):
    assert run.rc == 0, run
    assert run.recap["localhost"]["ok"] == 3 and run.recap["localhost"]["failed"] == 0, run
    assert "Unsupported parameters" in run.stdout  # the refused task's result was printed
    assert run.stdout.count(token) == 0 and run.stderr.count(token) == 0


def test_kubeconfig_given_as_a_dict(ansible_playbook, lab, tmp_path):
    kubeconfig = yaml.safe_load(lab.kubeconfig.read_text())
    token = lab.token(ADMIN_USER)
    assert token in json.dumps(kubeconfig)
    run = ansible_playbook(_play(tmp_path, {"kubeconfig": kubeconfig}), "-vvv")
    _assert_never_shown(run, token)
    # The kubeconfig's other values (context and cluster names, the server) are not masked in results.
    assert '"kubeconfig": {' in run.stdout and lab.apiserver_url in run.stdout


def test_api_key(ansible_playbook, lab, tmp_path):
    token = lab.token(ADMIN_USER)
    auth = {"host": lab.apiserver_url, "api_key": token, "ca_cert": str(lab.ca_file)}
    _assert_never_shown(ansible_playbook(_play(tmp_path, auth), "-vvv"), token)


def test_kubeconfig_file(ansible_playbook, lab, tmp_path):
    token = lab.token(ADMIN_USER)
    assert token in lab.kubeconfig.read_text()
    _assert_never_shown(ansible_playbook(_play(tmp_path, {"kubeconfig": str(lab.kubeconfig)}), "-vvv"), token)
