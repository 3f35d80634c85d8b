"""The fault suite (issue 12): under steady SMTP load and an agent replying, every fault the system must heal from,
one after another, against the whole system as real processes; then count.

Faults, in order (each under load):
1. kill -9 of every service in turn (ingest, inbox, automation, sender, domains), each started again at once, as a
   supervisor would; the large run does that three times;
2. a restart of RabbitMQ: a private node of this test's own (its own node name, ports and storage), stopped and
   started again on the same storage; never the shared node other tests use;
3. kill -9 of the database (a private SecantusDB), started again on the same storage;
4. the relay answers 451 to every mail for a while (15 s here, a minute in the large run), then 550 for one
   recipient.

Then, counted:
- every mail that got 250 is stored exactly once; nothing that got 4xx is stored; a mail whose connection broke
  before any reply (a kill of ingest mid-transaction) is stored at most once;
- every reply the API took (202) reaches the relay exactly once, except inside the documented duplicate window
  (sender killed after the relay's 250 and before `sent` was recorded; services/sender/README.md): a second copy
  counts as that only if the sender was killed between the two copies; the reply to the refused recipient is
  `failed`, never at the relay, refused exactly once (a 5xx is not retried);
- the relay's 451s were retried (the sender deferred, then delivered);
- nothing is left in any queue (retry and dead-letter queues included);
- each outage was reported by /readyz: every service not ready while RabbitMQ was down, every service with a
  database not ready while it was down, all ready again after;
- no service logged "Task exception was never retrieved".

`FAULT_SUITE_SCALE=large` runs the larger manual drill (docs/reliability.md, Faults, has the command and figures).
"""

import contextlib
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from pymongo import MongoClient

from mailstream_inbox.api.app import BROADCAST_JOURNAL_QUEUE
from tests.e2e.conftest import System, _run_system
from tests.e2e.scenarios_support import messages_of, new_account, new_stream
from tests.reliability.fault_support import (
    Agent,
    Phases,
    PrivateRabbit,
    ReadinessWatch,
    SteadyMail,
    private_rabbit_unavailable,
    relay_tokens,
)
from tests.reliability.test_database_crash import _dead_letters, _is_secantus, _stored_message_ids
from tests.support.backends import Backends
from tests.support.controllable_relay import ControllableRelay
from tests.support.secantus import SecantusServer, secantusd_binary
from tests.support.waiting import wait_for_sync

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


@dataclass(frozen=True)
class Scale:
    mail_interval: float  # seconds between two mails of the steady load
    reply_interval: float  # seconds between two agent replies
    kill_rounds: int  # times every service is killed
    relay_deferral_s: float  # how long the relay answers 451 to everything


SCALES = {
    "ci": Scale(mail_interval=0.4, reply_interval=1.0, kill_rounds=1, relay_deferral_s=15),
    "large": Scale(mail_interval=0.25, reply_interval=0.5, kill_rounds=3, relay_deferral_s=60),
}
SCALE_NAME = os.environ.get("FAULT_SUITE_SCALE", "ci")
SCALE = SCALES[SCALE_NAME]
SERVICES = ("ingest", "inbox", "automation", "sender", "domains")
WITH_DATABASE = ("inbox", "automation", "sender", "domains")  # ingest's readiness is the broker alone
GONE = "gone@example.org"
DEFERRAL = "451 4.3.0 Try again in 2 seconds"  # the sender honours a stated delay: the next retry tier (5 s)
REFUSAL = f"550 5.1.1 <{GONE}>: Recipient address rejected: User unknown"
REFUND = "Where is my refund"  # the subject of GONE's mail: the agent leaves it to the test
UNOBSERVED = "Task exception was never retrieved"


