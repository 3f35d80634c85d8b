"""Pure pieces of the gateway: cursors, header-safe validation, forwarding addresses, OpenAPI merge, live events."""

import re
from datetime import UTC, datetime

import pytest
from fastapi import HTTPException
from pydantic import BaseModel, ValidationError

from mailstream_common.contracts import Address, ConversationChanged, MessageDeliveryChanged, MessageStored
from mailstream_common.pages import decode_cursor, encode_cursor
from mailstream_inbox.api.routes.proxy import UPSTREAMS, merge_openapi
from mailstream_inbox.live_hub import LiveHub, to_live_event
from mailstream_inbox.payload_types import EmailAddressStr, HeaderSafeStr
from mailstream_inbox.repositories.streams import new_forwarding_address


class Named(BaseModel):
    subject: HeaderSafeStr
    address: EmailAddressStr | None = None


def test_cursor_round_trip_keeps_datetimes_and_strings():
    values = {"created_at": datetime(2026, 11, 27, 1, 2, 3, 456000, tzinfo=UTC), "_id": "ab" * 16}
    cursor = encode_cursor(values)
    assert re.fullmatch(r"[A-Za-z0-9_\-]+\.[0-9a-f]{12}", cursor)
    assert decode_cursor(cursor) == values


@pytest.mark.parametrize(
    "mangle",
    [
        lambda c: c[:-1] + ("0" if c[-1] != "0" else "1"),  # checksum edited
        lambda c: "A" + c,  # body edited
        lambda c: c.split(".")[0],  # checksum dropped
        lambda c: "not base64!.abcdefabcdef",
        lambda c: "",
    ],
)
def test_a_mangled_cursor_is_a_422_naming_the_cursor(mangle):
    cursor = encode_cursor({"_id": "x"})
    with pytest.raises(HTTPException) as caught:
        decode_cursor(mangle(cursor))
    assert caught.value.status_code == 422
    assert caught.value.detail[0]["loc"] == ["query", "cursor"]


@pytest.mark.parametrize("value", ["Hello\r\nBcc: victim@example.com", "line\nbreak", "carriage\rreturn", "nul\x00"])
def test_header_safe_text_refuses_line_breaks_and_nul(value):
    with pytest.raises(ValidationError) as caught:
        Named(subject=value)
    assert caught.value.errors()[0]["loc"] == ("subject",)


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("Support@ACME.com", "Support@acme.com"),
        ("  help@mails.acme.co.uk ", "help@mails.acme.co.uk"),
        ("first.last+tag@example.org", "first.last+tag@example.org"),
        ("info@bücher.example", "info@xn--bcher-kva.example"),
    ],
)
def test_email_addresses_are_normalised(given, stored):
    assert Named(subject="s", address=given).address == stored


@pytest.mark.parametrize(
    "bad",
    [
        "no-at-sign",
        "two@@acme.com",
        "a@b@acme.com",
        "@acme.com",
        "support@",
        "support@localhost",
        "support@acme.com\r\nBcc: x@y.z",
        "sup port@acme.com",
        ".dot@acme.com",
        "a..b@acme.com",
        "support@-acme.com",
        "support@acme.123",
        "x" * 65 + "@acme.com",
    ],
)
def test_invalid_email_addresses_are_refused(bad):
    with pytest.raises(ValidationError) as caught:
        Named(subject="s", address=bad)
    assert caught.value.errors()[0]["loc"] == ("address",)


def test_forwarding_addresses_are_unguessable_and_on_the_inbound_domain():
    addresses = {new_forwarding_address("In.Mailstream.Test") for _ in range(1000)}
    assert len(addresses) == 1000
    for address in addresses:
        assert re.fullmatch(r"s-[a-z2-7]{26}@in\.mailstream\.test", address)


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


def _stored(account_id: str, direction: str = "inbound") -> MessageStored:
    return MessageStored(
        account_id=account_id,
        topic_id="t",
        stream_id="s",
        conversation_id="c",
        message_id="m",
        direction=direction,
        is_first_message=True,
        **{"from": Address(name="Customer", address="c@example.com")},
        subject="Hello",
        received_at=datetime.now(UTC),
    )


