"""Shared pieces of the end-to-end scenarios: a whole system started with extra settings (a test DNS server, say),
and the steps every scenario repeats through the public interfaces (CLI account, API stream, SMTP in, relay out).

`running_system` (from `tests/e2e/conftest.py`) builds the system with `extra_env` on top, and a vhost and
database of its own per module, so that scenario modules do not see each other's data.
"""

import json
import smtplib
import threading
from email import message_from_bytes, policy
from email.message import EmailMessage

import httpx

from tests.e2e.conftest import System, wait_for_json
from tests.support.waiting import wait_for_sync

# For modules that read the event stream: a keep-alive every second lets a listener thread stop promptly.
LIVE_ENV = {"INBOX_SSE_KEEPALIVE_SECONDS": "1"}
# smtp-sink writes these lines before the mail it received; they are not part of what the client sent.
SINK_PREFIXES = (b"X-Client-Addr:", b"X-Client-Proto:", b"X-Helo-Args:", b"X-Mail-Args:", b"X-Rcpt-Args:")


# --- set-up through the public API --------------------------------------------------------------------------------


def new_account(system: System, name: str) -> tuple[dict, httpx.Client]:
    """An account made with the CLI, and an API client holding its admin key."""
    account = system.cli("accounts", "create", "--name", name)
    return account, system.client(account["api_key"])


def new_stream(api: httpx.Client, address: str, *, topic: str = "Support", **fields) -> dict:
    created_topic = api.post("/v1/topics", json={"name": topic})
    assert created_topic.status_code == 201, created_topic.text
    stream = api.post(
        f"/v1/topics/{created_topic.json()['id']}/streams",
        json={"address": address, "allow_agent_send": True, **fields},
    )
    assert stream.status_code == 201, stream.text
    return stream.json()


# --- SMTP in ------------------------------------------------------------------------------------------------------


def smtp_send(system: System, mail: EmailMessage | bytes, *, mail_from: str, rcpt: str) -> None:
    """Deliver one mail to ingest over SMTP; fails unless every recipient was accepted."""
    with smtplib.SMTP("127.0.0.1", system.smtp_port, timeout=30) as smtp:
        if isinstance(mail, bytes):
            refused = smtp.sendmail(mail_from, [rcpt], mail)
        else:
            refused = smtp.send_message(mail, from_addr=mail_from, to_addrs=[rcpt])
    assert refused == {}


# --- conversations ------------------------------------------------------------------------------------------------


def conversations_of(api: httpx.Client, stream_id: str) -> list[dict]:
    response = api.get("/v1/conversations", params={"stream_id": stream_id})
    assert response.status_code == 200, response.text
    return response.json()["items"]


def wait_for_conversation(api: httpx.Client, stream_id: str, subject: str, *, timeout: float = 30) -> dict:
    """The stream's conversation with `subject`, once its first mail has been stored in it.

    The conversation is listed a moment before its first message is counted (message_count 0); acting on it in
    that moment (an agent's reply, say) races the store, so scenarios wait for the count as a person would."""
    body = wait_for_json(
        api,
        f"/v1/conversations?stream_id={stream_id}",
        lambda page: any(c["subject"] == subject and c["message_count"] >= 1 for c in page["items"]),
        timeout=timeout,
        what=f"a conversation {subject!r}",
    )
    return next(c for c in body["items"] if c["subject"] == subject)


def messages_of(api: httpx.Client, conversation_id: str) -> list[dict]:
    response = api.get(f"/v1/conversations/{conversation_id}/messages")
    assert response.status_code == 200, response.text
    return response.json()["items"]


def wait_for_sent(api: httpx.Client, conversation_id: str, message_id: str, *, timeout: float = 30) -> dict:
    """The outbound message once its delivery status is `sent` (the relay answered 250)."""

    def sent():
        found = next((m for m in messages_of(api, conversation_id) if m["id"] == message_id), None)
        return found if found and found["delivery"] and found["delivery"]["status"] == "sent" else None

    return wait_for_sync(sent, timeout=timeout, what=f"delivery 'sent' of message {message_id}")


def reply(api: httpx.Client, conversation_id: str, text: str) -> dict:
    """An agent's reply (no template, so the text is exactly what goes out); waits until it was sent."""
    response = api.post(f"/v1/conversations/{conversation_id}/replies", json={"text": text, "apply_template": False})
    assert response.status_code == 202, response.text
    return wait_for_sent(api, conversation_id, response.json()["message_id"])


