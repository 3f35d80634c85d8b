"""Attachments on replies, end to end: an agent uploads files through the gateway (`POST /v1/attachments`,
multipart), the content type is sniffed (the client's claim is not trusted), and a reply or a canned response
references them by id. Sender builds the MIME: the relay's bytes carry the Japanese file name in RFC 2231 form,
which Python's parser decodes back, and the DKIM signature over them still verifies (Perl Mail::DKIM and dkimpy).
Inbound attachments over the account's limit are listed as omitted and stay in the raw mail. Another account's
upload is 404 everywhere."""

import base64
from collections.abc import Iterator
from email.message import EmailMessage
from email.utils import make_msgid

import dkim
import pytest

from tests.e2e.conftest import System, running_system
from tests.e2e.scenarios_support import (
    messages_of,
    new_account,
    new_stream,
    parse,
    relay_dumps,
    sink_envelope,
    smtp_send,
    strip_sink_headers,
    wait_for_conversation,
    wait_for_sent,
)
from tests.e2e.test_signed_reply import MAILSTREAM_ZONE, dkimpy_dns, published_zone
from tests.support.backends import Backends
from tests.support.dns_server import DnsServer
from tests.support.mail_auth import dkim_verify

pytestmark = pytest.mark.e2e

DOMAIN = "files.test"
CUSTOMER = "kenji@example.net"
JAPANESE_NAME = "請求書_2026年3月分のご案内.pdf"
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
LIMIT = 100_000


@pytest.fixture(scope="module")
def dns_server() -> Iterator[DnsServer]:
    server = DnsServer.start(MAILSTREAM_ZONE)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def system(backends: Backends, tmp_path_factory: pytest.TempPathFactory, dns_server: DnsServer) -> Iterator[System]:
    with running_system(
        backends,
        tmp_path_factory,
        "files",
        {"DNS_NAMESERVERS": dns_server.nameserver, "DNS_TIMEOUT_SECONDS": "3", "INGEST_DNS_TIMEOUT_SECONDS": "1"},
    ) as running:
        yield running


def upload(api, name: str, data: bytes, declared: str) -> dict:
    response = api.post("/v1/attachments", files={"file": ("upload.bin", data, declared)}, data={"filename": name})
    assert response.status_code == 201, response.text
    return response.json()


def customer_mail(subject: str, attachments: list[tuple[str, bytes]]) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = f"Kenji Customer <{CUSTOMER}>"
    mail["To"] = f"support@{DOMAIN}"
    mail["Subject"] = subject
    mail["Message-ID"] = make_msgid(domain="example.net")
    mail.set_content("Please see the files.")
    for name, data in attachments:
        mail.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    return mail


def relay_mail_for(system: System, message_id_header: str) -> bytes:
    dumps = [d for d in relay_dumps(system) if CUSTOMER in sink_envelope(d, b"X-Rcpt-Args")]
    found = [strip_sink_headers(d) for d in dumps if message_id_header.encode() in d]
    assert len(found) == 1, f"{len(found)} mails with {message_id_header} at the relay"
    return found[0]