def test_live_event_names_follow_the_public_contract():
    assert to_live_event(_stored("a"))[1].name == "message.received"
    assert to_live_event(_stored("a", "outbound"))[1].name == "message.sent"
    changed = MessageDeliveryChanged(account_id="a", conversation_id="c", message_id="m", status="sent")
    assert to_live_event(changed)[1].name == "message.delivery_changed"
    conversation = ConversationChanged(account_id="a", conversation_id="c", status="closed", changed_by="system")
    account, event = to_live_event(conversation)
    assert (account, event.name, event.data["status"]) == ("a", "conversation.changed", "closed")
    assert event.encode().startswith(f"id: {conversation.event_id}\nevent: conversation.changed\ndata: {{")


async def test_live_hub_delivers_per_account_and_drops_a_client_that_cannot_keep_up():
    hub = LiveHub(client_queue_size=2)
    with hub.subscribe("a") as slow, hub.subscribe("b") as other:
        assert hub.client_count("a") == 1
        for _ in range(3):
            await hub.handle(_stored("a"), None)
        assert other.queue.empty()
        assert slow.closed
        with pytest.raises(EOFError):
            while True:
                await slow.next(timeout=0.1)
    assert hub.client_count() == 0


def test_roles_decide_what_the_process_serves():
    from mailstream_inbox.api.app import create_app
    from mailstream_inbox.settings import InboxSettings

    def api_paths(role: str) -> set[str]:
        return set(create_app(InboxSettings(INBOX_ROLE=role)).openapi()["paths"])

    worker = create_app(InboxSettings(INBOX_ROLE="worker"))
    assert {"/healthz", "/readyz", "/metrics"} <= {getattr(r, "path", "") for r in worker.routes}
    assert api_paths("worker") == set()
    for role in ("api", "all"):
        assert {"/v1/topics", "/v1/events", "/v1/conversations", "/v1/streams/{stream_id}"} <= api_paths(role)
    assert InboxSettings(INBOX_ROLE="worker").runs_consumers and not InboxSettings(INBOX_ROLE="api").runs_consumers


@pytest.mark.parametrize(
    "after",
    [
        {"_id": "a"},  # the created_at is missing
        {"created_at": datetime.now(UTC), "_id": {"$ne": ""}},  # an operator smuggled in
        {"created_at": {"$gt": 0}, "_id": "a"},
        {"created_at": datetime.now(UTC), "_id": "a", "account_id": "other"},
        {"created_at": [1], "_id": "a"},
    ],
)
def test_keyset_filter_refuses_cursor_values_that_do_not_fit_the_list(after):
    from mailstream_inbox.repositories.pages import CursorMismatch, keyset_filter

    with pytest.raises(CursorMismatch):
        keyset_filter("created_at", False, after)


def test_keyset_filter_builds_a_strictly_after_condition():
    from mailstream_inbox.repositories.pages import keyset_filter

    moment = datetime.now(UTC)
    assert keyset_filter("created_at", True, {"created_at": moment, "_id": "b"}) == {
        "$or": [{"created_at": {"$lt": moment}}, {"created_at": moment, "_id": {"$lt": "b"}}]
    }
    assert keyset_filter("_id", False, {"_id": "b"}) == {"_id": {"$gt": "b"}}
    assert keyset_filter("created_at", False, None) == {}


def test_sse_tickets_stand_for_their_key_for_a_minute_only():
    from mailstream_inbox.security import Principal, issue_ticket, read_ticket

    principal = Principal(account_id="a" * 32, role="agent", key_id="k" * 32, key_name="Alice")
    ticket, expires = issue_ticket(principal, "secret", now=1000.0)
    assert expires == 1060.0
    assert read_ticket(ticket, "secret", now=1059.0) == principal
    assert read_ticket(ticket, "secret", now=1061.0) is None, "expired"
    assert read_ticket(ticket, "other-secret", now=1001.0) is None, "another deployment's ticket"
    body, _, signature = ticket.partition(".")
    assert read_ticket(body[:-2] + "xx." + signature, "secret", now=1001.0) is None, "edited"
    assert read_ticket(body, "secret", now=1001.0) is None


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
