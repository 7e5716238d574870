"""Palette client logic that needs no server: errors quote Palette, hosts normalise, lists follow `continue`."""

import pytest

from ansible_collections.palette.vmo.plugins.module_utils.palette import client as palette_client
from ansible_collections.palette.vmo.plugins.module_utils.palette.client import (
    PaletteClient, PaletteConfigError, PaletteError)


def test_error_quotes_palette_message_and_code():
    err = PaletteError(400, {"code": "InvalidProfileValues", "message": "values are not YAML"}, "PUT", "/v1/x")
    assert str(err) == "PUT /v1/x: HTTP 400: values are not YAML (InvalidProfileValues)"


def test_401_says_bad_api_key():
    err = PaletteError(401, {"message": "Invalid api key"}, "GET", "/v1/dashboard/projects/metadata")
    assert "bad API key" in str(err) and "Invalid api key" in str(err)


@pytest.mark.parametrize("given, expected", [
    ("https://palette.example.com/", "https://palette.example.com"),
    ("api.spectrocloud.com", "https://api.spectrocloud.com"),
    ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
])
def test_host_normalised(given, expected):
    assert palette_client._normalise_host(given) == expected


def test_missing_host_and_key_are_config_errors():
    with pytest.raises(PaletteConfigError, match="PALETTE_HOST"):
        PaletteClient({"palette_api_key": "k"})
    with pytest.raises(PaletteConfigError, match="PALETTE_API_KEY"):
        PaletteClient({"palette_host": "https://h"})


def test_list_all_follows_continue_tokens():
    client = PaletteClient({"palette_host": "https://h", "palette_api_key": "k"})
    pages = {None: {"items": [1, 2], "listmeta": {"continue": "t1"}},
             "t1": {"items": [3], "listmeta": {"continue": "t2"}},
             "t2": {"items": [4], "listmeta": {"continue": ""}}}
    seen = []

    def fake_get(path, query=None, scope=None):
        seen.append(query.get("continue"))
        return pages[query.get("continue")]

    client.get = fake_get
    assert client.list_all("/v1/dashboard/clusterprofiles/metadata") == [1, 2, 3, 4]
    assert seen == [None, "t1", "t2"]


def test_cluster_search_filter_matches_by_name():
    body = palette_client.cluster_search_filter("lab-cluster")
    first = body["filter"]["filterGroups"][0]["filters"][0]
    assert first["property"] == "clusterName"
    assert first["condition"]["string"]["match"]["values"] == ["lab-cluster"]


def test_query_pairs_repeat_lists_and_spell_booleans():
    assert palette_client._query_pairs({"publish": True, "ns": ["a", "b"], "skip": None}) == [
        ("publish", "true"), ("ns", "a"), ("ns", "b")]


@pytest.mark.parametrize("status, retried", [(429, True), (502, True), (503, True), (504, True), (500, False),
                                             (400, False), (404, False), (409, False)])
def test_retried_statuses_are_the_sdks_429_and_5xx_above_500(status, retried):
    assert palette_client.retryable_status(status) is retried


def test_a_palette_only_module_takes_validate_certs_as_palettes_without_changing_the_shared_spec():
    from ansible_collections.palette.vmo.plugins.module_utils.palette.client import (
        PALETTE_ARG_SPEC, palette_module_arg_spec)

    spec = palette_module_arg_spec()
    assert spec["palette_validate_certs"]["aliases"] == ["validate_certs"]
    assert spec["palette_validate_certs"]["default"] is True
    assert "aliases" not in PALETTE_ARG_SPEC["palette_validate_certs"]
