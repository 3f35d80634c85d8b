"""The merged OpenAPI document of the gateway and the services behind it."""

from mailstream_inbox.api.routes.proxy import UPSTREAMS, merge_openapi


def test_merge_openapi_adds_public_paths_renames_clashing_schemas_and_hides_internal_headers():
    base = {
        "paths": {"/v1/topics": {}},
        "components": {
            "schemas": {"Item": {"type": "string"}, "HTTPValidationError": {"type": "object"}},
            "securitySchemes": {"HTTPBearer": {"type": "http", "scheme": "bearer"}},
        },
    }
    remote = {
        "paths": {
            "/v1/domains": {
                "post": {
                    "parameters": [
                        {"in": "header", "name": "X-Internal-Token"},
                        {"in": "header", "name": "x-account-id"},
                        {"in": "query", "name": "verbose"},
                    ],
                    "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Item"}}}},
                }
            },
            "/internal/signing-key": {"get": {}},
        },
        "components": {"schemas": {"Item": {"type": "object"}, "HTTPValidationError": {"type": "object"}}},
    }
    domains = next(u for u in UPSTREAMS if u.name == "domains")
    merged = merge_openapi(base, domains, remote)
    assert set(merged["paths"]) == {"/v1/topics", "/v1/domains"}
    post = merged["paths"]["/v1/domains"]["post"]
    assert post["parameters"] == [{"in": "query", "name": "verbose"}]
    assert post["security"] == [{"HTTPBearer": []}]
    assert post["requestBody"]["content"]["application/json"]["schema"]["$ref"] == "#/components/schemas/DomainsItem"
    assert merged["components"]["schemas"]["Item"] == {"type": "string"}
    assert merged["components"]["schemas"]["DomainsItem"] == {"type": "object"}
    assert "DomainsHTTPValidationError" not in merged["components"]["schemas"]
    assert base["paths"] == {"/v1/topics": {}}, "the gateway's own document is not modified"


def test_remote_openapi_cache_refreshes_and_retries_on_its_own_clock():
    from mailstream_inbox.api.routes.proxy import RemoteOpenApiCache

    cache = RemoteOpenApiCache()
    assert cache.wants("domains", now=0)
    cache.store("domains", None, now=0)
    assert not cache.wants("domains", now=10), "a service that is down is not asked on every request"
    assert cache.wants("domains", now=31)
    cache.store("domains", {"paths": {}}, now=31)
    assert not cache.wants("domains", now=200)
    assert cache.wants("domains", now=332)
    cache.store("domains", None, now=332)
    assert cache.documents["domains"][0] == {"paths": {}}, "a stale document beats none"
    assert not cache.wants("domains", now=340)
    assert cache.wants("domains", now=363)
