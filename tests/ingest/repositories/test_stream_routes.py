"""The `stream_routes` projection on a real database: versioned apply, lookups by forwarding address."""

import pytest

from mailstream_common.contracts import StreamChanged
from mailstream_common.contracts.mail import StreamTarget
from mailstream_ingest import repositories
from mailstream_ingest.recipients import Route
from mailstream_ingest.repositories.stream_routes import StreamRoutes

pytestmark = pytest.mark.integration


def changed(version: int, forwarding_address: str = "Fwd-1@In.Example", deleted: bool = False) -> StreamChanged:
    return StreamChanged(
        change="deleted" if deleted else "updated", version=version, account_id="a1", topic_id="t1",
        stream_id="s1", address="Support@Acme.Example", forwarding_address=forwarding_address,
        allow_agent_send=True, deleted=deleted,
    )  # fmt: skip


TARGET = StreamTarget(
    forwarding_address="fwd-1@in.example", stream_id="s1", account_id="a1", stream_address="support@acme.example"
)


async def test_applied_event_is_found_by_its_address_in_any_case(mongo_db):
    await repositories.ensure_indexes(mongo_db)
    routes = StreamRoutes(mongo_db)
    assert await routes.find("fwd-1@in.example") is None
    assert await routes.apply(changed(1))
    assert await routes.find("FWD-1@in.example") == Route(TARGET, 1, True)


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        ([changed(1), changed(2, deleted=True)], Route(TARGET, 2, False)),
        ([changed(2, deleted=True), changed(1)], Route(TARGET, 2, False)),
        ([changed(1), changed(1, deleted=True)], Route(TARGET, 1, True)),
    ],
)
async def test_only_a_newer_version_changes_the_route(mongo_db, events, expected):
    routes = StreamRoutes(mongo_db)
    for event in events:
        await routes.apply(event)
    assert await routes.find("fwd-1@in.example") == expected


async def test_a_moved_stream_is_found_at_its_new_address_only(mongo_db):
    routes = StreamRoutes(mongo_db)
    await routes.apply(changed(1))
    await routes.apply(changed(2, forwarding_address="fwd-2@in.example"))
    assert await routes.find("fwd-1@in.example") is None
    moved = await routes.find("fwd-2@in.example")
    assert moved is not None and moved.target.stream_id == "s1" and moved.version == 2
