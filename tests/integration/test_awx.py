"""AWX readiness: credential types that feed the modules, the execution environment, and jobs run by ansible-runner."""

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.integration.awx import CREDENTIAL_TYPES, credential_type, file_key, inject, run_job, template_references
from tests.lab.kube import object_path

# Inputs that carry a credential must be secret (AWX encrypts them and never shows them again).
SECRET_WORDS = ("key", "token", "password", "secret", "kubeconfig")


class SiteJob:
    """A job template over playbooks/site.yml: its extra variables (a survey's answers) and its outcome.

    The survey puts the site's VMs and bindings in a namespace of its own, which the VMO pack sets up.
    """

    playbook = "playbooks/site.yml"
    teardown = "playbooks/teardown.yml"

    def __init__(self, admin):
        self.admin, self.namespace = admin, "awx-%s" % uuid.uuid4().hex[:6]
        self.extravars = {"vmo_site_namespace": self.namespace,
                          "vmo_pack_palette_profile_name": "vmo-" + self.namespace,
                          "vmo_pack_vm_namespaces": ["default", "virtual-machines", self.namespace]}

    def verify(self):
        for name in ("web-1", "db-1"):
            vm = self.admin.get(object_path("kubevirt.io/v1", "virtualmachines", name, self.namespace))
            assert vm["status"]["printableStatus"] == "Running", vm["status"]


# Every playbook a job template runs, each with its extra variables and the check made on the lab after it.
JOB_TEMPLATES = [SiteJob]


@pytest.mark.parametrize("path", sorted(CREDENTIAL_TYPES.glob("*.yml")), ids=lambda p: p.stem)
def test_credential_type_is_valid(path):
    definition = yaml.safe_load(path.read_text())
    assert set(definition) == {"name", "description", "kind", "inputs", "injectors"}
    assert definition["kind"] in ("cloud", "net"), "AWX accepts only cloud and net for custom types"
    fields = definition["inputs"]["fields"]
    ids = [field["id"] for field in fields]
    assert len(ids) == len(set(ids)) and set(definition["inputs"]["required"]) <= set(ids)
    for field in fields:
        assert field["type"] in ("string", "boolean") and field["label"] and field.get("help_text"), field
        if any(word in field["id"] for word in SECRET_WORDS):
            assert field.get("secret") is True, "%s holds a credential and must be secret" % field["id"]
    files = {file_key(key) for key in definition["injectors"].get("file") or {}}
    for template in (definition["injectors"].get("file") or {}).values():
        assert template_references(template) <= set(ids), template
    for name, template in definition["injectors"]["env"].items():
        assert name.isupper(), name
        assert template_references(template) <= set(ids) | {"tower"}, template
        for filename in re.findall(r"tower\.filename\.(\w+)", template):
            assert filename in files, "%s uses a file the injectors do not write" % name


def test_credential_types_feed_the_variables_the_modules_read():
    injected = {name: set(credential_type(name)["injectors"]["env"]) for name in ("maas", "palette", "kubeconfig")}
    assert injected["maas"] == {"MAAS_URL", "MAAS_API_KEY", "MAAS_CA_CERT"}
    assert injected["palette"] == {"PALETTE_HOST", "PALETTE_API_KEY", "PALETTE_PROJECT", "PALETTE_CA_CERT"}
    assert injected["kubeconfig"] == {"K8S_AUTH_KUBECONFIG", "KUBECONFIG"}
    # Each of them is an environment fallback of the modules' connection options.
    module_utils = "".join(p.read_text() for p in (REPO_ROOT / "plugins" / "module_utils").rglob("*.py"))
    for variable in set().union(*injected.values()):
        assert '"%s"' % variable in module_utils, variable


def test_maas_credential_alone_drives_a_module(run_module, maas, lab, tmp_path):
    env = inject(credential_type("maas"), {"maas_url": maas.url, "maas_api_key": maas.api_key,
                                           "maas_ca_cert": Path(maas.ca_file).read_text()}, tmp_path)
    assert Path(env["MAAS_CA_CERT"]).read_text() == Path(maas.ca_file).read_text()
    mark = maas.mark()
    result = run_module("palette.vmo.maas_machine_info", {"hostnames": ["awx-credential-check"]}, env_extra=env)
    assert not result.get("failed") and isinstance(result["machines"], list), result.get("msg")
    requests = maas.requests_since(mark)
    assert requests and all(r["status"] == 200 for r in requests), requests
    assert maas.api_key not in result["_stdout"]


def test_palette_credential_alone_drives_a_module(run_module, palette, tmp_path):
    connection = palette.connection()
    env = inject(credential_type("palette"), dict(connection, palette_ca_cert=Path(
        connection["palette_ca_cert"]).read_text()), tmp_path)
    mark = palette.mark()
    result = run_module("palette.vmo.vmo_profile", {"name": "awx-%s" % uuid.uuid4().hex[:6], "state": "absent"},
                        check=True, env_extra=env)
    assert not result.get("failed") and result["changed"] is False, result
    requests = palette.requests_since(mark)
    assert requests and all(r["status"] < 400 for r in requests), requests
    assert not palette.writes_since(mark)
    assert connection["palette_api_key"] not in result["_stdout"]


