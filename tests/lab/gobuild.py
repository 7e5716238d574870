"""Builds the lab's Go programs from the Go module proxy, one dedicated wrapper module per family.

Kubernetes, etcd and KubeVirt publish their programs inside modules whose go.mod files use local
`replace` directives (staging trees), which a consumer does not inherit. Each family therefore gets
a generated wrapper go.mod that requires the upstream module and repeats its replaces, pointing the
staging ones at the published versions. Keeping one wrapper per family stops Go's version selection
from mixing their dependency graphs.

KubeVirt's CRD generator functions live in a package that imports most of KubeVirt, including
modules the module proxy may not serve. The generator family therefore copies just the two files that
define the CRDs (crds.go and the generated schemas) out of the downloaded module into the wrapper and
compiles them with our small main package; the CRDs come out exactly as virt-operator makes them.
The release-manifest family does the same for the files behind KubeVirt's release templating (the
operator Deployment, its RBAC, the KubeVirt CRD) and builds KubeVirt's own manifest-templator from
them; CDI's manifest-generator builds straight from its module. Upstream templates the generators read
at run time are copied beside the binaries (`data`).

Outputs go to the cache (paths.cache_dir()) under a key made of the family and its pinned version,
plus a digest of any generator source of ours; a finished build leaves a marker, so a second call
is a no-op.
"""

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple

from . import paths, versions


def _kubernetes_staging(version: str) -> str:
    # k8s.io/kubernetes v1.36.3 publishes its staging modules as v0.36.3.
    return "v0" + version[2:]


def _same_version(version: str) -> str:
    return version


def _kubernetes_ldflags(version: str) -> str:
    major, minor = version[1:].split(".")[:2]
    prefix = "-X k8s.io/component-base/version."
    # Without these /version reports v0.0.0-master, and clients that compare versions misbehave.
    return f"-s -w {prefix}gitVersion={version} {prefix}gitMajor={major} {prefix}gitMinor={minor}"


@dataclasses.dataclass(frozen=True)
class UpstreamCopy:
    """A file copied from the upstream module into the wrapper, with import paths redirected."""

    source: str  # path inside the upstream module
    dest: str  # path inside the wrapper module
    imports: Tuple[Tuple[str, str], ...] = ()


@dataclasses.dataclass(frozen=True)
class Family:
    name: str
    module: str  # the upstream module whose go.mod pins are repeated
    version: str
    staging_version: Callable[[str], str]
    programs: Dict[str, str]  # output name -> Go package (or "." for our own generator)
    generator: Optional[str] = None  # directory under tests/lab/gen with a main package of ours
    requires: Optional[Tuple[Tuple[str, str], ...]] = None  # what the wrapper requires; default: module
    copies: Tuple[UpstreamCopy, ...] = ()
    data: Tuple[UpstreamCopy, ...] = ()  # upstream files copied into the output directory, unchanged
    tags: str = ""
    ldflags: Callable[[str], str] = lambda _version: "-s -w"

    def key(self) -> str:
        digest = ""
        if self.generator:
            source = (paths.LAB_SOURCE / "gen" / self.generator / "main.go").read_bytes()
            digest = "-" + hashlib.sha256(source).hexdigest()[:12]
        return f"{self.name}-{self.version}{digest}"


_COMPONENTS = "pkg/virt-operator/resource/generate/components"
_RBAC = "pkg/virt-operator/resource/generate/rbac"
_RELEASE_MODULE = "palette.vmo/lab/kubevirt-release"
# The generator packages import the rest of KubeVirt through these; the copies point at each other.
_RELEASE_IMPORTS = (
    ("kubevirt.io/kubevirt/pkg/virt-operator/util", _RELEASE_MODULE + "/operatorutil"),
    ("kubevirt.io/kubevirt/" + _COMPONENTS, _RELEASE_MODULE + "/components"),
    ("kubevirt.io/kubevirt/" + _RBAC, _RELEASE_MODULE + "/rbac"),
)


def _release_copies(directory: str, dest: str, files: Tuple[str, ...]) -> Tuple[UpstreamCopy, ...]:
    return tuple(UpstreamCopy(f"{directory}/{name}", f"{dest}/{name}", _RELEASE_IMPORTS) for name in files)


# Only the files the operator manifests need: the package's other files import kubevirt.io/virt-template-api,
# which the module proxy does not serve (403), so the whole package cannot be built from the proxy.
_KUBEVIRT_RELEASE_COPIES = (
    _release_copies(_COMPONENTS, "components", (
        "crds.go", "validations_generated.go", "deployments.go", "serviceaccountnames.go", "secrets.go",
        "prometheus.go", "webhooks.go"))
    + _release_copies(_RBAC, "rbac", (
        "apiserver.go", "cluster.go", "controller.go", "exportproxy.go", "handler.go", "operator.go",
        "servicemonitor.go", "synchronizationcontroller.go"))
    + _release_copies("pkg/virt-operator/util", "operatorutil", ("config.go", "env_var_manager.go"))
    + _release_copies("tools/manifest-templator", "manifest-templator", ("manifest-templator.go",))
)

