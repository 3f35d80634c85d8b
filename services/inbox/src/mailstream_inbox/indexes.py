"""Every index of the inbox collections, merged from the repositories that own the queries they serve.

Repositories declare `INDEXES = {collection: [IndexModel, ...]}` next to their queries; this module gathers them
(the conversations half's too, when present) so start-up creates them all in one place.
"""

import importlib
import logging
from collections.abc import Mapping, Sequence

from pymongo import IndexModel

from mailstream_common import mongo

log = logging.getLogger(__name__)

# Repository modules that declare INDEXES. Missing optional modules are skipped (see `_optional`).
_REPOSITORY_MODULES = (
    "mailstream_inbox.repositories.accounts",
    "mailstream_inbox.repositories.api_keys",
    "mailstream_inbox.repositories.topics",
    "mailstream_inbox.repositories.streams",
    "mailstream_inbox.repositories.conversations",
    "mailstream_inbox.repositories.messages",
    "mailstream_inbox.repositories.blobs",
    "mailstream_inbox.repositories.attachments",
    "mailstream_inbox.repositories.canned_responses",
    "mailstream_inbox.repositories.templates",
    "mailstream_inbox.repositories.outbound",
    "mailstream_inbox.repositories.live_events",
)


def _import_optional(name: str):
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:  # the module exists but one of its imports is missing: that is a real error
            raise
        return None


def merge(*specs: Mapping[str, Sequence[IndexModel]]) -> dict[str, list[IndexModel]]:
    merged: dict[str, list[IndexModel]] = {}
    for spec in specs:
        for collection, models in spec.items():
            merged.setdefault(collection, []).extend(models)
    return merged


def collect_indexes() -> dict[str, list[IndexModel]]:
    specs = []
    for name in _REPOSITORY_MODULES:
        module = _import_optional(name)
        if module is not None and hasattr(module, "INDEXES"):
            specs.append(module.INDEXES)
    return merge(*specs)


async def ensure_indexes(db, indexes: Mapping[str, Sequence[IndexModel]] | None = None) -> None:
    """Create every inbox index (idempotent: each replica and the CLI may run it)."""
    await mongo.ensure_indexes(db, indexes if indexes is not None else collect_indexes())
