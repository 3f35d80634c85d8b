"""The reference console (console/) in Debian's Chromium against the real stack: sign in, a mail sent over SMTP
appears live, open it, reply with a canned response, the delivery turns `sent`, a mail missed while offline
arrives on reconnect, add a domain and see its records; screenshots at 1280 and 360 px into docs/screenshots/ and
an axe-core scan of the main pages with no serious or critical violation.

The browser is driven by console/e2e/tour.mjs (Playwright's playwright-core, no browser download); this test starts
the system, builds the console if its sources changed, runs the tour and answers its requests (send a mail over
SMTP and say which conversation it became). Without Chromium or npm the test is skipped, except in CI (CI=true),
where it must run: scripts/deps.sh installs Chromium.
"""

import json
import os
import shutil
import struct
import subprocess
import threading
import zlib
from collections.abc import Iterator
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from queue import Empty, Queue

import pytest

from tests.e2e.conftest import System, running_system
from tests.e2e.scenarios_support import LIVE_ENV, new_account, new_stream, smtp_send, wait_for_conversation
from tests.support.backends import Backends

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CONSOLE = ROOT / "console"
# The README's pictures; CONSOLE_SCREENSHOT_DIR sends a run's elsewhere (to keep a checkout unchanged, say).
SCREENSHOTS = Path(os.environ.get("CONSOLE_SCREENSHOT_DIR") or ROOT / "docs" / "screenshots")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
TOUR_TIMEOUT_SECONDS = 600
SERIOUS = {"serious", "critical"}
CANNED_TITLE = "Order delayed"
ATTACHMENT_NAME = "order-1234.txt"
ATTACHMENT_TEXT = "Order 1234: one teapot (急須)."


def _missing_tools() -> list[str]:
    missing = []
    if not Path(CHROMIUM).exists():
        missing.append(f"Chromium ({CHROMIUM}; apt-get install chromium, or scripts/deps.sh)")
    if shutil.which("npm") is None or shutil.which("node") is None:
        missing.append("Node.js 20+ with npm")
    return missing


@pytest.fixture(scope="module")
def browser_tools() -> None:
    missing = _missing_tools()
    if missing:
        reason = "the console's browser test needs " + " and ".join(missing)
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(reason + " (CI is set: it must run)")
        pytest.skip(reason)
    subprocess.run([str(ROOT / "scripts" / "build_console.sh")], check=True, timeout=600)


@pytest.fixture(scope="module")
def system(backends: Backends, tmp_path_factory: pytest.TempPathFactory, browser_tools: None) -> Iterator[System]:
    with running_system(backends, tmp_path_factory, "console", LIVE_ENV) as running:
        yield running


class Tour:
    """console/e2e/tour.mjs as a child process: its `@@` lines are requests (answered on its stdin) or the result."""

    def __init__(self, system: System, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            ["node", str(CONSOLE / "e2e" / "tour.mjs")],
            cwd=CONSOLE,
            env={**os.environ, **env},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: Queue[str | None] = Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._pump, args=(self.proc.stdout, self.lines.put), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stderr, self.stderr.append), daemon=True).start()

    @staticmethod
    def _pump(stream, sink) -> None:
        for line in stream:
            sink(line.rstrip("\n"))
        sink(None)

    def messages(self, timeout: float) -> Iterator[dict]:
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except Empty:
                self.proc.kill()
                raise AssertionError("the browser tour stalled:\n" + self.output()) from None
            if line is None:
                return
            if line.startswith("@@ "):
                yield json.loads(line[3:])

    def answer(self, reply: dict) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(reply) + "\n")
        self.proc.stdin.flush()

    def output(self) -> str:
        return "\n".join(line for line in self.stderr if line is not None)


def tiny_png() -> bytes:
    """A 4x4 red PNG: the inline image of the test mail."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * 4 for _ in range(4))
    header = struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def customer_mail(subject: str, from_name: str, to: str) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = f"{from_name} <hanako@example.net>"
    mail["To"] = to
    mail["Subject"] = subject
    mail["Message-ID"] = make_msgid(domain="example.net")
    mail.set_content("こんにちは。Order 1234 has not arrived yet. 注文番号 1234 がまだ届いていません。")
    logo = make_msgid(domain="example.net")
    mail.add_alternative(
        "<p>こんにちは。<b>Order 1234</b> has not arrived yet.</p><p>注文番号 1234 がまだ届いていません。</p>"
        f'<p><img src="cid:{logo[1:-1]}" alt="the shop\'s logo" width="16" height="16"></p>'
        "<script>alert('never runs')</script>",
        subtype="html",
    )
    html_part = mail.get_body(preferencelist=("html",))
    assert html_part is not None
    html_part.add_related(tiny_png(), maintype="image", subtype="png", cid=logo, filename="logo.png")
    mail.add_attachment(ATTACHMENT_TEXT.encode(), maintype="text", subtype="plain", filename=ATTACHMENT_NAME)
    return mail


def test_the_console_works_in_chromium_against_the_real_stack(system: System) -> None:
    account, api = new_account(system, "Acme Support")
    stream = new_stream(api, "support@acme.test")
    canned = api.post(
        "/v1/canned-responses",
        json={"title": CANNED_TITLE, "text": "Hello {{ customer.name }}, your order ships today. Sorry for the wait!"},
    )
    assert canned.status_code == 201, canned.text
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    tour = Tour(
        system,
        {
            "CONSOLE_URL": f"{system.gateway}/console/",
            "CONSOLE_API_KEY": account["api_key"],
            "CONSOLE_ACCOUNT_NAME": "Acme Support",
            "SCREENSHOT_DIR": str(SCREENSHOTS),
            "CHROMIUM": CHROMIUM,
            "CONSOLE_ATTACHMENT": json.dumps({"filename": ATTACHMENT_NAME, "text": ATTACHMENT_TEXT}),
        },
    )
    result = None
    try:
        for message in tour.messages(timeout=TOUR_TIMEOUT_SECONDS):
            if "result" in message:
                result = message["result"]
                continue
            request = message["request"]
            assert request["type"] == "send_mail", request
            mail = customer_mail(request["subject"], request["from_name"], stream["address"])
            smtp_send(system, mail, mail_from="hanako@example.net", rcpt=stream["forwarding_address"])
            conversation = wait_for_conversation(api, stream["id"], request["subject"])
            tour.answer({"conversation_id": conversation["id"], "canned_title": CANNED_TITLE})
        code = tour.proc.wait(timeout=60)
    finally:
        if tour.proc.poll() is None:
            tour.proc.kill()
    assert code == 0 and result is not None, "the browser tour failed:\n" + tour.output()
    print(tour.output())  # the steps and each axe-core scan's findings, for `pytest -s`

    for path in result["screenshots"]:
        assert Path(path).stat().st_size > 10_000, path
    assert {Path(p).name for p in result["screenshots"]} >= {
        "inbox-1280.png",
        "inbox-360.png",
        "domain-1280.png",
        "domain-360.png",
    }
    scanned = {scan["page"] for scan in result["axe"]}
    assert {"conversation", "streams", "domain", "api keys"} <= scanned
    serious = [
        (scan["page"], violation)
        for scan in result["axe"]
        for violation in scan["violations"]
        if violation["impact"] in SERIOUS
    ]
    assert serious == [], f"axe-core found serious accessibility problems: {serious}"
    assert result["problems"] == []
