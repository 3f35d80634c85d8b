"""Files on a reply: the agent's uploads (`attachment_ids`) and the canned response's own files.

`attachments_exist` is one of `send_reply`'s guard steps: it resolves the files (another account's upload, or one
that expired, is "no such attachment"), keeps their bytes in `blobs`, and checks the count and total size.
`with_attachments` (pure) puts them on the built reply: records on the outbound message (downloadable like any
attachment) and the bytes themselves in the `reply.requested` command, from which sender builds the MIME
(RFC 2231 file names). Sender never reads inbox's collections.
"""

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from pymongo.asynchronous.database import AsyncDatabase

from mailstream_common.contracts.replies import OutgoingAttachment

from ..attachment_rules import REPLY_ATTACHMENTS_MAX_BYTES, REPLY_ATTACHMENTS_MAX_COUNT
from ..reply_builder import OutboundReply
from ..repositories import blobs as blobs_repo
from ..repositories import canned_responses as canned_repo
from ..repositories import messages as messages_repo
from ..repositories import uploads as uploads_repo

if TYPE_CHECKING:
    from .send_reply import Outgoing

NO_SUCH_ATTACHMENT = "no such attachment"


async def attachments_exist(db: AsyncDatabase, out: "Outgoing") -> str | None:
    account_id = out.conversation["account_id"]
    records: list[dict[str, Any]] = []
    if out.request.canned_response_id:
        canned = await canned_repo.get(db, account_id, out.request.canned_response_id)
        records.extend((canned or {}).get("attachments", []))
    if out.request.attachment_ids:
        kept = await uploads_repo.keep(db, account_id, list(out.request.attachment_ids))
        if isinstance(kept, str):
            return f"{NO_SUCH_ATTACHMENT}: {kept}"
        records.extend(kept)
    if len(records) > REPLY_ATTACHMENTS_MAX_COUNT:
        return f"at most {REPLY_ATTACHMENTS_MAX_COUNT} attachments per reply"
    if sum(r["size"] for r in records) > REPLY_ATTACHMENTS_MAX_BYTES:
        return f"the attachments are larger than {REPLY_ATTACHMENTS_MAX_BYTES} bytes in total"
    files = []
    for record in records:
        data = await blobs_repo.get(db, record["sha256"])
        if data is None:
            return f"{NO_SUCH_ATTACHMENT}: {record['filename']} (its bytes are gone)"
        files.append((record, data))
    out.attachments = files
    return None


def with_attachments(built: OutboundReply, files: list[tuple[dict[str, Any], bytes]]) -> OutboundReply:
    """The reply with its files: records on the stored message, bytes in the command to sender."""
    if not files:
        return built
    message_id = built.message["_id"]
    records = [
        {
            "id": messages_repo.attachment_id(message_id, index),
            "filename": record["filename"],
            "content_type": record["content_type"],
            "size": record["size"],
            "sha256": record["sha256"],
            "content_id": None,
            "inline": False,
        }
        for index, (record, _data) in enumerate(files, start=1)
    ]
    outgoing = [
        OutgoingAttachment(filename=record["filename"], content_type=record["content_type"], content=data)
        for record, data in files
    ]
    event = built.event.model_copy(update={"attachments": outgoing})
    return replace(built, message={**built.message, "attachments": records}, event=event)
