"""What inbox decides about attachment files, as plain functions: the content type (sniffed from the bytes, never
taken from the client), a safe file name, the size limit that applies to an account, and whether an inbound part
is kept or listed as omitted (plus the one read that finds an account's limit)."""

import unicodedata
from typing import Any

import filetype
from pymongo.asynchronous.database import AsyncDatabase

from .repositories import accounts as accounts_repo
from .settings import InboxSettings

MAX_FILENAME_CHARS = 255
# The reply command carries the files themselves (sender reads no inbox collection), and inbox keeps that command
# on the outbound message until the broker confirmed it: base64 of this much stays well under MongoDB's 16 MB.
REPLY_ATTACHMENTS_MAX_BYTES = 10 * 1024 * 1024
REPLY_ATTACHMENTS_MAX_COUNT = 10


def sniff_content_type(data: bytes) -> str:
    """The type the bytes show (magic numbers), else text/plain for UTF-8 text, else application/octet-stream."""
    kind = filetype.guess(data[:8192])
    if kind is not None:
        return kind.mime
    try:
        data[:65536].decode("utf-8")
    except UnicodeDecodeError:
        return "application/octet-stream"
    return "text/plain" if data else "application/octet-stream"


def clean_filename(name: str | None) -> str | None:
    """The last path component, NFC, without control characters; None if nothing usable is left."""
    if not name:
        return None
    name = unicodedata.normalize("NFC", name.replace("\\", "/").rsplit("/", 1)[-1])
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip().strip(".")
    if not name:
        return None
    if len(name) > MAX_FILENAME_CHARS:
        _stem, dot, ext = name.rpartition(".")
        keep = ext if dot and len(ext) <= 16 else ""
        name = (name[: MAX_FILENAME_CHARS - len(keep) - 1] + "." + keep) if keep else name[:MAX_FILENAME_CHARS]
    return name


def attachment_limit(account: dict[str, Any] | None, default: int) -> int:
    """The account's own limit when it has one, else the service default."""
    own = (account or {}).get("attachment_max_bytes")
    return int(own) if own else default


async def account_attachment_limit(db: AsyncDatabase, account_id: str, settings: InboxSettings) -> int:
    """The limit that applies to this account (one primary-key read)."""
    return attachment_limit(await accounts_repo.get_account(db, account_id), settings.attachment_max_bytes)


def omission(size: int, limit: int) -> dict[str, Any] | None:
    """Why an inbound attachment's bytes are not kept separately (it stays in the raw mail), or None to keep it."""
    if size > limit:
        return {"reason": "too_large", "detail": f"{size} bytes is over the account's limit of {limit} bytes"}
    return None