VELERO_CRDS = ("backuprepositories", "backups", "backupstoragelocations", "deletebackuprequests", "downloadrequests",
               "podvolumebackups", "podvolumerestores", "restores", "schedules", "serverstatusrequests",
               "volumesnapshotlocations")

FAMILIES = {
    "kubernetes": Family(
        name="kubernetes",
        module="k8s.io/kubernetes",
        version=versions.KUBERNETES,
        staging_version=_kubernetes_staging,
        programs={
            "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
            "kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
            "kubectl": "k8s.io/kubernetes/cmd/kubectl",
        },
        tags="selinux,notest,grpcnotrace",
        ldflags=_kubernetes_ldflags,
    ),
    "etcd": Family(
        name="etcd",
        module="go.etcd.io/etcd/server/v3",
        version=versions.ETCD,
        staging_version=_same_version,
        programs={"etcd": "go.etcd.io/etcd/server/v3"},
    ),
    "kubevirt-crds": Family(
        name="kubevirt-crds",
        module="kubevirt.io/kubevirt",
        version=versions.KUBEVIRT,
        staging_version=_same_version,
        programs={"kubevirt-crds": "."},
        generator="kubevirt-crds",
        requires=(("kubevirt.io/api", versions.KUBEVIRT),),
        copies=(
            UpstreamCopy(f"{_COMPONENTS}/crds.go", "components/crds.go",
                         (("kubevirt.io/kubevirt/pkg/pointer", "palette.vmo/lab/kubevirt-crds/pointer"),)),
            UpstreamCopy(f"{_COMPONENTS}/validations_generated.go", "components/validations_generated.go"),
            UpstreamCopy("pkg/pointer/pointer.go", "pointer/pointer.go"),
        ),
    ),
    "cdi-crds": Family(
        name="cdi-crds",
        module="kubevirt.io/containerized-data-importer",
        version=versions.CDI,
        staging_version=_same_version,
        programs={"cdi-crds": "."},
        generator="cdi-crds",
        requires=(),
        copies=(UpstreamCopy("pkg/operator/resources/crds_generated.go", "resources/crds_generated.go"),),
    ),
    "kubevirt-release": Family(
        name="kubevirt-release",
        module="kubevirt.io/kubevirt",
        version=versions.KUBEVIRT,
        staging_version=_same_version,
        programs={"kubevirt-release": ".", "manifest-templator": "./manifest-templator"},
        generator="kubevirt-release",
        copies=_KUBEVIRT_RELEASE_COPIES,
        data=(UpstreamCopy("manifests/release/kubevirt-operator.yaml.in", "kubevirt-operator.yaml.in"),
              UpstreamCopy("assets/kubevirt_logo.png", "kubevirt_logo.png")),
    ),
    # No program: only the CRD file the module ships (artifacts/networks-crd.yaml), as Multus installs it.
    "network-attachment-definition": Family(
        name="network-attachment-definition",
        module="github.com/k8snetworkplumbingwg/network-attachment-definition-client",
        version=versions.NETWORK_ATTACHMENT_DEFINITION,
        staging_version=_same_version,
        programs={},
        data=(UpstreamCopy("artifacts/networks-crd.yaml", "networks-crd.yaml"),),
    ),
    # No program: the VolumeSnapshot CRDs the external-snapshotter's client module ships (config/crd), as the
    # snapshot-controller chart of the VMO pack installs them.
    "external-snapshotter": Family(
        name="external-snapshotter",
        module="github.com/kubernetes-csi/external-snapshotter/client/v8",
        version=versions.EXTERNAL_SNAPSHOTTER,
        staging_version=_same_version,
        programs={},
        data=tuple(UpstreamCopy(f"config/crd/snapshot.storage.k8s.io_{plural}.yaml", f"{plural}.yaml")
                   for plural in ("volumesnapshotclasses", "volumesnapshotcontents", "volumesnapshots")),
    ),
    # No program: Velero's CRDs as its module ships them (config/crd/v1/bases), as `velero install` applies them.
    "velero": Family(
        name="velero",
        module="github.com/vmware-tanzu/velero",
        version=versions.VELERO,
        staging_version=_same_version,
        programs={},
        data=tuple(UpstreamCopy(f"config/crd/v1/bases/velero.io_{plural}.yaml", f"{plural}.yaml")
                   for plural in VELERO_CRDS),
    ),
    "cdi-release": Family(
        name="cdi-release",
        module="kubevirt.io/containerized-data-importer",
        version=versions.CDI,
        staging_version=_same_version,
        programs={"manifest-generator": "kubevirt.io/containerized-data-importer/tools/manifest-generator"},
        data=(UpstreamCopy("manifests/templates/release/cdi-operator.yaml.in", "cdi-operator.yaml.in"),),
    ),
}


def go_environment() -> Dict[str, str]:
    env = dict(os.environ)
    env["GOFLAGS"] = (env.get("GOFLAGS", "") + " -mod=mod").strip()
    env["CGO_ENABLED"] = "0"
    # The public checksum database is not reachable from every build machine (this one reaches
    # only the module proxy); a user who can reach it sets GOSUMDB and gets it.
    env.setdefault("GOSUMDB", "off")
    env.setdefault("GOTOOLCHAIN", "local")
    return env


