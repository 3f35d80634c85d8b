"""The gateway's path normalisation and allow-list matching, as plain functions (no I/O)."""

import pytest

from mailstream_common.public_api import (
    PUBLIC_OPERATIONS,
    MethodRefused,
    PathRefused,
    match,
    split_path,
)
from tests.security.corpus import traversal_targets


def path_of(target: bytes) -> bytes:
    return target.split(b"?", 1)[0]


@pytest.mark.parametrize(("name", "target"), sorted(traversal_targets().items()))
def test_every_traversal_is_refused_before_matching(name: str, target: bytes) -> None:
    with pytest.raises(PathRefused) as refused:
        match("GET", split_path(path_of(target)))
    assert refused.value.status in (400, 404), name


@pytest.mark.parametrize(
    "raw",
    [
        b"/v1/domains/a b",
        b"/v1/domains/\xc3\xa9",
        b"/v1/domains/%zz",
        b"/v1/domains/%e9",
        b"v1/domains",
        b"/v1/domains/%",
    ],
)
def test_malformed_paths_are_400(raw: bytes) -> None:
    with pytest.raises(PathRefused) as refused:
        split_path(raw)
    assert refused.value.status == 400


@pytest.mark.parametrize("raw", [b"/v1/domains/", b"/v1/domains//verify", b"/v1/domains/d1/"])
def test_empty_segments_are_404(raw: bytes) -> None:
    with pytest.raises(PathRefused) as refused:
        split_path(raw)
    assert refused.value.status == 404


def test_parameters_are_decoded_once_and_re_encoded_into_the_template() -> None:
    matched = match("GET", split_path(b"/v1/suppressions/Kana%2BShop%40example.net"))
    assert matched.operation.template == "/v1/suppressions/{address}"
    assert matched.params == {"address": "Kana+Shop@example.net"}
    assert matched.upstream_path == "/v1/suppressions/Kana%2BShop@example.net"
    # '?' and '#' stay inside the parameter: they can never start a query or fragment upstream.
    assert match("GET", split_path(b"/v1/domains/%3Fx%23y")).upstream_path == "/v1/domains/%3Fx%23y"
    # Non-ASCII text is fine once percent-encoded.
    assert match("GET", split_path(b"/v1/domains/%C3%A9")).upstream_path == "/v1/domains/%C3%A9"


def test_a_path_is_the_most_literal_template_it_fits() -> None:
    assert match("POST", split_path(b"/v1/automation/rules/test")).operation.template == "/v1/automation/rules/test"
    with pytest.raises(MethodRefused) as refused:
        match("GET", split_path(b"/v1/automation/rules/test"))
    assert refused.value.allow == ("POST",)
    got = match("GET", split_path(b"/v1/automation/rules/r1"))
    assert (got.operation.template, got.params) == ("/v1/automation/rules/{rule_id}", {"rule_id": "r1"})


def test_a_known_path_with_another_method_is_405_with_every_allowed_method() -> None:
    with pytest.raises(MethodRefused) as refused:
        match("PUT", split_path(b"/v1/automation/rules/r1"))
    assert refused.value.allow == ("DELETE", "GET", "PATCH")
    with pytest.raises(MethodRefused) as refused:
        match("GET", split_path(b"/v1/domains/d1/verify"))
    assert refused.value.allow == ("POST",)


@pytest.mark.parametrize(
    "path", ["/v1/domains/d1/secret", "/v1/automation", "/v1/suppressionsx", "/internal/signing-key"]
)
def test_anything_not_in_the_table_is_404(path: str) -> None:
    with pytest.raises(PathRefused) as refused:
        match("GET", split_path(path.encode()))
    assert refused.value.status == 404


@pytest.mark.parametrize("operation", PUBLIC_OPERATIONS, ids=lambda op: f"{op.method} {op.template}")
def test_every_public_operation_matches_itself(operation) -> None:
    sample = operation.template.replace("{", "x").replace("}", "")
    matched = match(operation.method, split_path(sample.encode()))
    assert matched.operation == operation
    assert matched.upstream_path == sample