@pytest.fixture(scope="module")
def drill(backends: Backends, tmp_path_factory: pytest.TempPathFactory):
    """A private SecantusDB, a private RabbitMQ node, a controllable relay, and the whole system on them."""
    if not _is_secantus(backends.mongodb_uri):
        pytest.skip(
            "SKIPPED, NOT PASSED: the fault suite kills a SecantusDB it starts itself; MONGODB_URI names another "
            f"server ({urlsplit(backends.mongodb_uri).netloc.split('@')[-1]}), which it will not kill."
        )
    if why := private_rabbit_unavailable():
        pytest.skip(f"SKIPPED, NOT PASSED: the fault suite restarts a RabbitMQ node of its own; {why}")
    binary = secantusd_binary()
    if binary is None:
        pytest.fail("secantusd-py not found: run scripts/deps.sh (it exports SECANTUSD_BIN) or set SECANTUSD_BIN")
    base = tmp_path_factory.mktemp("fault-drill")
    server = SecantusServer(binary, base / "data", base / "secantusd.log").start()
    rabbit = PrivateRabbit()
    relay = ControllableRelay().start()
    with contextlib.ExitStack() as stack:
        stack.callback(server.stop)
        stack.callback(rabbit.destroy)
        stack.callback(relay.stop)
        rabbit.start()
        private = Backends(
            amqp_url=rabbit.url,
            mongodb_uri=server.uri,
            database=f"fault_{uuid.uuid4().hex[:8]}",
            description=f"private SecantusDB on {server.port}, private RabbitMQ node {rabbit.node}",
        )
        # The private node is the system's alone: its default vhost, no isolated_vhost (which manages the shared
        # node). The services' robust connections reconnect by themselves after the restart.
        system = stack.enter_context(
            contextlib.contextmanager(_run_system)(
                rabbit.url,
                private,
                tmp_path_factory,
                "fault",
                {"SENDER_SMTP_PORT": str(relay.port), "SENDER_SMTP_HOST": "127.0.0.1"},
            )
        )
        yield system, server, rabbit, relay


def _wait_ready(system: System, services=SERVICES, timeout: float = 120) -> None:
    for name in services:
        system.processes[name].wait_ready(timeout)


def _stored(server: SecantusServer, system: System, stream_id: str) -> list[str]:
    return _stored_message_ids(server.uri, system.env["MONGODB_DATABASE"], stream_id)