def _download(family: Family, env: Dict[str, str], workdir: Path) -> dict:
    """Downloads the upstream module; returns `go mod download -json` output (GoMod, Dir, ...)."""
    out = subprocess.run(
        ["go", "mod", "download", "-json", f"{family.module}@{family.version}"],
        cwd=workdir, env=env, check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out)


def _parse_gomod(gomod_path: str, env: Dict[str, str], workdir: Path) -> dict:
    parsed = subprocess.run(
        ["go", "mod", "edit", "-json", gomod_path],
        cwd=workdir, env=env, check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(parsed)


def _copy_upstream(copies: Tuple[UpstreamCopy, ...], module_dir: Path, target: Path) -> None:
    for copy in copies:
        dest = target / copy.dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not copy.imports:
            shutil.copyfile(module_dir / copy.source, dest)  # also binary files (the logo)
            continue
        text = (module_dir / copy.source).read_text()
        for old, new in copy.imports:
            text = text.replace(f'"{old}"', f'"{new}"')
        dest.write_text(text)


def wrapper_gomod(family: Family, upstream: dict) -> str:
    """The wrapper go.mod text: require the upstream module, repeat its replaces."""
    required = {req["Path"] for req in upstream.get("Require") or []}
    lines = [
        f"module palette.vmo/lab/{family.name}",
        "",
        f"go {versions.GO_DIRECTIVE}",
        "",
        # godebug in a dependency's go.mod is ignored; repeat upstream's defaults here.
        f"godebug default=go{'.'.join(versions.GO_DIRECTIVE.split('.')[:2])}",
        "",
    ]
    requires = family.requires if family.requires is not None else ((family.module, family.version),)
    lines += [f"require {path} {version}" for path, version in requires]
    lines += ["", "replace ("]
    for rep in upstream.get("Replace") or []:
        old, new = rep["Old"]["Path"], rep["New"]
        if new.get("Version"):
            lines.append(f"\t{old} => {new['Path']} {new['Version']}")
        elif old in required:
            # A local staging tree upstream: use the module published from it.
            lines.append(f"\t{old} => {old} {family.staging_version(family.version)}")
    lines.append(")")
    return "\n".join(lines) + "\n"


def _stream_build(cmd, cwd: Path, env: Dict[str, str], label: str) -> None:
    """Runs `go build -v`, printing a progress line every 100 packages instead of every one."""
    started = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    count, tail = 0, []
    for line in proc.stdout:
        tail = (tail + [line.rstrip()])[-40:]
        count += 1
        if count % 100 == 0:
            print(f"  {label}: {count} packages compiled ({time.monotonic() - started:.0f}s)", flush=True)
    if proc.wait() != 0:
        raise RuntimeError(f"building {label} failed:\n" + "\n".join(tail))
    print(f"  {label}: built in {time.monotonic() - started:.0f}s", flush=True)


def bin_dir(family_name: str) -> Path:
    return paths.cache_dir() / "bin" / FAMILIES[family_name].key()


def build(family_name: str) -> Path:
    """Builds one family if it is not cached; returns the directory holding its programs."""
    family = FAMILIES[family_name]
    out = bin_dir(family_name)
    marker = out / ".complete"
    if marker.exists():
        return out
    print(f"building {family.name} {family.version} into {out}", flush=True)
    env = go_environment()
    workdir = paths.cache_dir() / "src" / family.key()
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    downloaded = _download(family, env, workdir)
    if not family.programs:  # upstream files only: nothing to build
        out.mkdir(parents=True, exist_ok=True)
        _copy_upstream(family.data, Path(downloaded["Dir"]), out)
        marker.write_text(family.version + "\n")
        return out
    upstream = _parse_gomod(downloaded["GoMod"], env, workdir)
    (workdir / "go.mod").write_text(wrapper_gomod(family, upstream))
    _copy_upstream(family.copies, Path(downloaded["Dir"]), workdir)
    if family.generator:
        shutil.copy(paths.LAB_SOURCE / "gen" / family.generator / "main.go", workdir / "main.go")
    out.mkdir(parents=True, exist_ok=True)
    _copy_upstream(family.data, Path(downloaded["Dir"]), out)
    cmd = ["go", "build", "-v", "-trimpath", "-ldflags", family.ldflags(family.version)]
    if family.tags:
        cmd += ["-tags", family.tags]
    packages = list(family.programs.values())
    if len(packages) == 1:
        cmd += ["-o", str(out / next(iter(family.programs))), packages[0]]
    else:
        # With several packages, -o names a directory and each binary takes its package's name.
        cmd += ["-o", str(out) + os.sep] + packages
    _stream_build(cmd, workdir, env, family.name)
    marker.write_text(family.version + "\n")
    return out


def program(name: str) -> Path:
    """The path of one built program, building its family first if needed."""
    for family_name, family in FAMILIES.items():
        if name in family.programs:
            return build(family_name) / name
    raise KeyError(name)


def main(argv=None) -> int:
    names = (argv or sys.argv[1:]) or list(FAMILIES)
    for name in names:
        build(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
