"""The broker contract as AsyncAPI 3.0: generated from the contracts, committed, and valid for the AsyncAPI
project's own parser (@asyncapi/parser, installed by scripts/deps.sh into tools/asyncapi)."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from mailstream_common import asyncapi, topology
from mailstream_common.contracts import ALL_EVENTS

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "docs" / "asyncapi.json"
VALIDATOR = ROOT / "tools" / "asyncapi" / "validate.mjs"


def test_committed_document_matches_the_contracts():
    assert COMMITTED.read_text() == asyncapi.document_json(), (
        "docs/asyncapi.json is stale: run `uv run --frozen python scripts/gen_asyncapi.py`"
    )


def test_every_event_is_a_channel_with_a_publisher_and_its_schema():
    document = asyncapi.build()
    assert set(asyncapi.PUBLISHERS) == {event.event_name for event in ALL_EVENTS}
    for event in ALL_EVENTS:
        channel = document["channels"][event.event_name]
        assert channel["address"] == event.event_name
        assert channel["bindings"]["amqp"]["exchange"]["name"] == topology.EVENTS_EXCHANGE
        senders = [op for op in document["operations"].values() if op["action"] == "send"]
        assert any(op["channel"]["$ref"] == f"#/channels/{event.event_name}" for op in senders), event.event_name
        schema = document["components"]["schemas"][event.__name__]
        assert set(event.model_json_schema(by_alias=True, mode="serialization")["properties"]) == set(
            schema["properties"]
        )


def test_every_work_queue_is_received_from_with_exactly_its_bound_events():
    operations = asyncapi.build()["operations"]
    for spec in topology.WORK_QUEUES:
        operation = operations[f"{spec.name}.receive"]
        assert operation["action"] == "receive"
        names = {ref["$ref"].rsplit("/", 1)[-1] for ref in operation["messages"]}
        assert names == {event.__name__ for event in spec.events}


@pytest.mark.parametrize("event", ALL_EVENTS, ids=lambda event: event.event_name)
def test_each_example_is_a_message_its_contract_accepts(event):
    example = asyncapi.build()["components"]["messages"][event.__name__]["examples"][0]["payload"]
    parsed = event.model_validate(example)
    # What the example says survives the contract: nothing in it is silently dropped or changed.
    assert_contained(example, json.loads(parsed.model_dump_json(by_alias=True)))


def assert_contained(expected, actual, where="payload"):
    """Every value `expected` names is in `actual` unchanged (`actual` may add defaults)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), where
        for key, value in expected.items():
            assert key in actual, f"{where}.{key} dropped"
            assert_contained(value, actual[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), where
        for index, (value, got) in enumerate(zip(expected, actual, strict=True)):
            assert_contained(value, got, f"{where}[{index}]")
    else:
        assert actual == expected, f"{where}: {expected!r} became {actual!r}"


def run_validator(path: Path) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    assert node, "Node.js is needed to validate docs/asyncapi.json (scripts/deps.sh installs the parser)"
    assert (VALIDATOR.parent / "node_modules" / "@asyncapi" / "parser").is_dir(), (
        "the AsyncAPI parser is not installed: run scripts/deps.sh"
    )
    return subprocess.run(
        [node, str(VALIDATOR), str(path), "--strict"], capture_output=True, text=True, timeout=120, cwd=ROOT
    )


def test_the_asyncapi_parser_accepts_the_committed_document():
    result = run_validator(COMMITTED)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"VALID AsyncAPI {asyncapi.ASYNCAPI_VERSION}" in result.stdout


def test_the_asyncapi_parser_refuses_a_broken_document(tmp_path):
    document = asyncapi.build()
    # A receive operation whose channel does not exist, and a message binding AMQP does not have.
    document["operations"]["inbox.store.receive"]["channel"] = {"$ref": "#/channels/inbox.nowhere"}
    document["components"]["messages"]["MailReceived"]["bindings"]["amqp"]["deliveryMode"] = 2
    broken = tmp_path / "asyncapi.json"
    broken.write_text(json.dumps(document))
    result = run_validator(broken)
    assert result.returncode == 1, result.stdout
    assert "INVALID" in result.stdout and "inbox.nowhere" in result.stdout and "deliveryMode" in result.stdout
