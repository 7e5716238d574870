"""kube.apply.create_or_adopt: a create that finds the object already made by a parallel run follows it."""

import pytest

from ansible_collections.palette.vmo.plugins.module_utils.kube.apply import create_or_adopt
from ansible_collections.palette.vmo.plugins.module_utils.kube.client import KubeApiError

PATH = "/apis/snapshot.kubevirt.io/v1beta1/namespaces/vms/virtualmachinesnapshots"
BODY = {"metadata": {"name": "web-1-night"}}


class FakeClient:
    def __init__(self, post_status=None):
        self.post_status, self.calls = post_status, []

    def request(self, method, path, body=None):
        self.calls.append((method, path))
        if self.post_status:
            raise KubeApiError(self.post_status, {"message": "refused"}, method, path)
        return dict(body, made=True)

    def get(self, path):
        self.calls.append(("GET", path))
        return {"metadata": {"name": path.rsplit("/", 1)[1]}, "theirs": True}


def test_a_create_returns_the_new_object():
    client = FakeClient()
    assert create_or_adopt(client, PATH, BODY) == (dict(BODY, made=True), True)
    assert client.calls == [("POST", PATH)]


def test_a_conflict_reads_back_the_object_a_parallel_run_made():
    client = FakeClient(post_status=409)
    made, created = create_or_adopt(client, PATH, BODY)
    assert not created and made["theirs"]
    assert client.calls == [("POST", PATH), ("GET", PATH + "/web-1-night")]


def test_any_other_refusal_is_raised():
    with pytest.raises(KubeApiError):
        create_or_adopt(FakeClient(post_status=422), PATH, BODY)
