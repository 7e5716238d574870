"""The wrapper go.mod: upstream's pinned replaces repeated, staging trees mapped to published modules."""

from tests.lab import gobuild, versions

UPSTREAM = {
    "Require": [{"Path": "k8s.io/api", "Version": "v0.0.0"}, {"Path": "k8s.io/apiserver", "Version": "v0.0.0"}],
    "Replace": [
        {"Old": {"Path": "k8s.io/api"}, "New": {"Path": "./staging/src/k8s.io/api"}},
        {"Old": {"Path": "k8s.io/apiserver"}, "New": {"Path": "./staging/src/k8s.io/apiserver"}},
        {"Old": {"Path": "k8s.io/unused"}, "New": {"Path": "./staging/src/k8s.io/unused"}},
        {"Old": {"Path": "github.com/x/y"}, "New": {"Path": "github.com/x/y", "Version": "v1.2.3"}},
    ],
}


def test_kubernetes_wrapper_maps_staging_to_v0_versions():
    family = gobuild.FAMILIES["kubernetes"]
    text = gobuild.wrapper_gomod(family, UPSTREAM)
    staging = "v0" + versions.KUBERNETES[2:]
    assert f"require k8s.io/kubernetes {versions.KUBERNETES}" in text
    assert f"\tk8s.io/api => k8s.io/api {staging}" in text
    assert f"\tk8s.io/apiserver => k8s.io/apiserver {staging}" in text
    assert "k8s.io/unused" not in text  # not required upstream: nothing to map
    assert "\tgithub.com/x/y => github.com/x/y v1.2.3" in text
    assert "godebug default=go1.26" in text


def test_generator_families_require_only_what_their_copied_files_import():
    kubevirt = gobuild.FAMILIES["kubevirt-crds"]
    text = gobuild.wrapper_gomod(kubevirt, {"Require": [], "Replace": []})
    assert f"require kubevirt.io/api {versions.KUBEVIRT}" in text
    assert "require kubevirt.io/kubevirt " not in text
    cdi = gobuild.FAMILIES["cdi-crds"]
    assert "require" not in gobuild.wrapper_gomod(cdi, {"Require": [], "Replace": []})


def test_cache_key_changes_with_the_generator_source():
    key = gobuild.FAMILIES["kubevirt-crds"].key()
    assert key.startswith(f"kubevirt-crds-{versions.KUBEVIRT}-")
    assert gobuild.FAMILIES["kubernetes"].key() == f"kubernetes-{versions.KUBERNETES}"