def test_kubeconfig_credential_alone_drives_a_module(run_module, lab, ns, tmp_path):
    env = inject(credential_type("kubeconfig"), {"kubeconfig": Path(lab.kubeconfig).read_text()}, tmp_path)
    created = run_module("palette.vmo.kubevirt_vm", {"name": "awx-vm", "namespace": ns, "memory": "128Mi",
                                                     "run_strategy": "Halted"}, env_extra=dict(env, KUBECONFIG=""))
    assert created["changed"] is True, created
    found = run_module("palette.vmo.kubevirt_vm_info", {"namespace": ns}, env_extra=dict(env, KUBECONFIG=""))
    assert [vm["name"] for vm in found["vms"]] == ["awx-vm"], found


def lab_credentials(lab, maas, palette, directory):
    """Every credential a job template of the collection carries, made from the lab's endpoints."""
    env = {}
    env.update(inject(credential_type("kubeconfig"), {"kubeconfig": Path(lab.kubeconfig).read_text()},
                      directory / "kubeconfig"))
    env.update(inject(credential_type("maas"), {"maas_url": maas.url, "maas_api_key": maas.api_key,
                                                "maas_ca_cert": Path(maas.ca_file).read_text()}, directory / "maas"))
    connection = palette.connection()
    env.update(inject(credential_type("palette"), dict(connection, palette_ca_cert=Path(
        connection["palette_ca_cert"]).read_text()), directory / "palette"))
    return env


@pytest.mark.parametrize("job_template", JOB_TEMPLATES, ids=lambda job: job.playbook)
def test_job_template_runs_through_ansible_runner_and_reruns_unchanged(job_template, lab, maas, palette, admin,
                                                                       tmp_path, monkeypatch):
    # Only the credentials reach the job, as in AWX: nothing of the developer's shell or of `make test`.
    for name in list(os.environ):
        if name.startswith(("MAAS_", "PALETTE_", "K8S_AUTH_", "ANSIBLE_", "LAB_")) or name == "KUBECONFIG":
            if name.startswith("PALETTE_VMO_"):
                continue  # the lab's own settings (which lab this test worker uses), not a connection
            monkeypatch.delenv(name)
    job = job_template(admin)
    envvars = lab_credentials(lab, maas, palette, tmp_path / "credentials")
    try:
        first = run_job(tmp_path / "job-1", job.playbook, job.extravars, envvars)
        assert first.status == "successful" and first.rc == 0, first.stdout.read()[-4000:]
        assert sum(first.stats["changed"].values()) > 0, first.stats
        job.verify()

        second = run_job(tmp_path / "job-2", job.playbook, job.extravars, envvars)
        assert second.status == "successful", second.stdout.read()[-4000:]
        assert sum(second.stats["changed"].values()) == 0 and not second.stats["failures"], second.stats
    finally:
        # The teardown job template, with the same survey answers.
        teardown = run_job(tmp_path / "teardown", job.teardown, job.extravars, envvars)
        palette.restore_baseline()
    assert teardown.status == "successful", teardown.stdout.read()[-4000:]


def test_ansible_builder_creates_the_execution_environment_context(tmp_path):
    galaxy = yaml.safe_load((REPO_ROOT / "galaxy.yml").read_text())
    definition = yaml.safe_load((REPO_ROOT / "execution-environment.yml").read_text())
    tarball = "build/palette-vmo-%s.tar.gz" % galaxy["version"]
    assert definition["version"] == 3 and ":" in definition["images"]["base_image"]["name"]
    assert not definition["images"]["base_image"]["name"].endswith(":latest")
    assert [f["src"] for f in definition["additional_build_files"]] == [tarball]
    pins = dict(line.split("==") for line in (REPO_ROOT / "constraints.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    assert definition["dependencies"]["ansible_core"]["package_pip"] == "ansible-core==" + pins["ansible-core"]
    assert definition["dependencies"]["ansible_runner"]["package_pip"] == "ansible-runner==" + pins["ansible-runner"]
    bundled = yaml.safe_load((REPO_ROOT / "awx" / "ee-requirements.yml").read_text())["collections"]
    assert {"name": "collections/palette-vmo-%s.tar.gz" % galaxy["version"], "type": "file"} in bundled

    build = subprocess.run([str(Path(sys.executable).parent / "ansible-galaxy"), "collection", "build", "--force",
                            "--output-path", str(REPO_ROOT / "build")], cwd=REPO_ROOT, check=False,
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stdout + build.stderr
    context = tmp_path / "context"
    create = subprocess.run([str(Path(sys.executable).parent / "ansible-builder"), "create", "--context", str(context),
                             "--output-filename", "Containerfile"], cwd=REPO_ROOT, check=False,
                            capture_output=True, text=True)
    assert create.returncode == 0, create.stdout + create.stderr
    containerfile = (context / "Containerfile").read_text()
    assert 'EE_BASE_IMAGE="%s"' % definition["images"]["base_image"]["name"] in containerfile
    assert "ansible-core==%s" % pins["ansible-core"] in containerfile
    assert (context / "_build" / "requirements.txt").read_text() == (REPO_ROOT / "requirements.txt").read_text()
    assert (context / "_build" / "collections" / Path(tarball).name).read_bytes() == (REPO_ROOT / tarball).read_bytes()
    assert "ansible-galaxy collection install" in containerfile and "-r requirements.yml" in containerfile