def test_files_on_replies_and_canned_responses(system: System, dns_server: DnsServer) -> None:
    account, api = new_account(system, "Files Co")
    limit = system.cli(
        "accounts", "set-attachment-limit", "--account", account["account_id"], "--max-bytes", str(LIMIT)
    )
    assert limit == {"account_id": account["account_id"], "attachment_max_bytes": LIMIT, "own_limit": True}
    domain = api.post("/v1/domains", json={"name": DOMAIN, "dkim_key_bits": 1024})
    assert domain.status_code == 201, domain.text
    dns_server.set_records(published_zone(domain.json()))
    verified = api.post(f"/v1/domains/{domain.json()['id']}/verify")
    assert verified.status_code == 200 and verified.json()["status"] == "verified", verified.text
    stream = new_stream(api, f"support@{DOMAIN}", display_name="Files Support")

    # Uploads: the type comes from the bytes, not from the client; over the limit is 413.
    pdf = upload(api, JAPANESE_NAME, PDF, "text/plain")
    assert (pdf["filename"], pdf["content_type"], pdf["declared_content_type"]) == (
        JAPANESE_NAME,
        "application/pdf",
        "text/plain",
    )
    assert pdf["size"] == len(PDF)
    notes = upload(api, "../../etc/返品の手順.txt", "返品の手順: 箱に入れてください。\n".encode(), "image/png")
    assert (notes["filename"], notes["content_type"]) == ("返品の手順.txt", "text/plain")
    too_large = api.post("/v1/attachments", files={"file": ("big.bin", b"x" * (LIMIT + 1), "application/zip")})
    assert too_large.status_code == 413, too_large.text
    downloaded = api.get(f"/v1/attachments/{pdf['id']}")
    assert downloaded.status_code == 200 and downloaded.content == PDF

    # Another account sees none of it.
    _, other = new_account(system, "Other Co")
    assert other.get(f"/v1/attachments/{pdf['id']}").status_code == 404
    other_stream = new_stream(other, "other@elsewhere.test")
    assert other_stream["id"]

    # Inbound: the small file is kept, the one over the limit is listed as omitted and stays in the raw mail.
    big = bytes(range(256)) * 500  # 128,000 bytes
    smtp_send(
        system,
        customer_mail("Files for order 12", [("small.bin", b"tiny"), ("huge.bin", big)]),
        mail_from=CUSTOMER,
        rcpt=stream["forwarding_address"],
    )
    conversation = wait_for_conversation(api, stream["id"], "Files for order 12")
    [inbound] = messages_of(api, conversation["id"])
    by_name = {a["filename"]: a for a in inbound["attachments"]}
    assert by_name["small.bin"]["omitted"] is None
    assert api.get(f"/v1/attachments/{by_name['small.bin']['id']}").content == b"tiny"
    assert by_name["huge.bin"]["omitted"]["reason"] == "too_large", by_name["huge.bin"]
    assert by_name["huge.bin"]["size"] == len(big)
    assert api.get(f"/v1/attachments/{by_name['huge.bin']['id']}").status_code == 404
    raw = api.get(f"/v1/messages/{inbound['id']}/raw")
    kept = [p for p in parse(raw.content).iter_attachments() if p.get_filename() == "huge.bin"]
    assert kept and kept[0].get_content() == big

    # Another account's upload on a reply is 404, and nothing is queued.
    foreign = upload(other, "foreign.pdf", PDF, "application/pdf")
    refused = api.post(
        f"/v1/conversations/{conversation['id']}/replies",
        json={"text": "x", "attachment_ids": [foreign["id"]], "apply_template": False},
    )
    assert refused.status_code == 404, refused.text
    assert len(messages_of(api, conversation["id"])) == 1

    # A reply with the PDF: RFC 2231 name, the exact bytes, and a DKIM signature that verifies.
    queued = api.post(
        f"/v1/conversations/{conversation['id']}/replies",
        json={"text": "Your invoice is attached.", "attachment_ids": [pdf["id"]], "apply_template": False},
    )
    assert queued.status_code == 202, queued.text
    sent = wait_for_sent(api, conversation["id"], queued.json()["message_id"])
    assert [(a["filename"], a["content_type"], a["size"]) for a in sent["attachments"]] == [
        (JAPANESE_NAME, "application/pdf", len(PDF))
    ]
    assert api.get(f"/v1/attachments/{sent['attachments'][0]['id']}").content == PDF
    mail = relay_mail_for(system, sent["message_id_header"])
    assert b"filename*" in mail and JAPANESE_NAME.encode() not in mail  # RFC 2231, 7-bit on the wire
    [part] = list(parse(mail).iter_attachments())
    assert part.get_filename() == JAPANESE_NAME
    assert part.get_content_type() == "application/pdf"
    assert part.get_content() == PDF
    assert base64.b64encode(PDF)[:40] in mail.replace(b"\r\n", b"")
    verdict = dkim_verify(dns_server, mail)
    assert verdict.strip().endswith("RESULT pass"), verdict
    assert dkim.verify(mail, dnsfunc=dkimpy_dns(dns_server)) is True

    # A canned response keeps its file (the upload itself may expire) and sends it with every use.
    canned = api.post(
        "/v1/canned-responses",
        json={"title": "Returns", "text": "How to return an item: see the file.", "attachment_ids": [notes["id"]]},
    )
    assert canned.status_code == 201, canned.text
    assert canned.json()["attachments"] == [
        {"filename": "返品の手順.txt", "content_type": "text/plain", "size": notes["size"]}
    ]
    assert (
        api.post(
            "/v1/canned-responses", json={"title": "Bad", "text": "x", "attachment_ids": [foreign["id"]]}
        ).status_code
        == 404
    )
    queued = api.post(
        f"/v1/conversations/{conversation['id']}/replies",
        json={"canned_response_id": canned.json()["id"], "attachment_ids": [pdf["id"]], "apply_template": False},
    )
    assert queued.status_code == 202, queued.text
    sent = wait_for_sent(api, conversation["id"], queued.json()["message_id"])
    mail = relay_mail_for(system, sent["message_id_header"])
    names = [p.get_filename() for p in parse(mail).iter_attachments()]
    assert names == ["返品の手順.txt", JAPANESE_NAME]
    assert dkim.verify(mail, dnsfunc=dkimpy_dns(dns_server)) is True
