"""Putting files on a built reply (pure): records on the stored message, the bytes in the command to sender."""

from mailstream_inbox.use_cases.reply_attachments import with_attachments
from tests.inbox.test_reply_builder import build


def test_files_go_on_the_message_and_in_the_command():
    built = build()
    record = {"filename": "請求書.pdf", "content_type": "application/pdf", "size": 4, "sha256": "ab" * 32}
    with_files = with_attachments(built, [(record, b"%PDF")])
    [stored] = with_files.message["attachments"]
    assert stored["id"] == f"{built.message['_id']}-1"
    assert (stored["filename"], stored["sha256"], stored["inline"]) == ("請求書.pdf", "ab" * 32, False)
    [sent] = with_files.event.attachments
    assert (sent.filename, sent.content_type, sent.content) == ("請求書.pdf", "application/pdf", b"%PDF")
    assert built.event.attachments == [] and built.message["attachments"] == []  # the original is untouched


def test_no_files_changes_nothing():
    built = build()
    assert with_attachments(built, []) is built
