"""A fake Kubernetes API for the runners' unit tests: objects by path, discovery, server-side apply, no network."""

import copy
import time

from ansible_collections.palette.vmo.plugins.module_utils.kube.client import KubeApiError, object_path


class FakeCluster(object):
    """Serves the kinds it is told to; an apply merges nothing, it stores (or, in a dry run, returns) the object.

    `writes` lists every non-dry-run request as (verb, path); `reject` maps a path to the error its apply raises.
    """

    def __init__(self, served=None, objects=None):
        self.served = {}  # apiVersion -> {kind: (plural, namespaced)}
        for api_version, kinds in (served or {}).items():
            for kind, plural, namespaced in kinds:
                self.serve(api_version, kind, plural, namespaced)
        self.objects = dict(objects or {})
        self.writes, self.dry_runs, self.reject = [], [], {}

    def serve(self, api_version, kind, plural, namespaced):
        self.served.setdefault(api_version, {})[kind] = (plural, namespaced)

    def _discovery(self, path):
        for api_version, kinds in self.served.items():
            if path == ("/api/v1" if api_version == "v1" else "/apis/%s" % api_version):
                return {"resources": [{"kind": kind, "name": plural, "namespaced": namespaced}
                                      for kind, (plural, namespaced) in kinds.items()]}
        return None

    def get(self, path, query=None):
        found = self._discovery(path) or self.objects.get(path)
        if found is None:
            raise KubeApiError(404, {"message": "%s not found" % path}, "GET", path)
        return copy.deepcopy(found)

    def get_or_none(self, path):
        return copy.deepcopy(self.objects.get(path))

    def apply(self, path, obj, field_manager, force=False, dry_run=False):
        if path in self.reject:
            raise self.reject[path]
        result = copy.deepcopy(obj)
        if dry_run:
            self.dry_runs.append(path)
            return result
        self.writes.append(("apply", path))
        if result["kind"] == "CustomResourceDefinition":
            spec = result["spec"]
            result["status"] = {"conditions": [{"type": "Established", "status": "True"}]}
            for version in spec["versions"]:
                self.serve("%s/%s" % (spec["group"], version["name"]), spec["names"]["kind"], spec["names"]["plural"],
                           spec["scope"] == "Namespaced")
        self.objects[path] = result
        return copy.deepcopy(result)

    def merge_patch(self, path, patch, dry_run=False):
        if not dry_run:
            self.writes.append(("merge_patch", path))
        return copy.deepcopy(patch)

    def delete(self, path, propagation_policy=None, dry_run=False):
        self.writes.append(("delete", path))
        return self.objects.pop(path, None)

    def request(self, method, path, query=None, body=None, **_options):
        if path in self.reject:
            raise self.reject[path]
        self.writes.append((method, path))

    def list_all(self, path, query=None, page_size=500):
        items = [copy.deepcopy(obj) for key, obj in sorted(self.objects.items()) if key.startswith(path + "/")]
        return items, "1"

    def watch(self, path, query=None, timeout_seconds=60):
        time.sleep(0.02)  # a stream on which nothing happens
        return iter([])


def crd(group, kind, plural, scope="Namespaced", versions=("v1",)):
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "%s.%s" % (plural, group)},
            "spec": {"group": group, "scope": scope, "names": {"kind": kind, "plural": plural},
                     "versions": [{"name": v, "served": True} for v in versions]}}


def path_of(obj, plural):
    metadata = obj["metadata"]
    return object_path(obj["apiVersion"], plural, metadata["name"], metadata.get("namespace"))