# --- the relay ----------------------------------------------------------------------------------------------------


def relay_raw(system: System) -> list[bytes]:
    """Every mail at the relay as its client sent it (smtp-sink's own X-* lines and Received header removed)."""
    return [strip_sink_headers(path.read_bytes()) for path in sorted(system.relay.directory.iterdir())]


def strip_sink_headers(dump: bytes) -> bytes:
    lines = dump.splitlines(keepends=True)
    index = 0
    while index < len(lines) and lines[index].startswith(SINK_PREFIXES):
        index += 1
    if index < len(lines) and lines[index].startswith(b"Received:"):
        index += 1
        while index < len(lines) and lines[index][:1] in (b" ", b"\t"):
            index += 1
    return b"".join(lines[index:])


def sink_envelope(dump: bytes, name: bytes) -> str:
    """An smtp-sink line such as X-Mail-Args (`FROM:<...> ...`) or X-Client-Addr."""
    for line in dump.splitlines():
        if line.startswith(name + b":"):
            return line.partition(b":")[2].strip().decode()
    raise AssertionError(f"no {name!r} line in the relay's dump")


def relay_dumps(system: System) -> list[bytes]:
    return [path.read_bytes() for path in sorted(system.relay.directory.iterdir())]


def parse(raw: bytes) -> EmailMessage:
    return message_from_bytes(raw, policy=policy.default)  # type: ignore[return-value]


def relay_mail_to(system: System, address: str) -> list[EmailMessage]:
    """The mails at the relay whose To header names `address`."""
    found = []
    for mail in system.relay.messages():
        to = mail["To"]
        if to is not None and any(a.addr_spec.lower() == address.lower() for a in to.addresses):
            found.append(mail)
    return found


def text_of(mail: EmailMessage) -> str:
    body = mail.get_body(("plain",))
    assert body is not None, "the mail has no text/plain part"
    return body.get_content()


# --- live events -------------------------------------------------------------------------------------------------


class EventListener:
    """Reads `GET /v1/events` in a thread (httpx streaming) and keeps every event it got, in order.

    The thread looks at its stop flag on every line, so give the system a short INBOX_SSE_KEEPALIVE_SECONDS
    (`LIVE_ENV`); a silence longer than the read timeout is recorded as an error, not taken as the end."""

    def __init__(self, system: System, api_key: str) -> None:
        self.events: list[tuple[str, dict]] = []
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._client = httpx.Client(
            base_url=system.gateway,
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=httpx.Timeout(10, read=30),
        )
        self._thread = threading.Thread(target=self._read, daemon=True)
        self.error: BaseException | None = None

    def __enter__(self) -> "EventListener":
        self._thread.start()
        assert self.connected.wait(20), "the event stream did not open"
        assert self.error is None, f"the event stream failed: {self.error!r}"
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self._client.close()

    def _read(self) -> None:
        try:
            with self._client.stream("GET", "/v1/events") as response:
                assert response.status_code == 200, response.status_code
                assert response.headers["content-type"].startswith("text/event-stream")
                name, data = None, []
                for line in response.iter_lines():
                    if self._stop.is_set():
                        return
                    if line.startswith(": connected"):
                        self.connected.set()
                    elif line.startswith("event:"):
                        name = line.partition(":")[2].strip()
                    elif line.startswith("data:"):
                        data.append(line.partition(":")[2].strip())
                    elif line == "" and name is not None:
                        self.events.append((name, json.loads("\n".join(data))))
                        name, data = None, []
                raise EOFError("the gateway ended the event stream")
        except BaseException as exc:  # reported by the waiting test
            if not self._stop.is_set():
                self.error = exc
            self.connected.set()

    def wait_for(self, predicate, *, what: str, timeout: float = 30) -> tuple[str, dict]:
        def found():
            assert self.error is None, f"event stream failed: {self.error!r}"
            return next((event for event in list(self.events) if predicate(*event)), None)

        return wait_for_sync(found, timeout=timeout, what=what)

    def check(self) -> None:
        """Fail if the stream broke before the test stopped it (its silence would then prove nothing)."""
        assert self.error is None, f"event stream failed: {self.error!r}"