@pytest.mark.timeout(600 if SCALE_NAME == "ci" else 3600)  # the project's default of 300 s is per test, set-up included
def test_under_load_every_fault_heals_and_nothing_is_lost_or_duplicated(drill, capsys):
    system, server, rabbit, relay = drill
    system: System
    phases = Phases()
    _, api = new_account(system, "Acme")
    stream = new_stream(api, "support@acme.test")
    ops = {name: process.ops_url for name, process in system.processes.items()}
    service_kills: list[tuple[str, float]] = []
    outages: dict[str, tuple[float, float]] = {}

    with (
        ReadinessWatch(ops) as readiness,
        SteadyMail(system.smtp_port, stream["forwarding_address"], SCALE.mail_interval) as load,
        Agent(system.gateway, api.headers["Authorization"][7:], stream["id"], SCALE.reply_interval, REFUND) as agent,
    ):
        with phases.timed("warm-up"):
            wait_for_sync(
                lambda: len(_stored(server, system, stream["id"])) >= 5 and relay.snapshot()[0],
                timeout=60,
                interval=0.2,
                what="mail stored and a first reply at the relay",
            )

        # 1. kill -9 every service in turn, each started again at once; the next kill waits until mail flows again.
        with phases.timed("service kills"):
            for _ in range(SCALE.kill_rounds):
                for name in SERVICES:
                    process = system.processes[name]
                    accepted_before = load.count("250")
                    process.kill()
                    service_kills.append((name, time.monotonic()))
                    process.spawn()
                    process.wait_ready(timeout=120)
                    wait_for_sync(
                        lambda before=accepted_before: load.count("250") >= before + 2,
                        timeout=60,
                        interval=0.1,
                        what=f"mail accepted again after the kill of {name}",
                    )

        # 2. restart RabbitMQ: down until every service said so and ingest answered a 4xx, then up again.
        with phases.timed("rabbitmq restart"):
            down = time.monotonic()
            rabbit.stop()
            wait_for_sync(
                lambda: all(readiness.reported_not_ready(s, down) for s in SERVICES) and load.count("4xx", down),
                timeout=60,
                interval=0.1,
                what="every service not ready and a 4xx to SMTP while RabbitMQ is down",
            )
            rabbit.start()
            outages["rabbitmq"] = (down, time.monotonic())
            _wait_ready(system)

        # 3. kill -9 the database: down until every service that uses it said so, then started on the same storage.
        with phases.timed("database kill"):
            down = time.monotonic()
            server.kill9()
            wait_for_sync(
                lambda: all(readiness.reported_not_ready(s, down) for s in WITH_DATABASE),
                timeout=60,
                interval=0.1,
                what="every service with a database not ready while it is down",
            )
            server.start()
            outages["database"] = (down, time.monotonic())
            _wait_ready(system)

        # 4. the relay answers 451 to everything for a while: the fault lasts a set time, by definition.
        with phases.timed("relay 4xx"):
            deferring_from = time.monotonic()
            relay.defer_all(DEFERRAL)
            wait_for_sync(
                lambda: (
                    time.monotonic() - deferring_from >= SCALE.relay_deferral_s
                    and any(r.stage == "DATA" for r in relay.snapshot()[1])
                ),
                timeout=SCALE.relay_deferral_s + 60,
                interval=0.2,
                what="the relay's deferral period, with at least one reply deferred in it",
            )
            relay.defer_all(None)

        # 5. then 550 for one recipient: a customer whose mailbox is gone.
        with phases.timed("relay 5xx"):
            relay.refuse_recipient(GONE, REFUSAL)
            subject = f"{REFUND} {uuid.uuid4().hex[:6]}"
            sent = load.send_one(GONE, subject)
            assert sent.outcome == "250"
            # By the database, not the first page of the list: under the large run's load newer conversations push
            # it off that page while the inbox works through its backlog.
            conversation_id = wait_for_sync(
                lambda: _conversation_of(server, system, sent.message_id),
                timeout=180,
                interval=0.5,
                what=f"the conversation of {GONE}'s mail",
            )
            gone_reply = wait_for_sync(lambda: agent.reply(conversation_id), timeout=60, what="the reply to GONE")

            def gone_delivery():
                found = next((m for m in messages_of(api, conversation_id) if m["id"] == gone_reply.message_id), None)
                return found and found["delivery"] and found["delivery"]["status"] == "failed" and found["delivery"]

            gone_status = wait_for_sync(gone_delivery, timeout=60, interval=0.3, what="the reply to GONE failed")

    # Drain: every accepted mail stored, every reply the API took at the relay (but GONE's), no queue holding work.
    attempts = load.snapshot()
    replies = agent.snapshot()
    outcome = {a.message_id: a.outcome for a in attempts}
    got_250 = {m for m, o in outcome.items() if o == "250"}
    wanted_tokens = {r.token for r in replies if r.token != gone_reply.token}
    leave_out = (BROADCAST_JOURNAL_QUEUE,)

    def drained():
        stored = _stored(server, system, stream["id"])
        tokens = relay_tokens([a.data for a in relay.snapshot()[0]])
        depths = rabbit.queue_depths(leave_out)
        done = got_250 <= set(stored) and wanted_tokens <= set(tokens) and not any(depths.values())
        return (stored, tokens, depths) if done else None

    with phases.timed("drain"):
        try:
            stored, tokens, _ = wait_for_sync(drained, timeout=180, interval=1.0, what="the system to settle")
        except AssertionError:
            stored = _stored(server, system, stream["id"])
            tokens = relay_tokens([a.data for a in relay.snapshot()[0]])
            queued = {q: n for q, n in rabbit.queue_depths(leave_out).items() if n}
            raise AssertionError(
                f"not settled: {len(got_250 - set(stored))} mails with 250 not stored, "
                f"{len(wanted_tokens - set(tokens))} replies not at the relay, queued: {queued}"
            ) from None

    # Mail: exactly once for a 250, never for a 4xx/5xx, at most once without a reply.
    duplicates = {m: n for m, n in _counts(stored).items() if n > 1}
    assert not duplicates, f"stored more than once: {duplicates}"
    refused_but_stored = {m for m in stored if outcome.get(m) in ("4xx", "5xx")}
    assert not refused_but_stored, f"stored although refused with 4xx/5xx: {refused_but_stored}"
    # The keeper empties the dead-letter queues into the inbox's database: nothing may have died.
    assert not (dead := _dead_letters(server.uri, system.env["MONGODB_DATABASE"])), f"dead-lettered: {dead}"
    assert set(stored) <= set(outcome), "stored a mail nobody sent"

    # Replies: once each at the relay, or twice inside the documented window (a sender kill between the copies).
    accepted_mail, refused = relay.snapshot()
    sender_kills = [t for name, t in service_kills if name == "sender"]
    receipts: dict[int, list[float]] = {}
    for receipt in accepted_mail:
        for token in relay_tokens([receipt.data]):
            receipts.setdefault(token, []).append(receipt.at)
    windowed = {}
    for token, times in receipts.items():
        if len(times) > 1:
            straddled = any(times[0] < kill < times[-1] for kill in sender_kills)
            assert straddled and len(times) == 2, f"reply {token} reached the relay {len(times)} times: {times}"
            windowed[token] = times
    # A reply whose request got no answer at all (the inbox killed mid-request) may or may not have been queued;
    # one the API answered with an error must not go out (the caller was told to try again).
    no_answer = {t for t, why in agent.not_taken.items() if not why[:3].isdigit()}
    unasked = {t: agent.not_taken.get(t) for t in set(receipts) - wanted_tokens - no_answer}
    assert not unasked, f"at the relay although the API answered an error: {unasked}"
    assert wanted_tokens <= set(receipts)
    copies = {}
    for receipt in accepted_mail:
        for token in relay_tokens([receipt.data]):
            copies.setdefault(token, set()).add(receipt.data)
    assert all(len(c) == 1 for c in copies.values()), "a duplicate copy that is not byte-identical to the first"

    # The 451s were deferrals the sender retried; the 550 was final at once.
    deferred = [r for r in refused if r.stage == "DATA"]
    assert deferred, "the relay deferred nothing"
    gone_refusals = [r for r in refused if r.stage == "RCPT" and r.address.lower() == GONE]
    assert len(gone_refusals) == 1, f"a 5xx was retried: {len(gone_refusals)} attempts"
    assert gone_reply.token not in receipts
    assert "550" in str(gone_status)

    # Readiness reported each outage, and every service is ready at the end.
    for dependency, services in (("rabbitmq", SERVICES), ("database", WITH_DATABASE)):
        start, end = outages[dependency]
        silent = [s for s in services if not readiness.reported_not_ready(s, start, end)]
        assert not silent, f"{silent} never reported not ready while {dependency} was down"
    _wait_ready(system, timeout=30)

    # No exception went unobserved in any service.
    for name, process in system.processes.items():
        text = Path(process.log_path).read_text(errors="replace")
        assert UNOBSERVED not in text, f"{name} logged {UNOBSERVED!r}"

    counts = {o: sum(1 for a in attempts if a.outcome == o) for o in ("250", "4xx", "5xx", "no reply")}
    no_reply_stored = sum(1 for m in stored if outcome.get(m) == "no reply")
    with capsys.disabled():
        print(
            f"\nfault suite ({SCALE_NAME}): mails sent {len(attempts)} ({counts}, one of them from {GONE}); "
            f"stored {len(stored)} (of the no-reply ones: {no_reply_stored}); duplicates stored 0; "
            f"service kills {len(service_kills)}; replies taken {len(replies)} (API refused {dict(agent.refused)}); "
            f"relay receipts {len(accepted_mail)} for {len(receipts)} replies ({len(set(receipts) & no_answer)} of them "
            f"to requests that got no answer), duplicate-window copies "
            f"{len(windowed)}; relay 451s {len(deferred)}, 550s {len(gone_refusals)}; phases {phases.times}"
        )


def _conversation_of(server: SecantusServer, system: System, message_id: str) -> str | None:
    with MongoClient(server.uri, serverSelectionTimeoutMS=5000) as client:
        found = client[system.env["MONGODB_DATABASE"]].messages.find_one(
            {"message_id_header": {"$in": [message_id, f"<{message_id}>"]}}, {"conversation_id": 1}
        )
    return found["conversation_id"] if found else None


def _counts(items: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for item in items:
        found[item] = found.get(item, 0) + 1
    return found
