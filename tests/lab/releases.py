"""KubeVirt's and CDI's release operator manifests at the pinned versions, rendered by their own tooling.

The steps are those of KubeVirt's hack/generate.sh + hack/build-manifests.sh (resource generation, then
the manifest-templator's two passes: file includes, then variables) and of CDI's
hack/build/build-manifests.sh (manifest-generator from code, then from the release template), with the
release defaults of both projects (namespaces `kubevirt` and `cdi`, images from quay.io/kubevirt at the
pinned tags). The rendered YAML is cached beside the binaries, keyed like them by version.

`python -m tests.lab.releases` serves them on loopback for the running lab (see `serve`):
    /kubevirt/<version>/kubevirt-operator.yaml   /cdi/<version>/cdi-operator.yaml
"""

import functools
import http.server
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List

import yaml

from . import gobuild, versions

KUBEVIRT_NAMESPACE = "kubevirt"
CDI_NAMESPACE = "cdi"
IMAGE_REGISTRY = "quay.io/kubevirt"
KUBEVIRT_OPERATOR = f"kubevirt/{versions.KUBEVIRT}/kubevirt-operator.yaml"
CDI_OPERATOR = f"cdi/{versions.CDI}/cdi-operator.yaml"


def _run(argv: List[str]) -> str:
    return subprocess.run([str(arg) for arg in argv], check=True, capture_output=True, text=True).stdout


def _cached(path: Path, render) -> str:
    if not path.exists():
        # Both upstream pipelines drop the empty last line that Go templating leaves.
        text = render().rstrip("\n") + "\n"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.rename(path)
    return path.read_text()


def _render_kubevirt_operator(out: Path) -> str:
    templator = out / "manifest-templator"
    with tempfile.TemporaryDirectory() as tmp:
        generated = Path(tmp) / "generated"
        generated.mkdir()
        _run([out / "kubevirt-release", generated])
        included = Path(tmp) / "kubevirt-operator.yaml.in.tmp"
        included.write_text(_run([templator, "--process-files", f"--generated-manifests-dir={generated}",
                                  f"--input-file={out / 'kubevirt-operator.yaml.in'}"]))
        return _run([templator, "--process-vars", f"--namespace={KUBEVIRT_NAMESPACE}",
                     f"--cdi-namespace={CDI_NAMESPACE}", "--csv-namespace=placeholder",
                     f"--container-prefix={IMAGE_REGISTRY}", f"--container-tag={versions.KUBEVIRT}",
                     "--image-pull-policy=IfNotPresent", "--verbosity=2",
                     f"--kubevirt-logo-path={out / 'kubevirt_logo.png'}", f"--input-file={included}"])


def _cdi_flags() -> List[str]:
    tag = versions.CDI

    def image(name: str) -> str:
        return f"{IMAGE_REGISTRY}/{name}:{tag}"

    return [f"-docker-repo={IMAGE_REGISTRY}", f"-docker-tag={tag}", f"-operator-version={tag}",
            "-deploy-cluster-resources=true", f"-operator-image={image('cdi-operator')}",
            f"-controller-image={image('cdi-controller')}", f"-importer-image={image('cdi-importer')}",
            f"-cloner-image={image('cdi-cloner')}", f"-apiserver-image={image('cdi-apiserver')}",
            f"-uploadproxy-image={image('cdi-uploadproxy')}", f"-uploadserver-image={image('cdi-uploadserver')}",
            f"-ovirt-populator-image={image('cdi-importer')}", "-verbosity=1", "-pull-policy=IfNotPresent",
            f"-namespace={CDI_NAMESPACE}"]


def _render_cdi_operator(out: Path) -> str:
    generator = out / "manifest-generator"
    with tempfile.TemporaryDirectory() as tmp:
        generated = Path(tmp)
        (generated / "operator-everything.yaml.in").write_text(
            _run([generator, "-resource-type=operator", "-resource-group=everything"] + _cdi_flags()))
        return _run([generator, f"-template={out / 'cdi-operator.yaml.in'}", "-cr-name=cdi",
                     f"-generated-manifests-path={generated}"] + _cdi_flags())


@functools.lru_cache(maxsize=None)
def kubevirt_operator_yaml() -> str:
    out = gobuild.build("kubevirt-release")
    return _cached(out / "kubevirt-operator.yaml", lambda: _render_kubevirt_operator(out))


@functools.lru_cache(maxsize=None)
def cdi_operator_yaml() -> str:
    out = gobuild.build("cdi-release")
    return _cached(out / "cdi-operator.yaml", lambda: _render_cdi_operator(out))


def manifests() -> Dict[str, str]:
    """URL path (without the leading slash) -> YAML text."""
    return {KUBEVIRT_OPERATOR: kubevirt_operator_yaml(), CDI_OPERATOR: cdi_operator_yaml()}


def documents(text: str) -> List[dict]:
    return [doc for doc in yaml.load_all(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) if doc]


def write_tree(root: Path) -> Dict[str, Path]:
    """Writes every manifest under root, as a user's air-gapped mirror would hold them."""
    written = {}
    for rel, text in manifests().items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written[rel] = path
    return written


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, fmt, *args):  # one line per request in the service's log
        sys.stderr.write("%s %s\n" % (self.log_date_time_string(), fmt % args))


def serve(root: Path, port: int) -> None:
    handler = functools.partial(_Handler, directory=str(root))
    with http.server.ThreadingHTTPServer(("127.0.0.1", port), handler) as server:
        server.serve_forever()


def main() -> int:
    from .state import LabState

    state = LabState.load()
    if state is None:
        print("no lab state: run `python -m tests.lab up`", file=sys.stderr)
        return 1
    serve(state.release_dir, state.ports["releases"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
