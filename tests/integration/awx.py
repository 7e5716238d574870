"""What AWX / Automation Controller does around a job: credential injection and the ansible-runner call.

`inject` renders a credential type's injectors the way AWX does for a credential attached to a job
template: every `file` template becomes a file in the job's private data directory, referred to as
`tower.filename.<name>` (or `tower.filename` for a lone `template`), and every `env` value is a Jinja
template over the credential's inputs. `run_job` then starts the playbook with ansible-runner from a
private data directory laid out as AWX lays it out (project/, inventory/, env/extravars, env/envvars).
"""

import json
import os
import re
import shutil
import sys
from pathlib import Path

import yaml
from jinja2.sandbox import ImmutableSandboxedEnvironment

from tests.conftest import REPO_ROOT

CREDENTIAL_TYPES = REPO_ROOT / "awx" / "credential_types"
# Where AWX's execution environment has the collection installed; here, the checkout linked by `make collections`.
COLLECTIONS = REPO_ROOT / "build" / "collections"


def credential_type(name):
    return yaml.safe_load((CREDENTIAL_TYPES / ("%s.yml" % name)).read_text())


def file_key(template_key):
    """`template.ca` -> `ca`; a lone `template` has no name."""
    return template_key.split(".", 1)[1] if "." in template_key else None


def inject(definition, inputs, directory):
    """The environment a job gets from one credential of this type, with its files written under directory."""
    jinja = ImmutableSandboxedEnvironment()
    values = {field["id"]: inputs.get(field["id"], "") for field in definition["inputs"]["fields"]}
    filenames = {}
    directory.mkdir(parents=True, exist_ok=True)
    for template_key, template in (definition["injectors"].get("file") or {}).items():
        path = directory / ("credential-%s" % (file_key(template_key) or "file"))
        path.write_text(jinja.from_string(template).render(values))
        path.chmod(0o600)
        filenames[file_key(template_key)] = str(path)
    tower = {"filename": filenames.get(None, filenames)}
    return {name: jinja.from_string(template).render(dict(values, tower=tower, awx=tower))
            for name, template in (definition["injectors"].get("env") or {}).items()}


def template_references(text):
    """The names a Jinja template reads: `{{ tower.filename.ca if ca else '' }}` -> {tower, ca}."""
    names = set()
    for expression in re.findall(r"{{(.*?)}}", text):
        names |= set(re.findall(r"(?<![.\w'\"])([A-Za-z_]\w*)", expression))
    return names - {"if", "else", "and", "or", "not", "none", "true", "false"}


def run_job(private_data_dir, playbook, extravars, envvars, inventory=REPO_ROOT / "inventories" / "lab"):
    """One job template run: the project, an inventory, extra variables and the credentials' environment."""
    import ansible_runner

    project = private_data_dir / "project"
    shutil.copytree(REPO_ROOT / "playbooks", project / "playbooks")
    shutil.copytree(inventory, private_data_dir / "inventory")
    env = private_data_dir / "env"
    env.mkdir(parents=True, exist_ok=True)
    (env / "extravars").write_text(json.dumps(extravars))
    # The execution environment provides the collection; ANSIBLE_* settings are the job's, not a developer's.
    # In the execution environment ansible-playbook is on PATH; here it is the virtualenv's.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    (env / "envvars").write_text(json.dumps(dict(envvars, ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS), PATH=path,
                                                 ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")))
    (env / "settings").write_text(json.dumps({"suppress_ansible_output": True}))
    return ansible_runner.run(private_data_dir=str(private_data_dir), playbook=playbook, quiet=True)
