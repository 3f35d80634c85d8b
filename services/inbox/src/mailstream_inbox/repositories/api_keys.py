"""API keys: only a SHA-256 digest and a short display prefix are stored, never the key itself.

Keys carry 256 random bits, so a fast unsalted hash is enough (no password-stretching needed): the digest is an
exact-match lookup key and nobody can brute-force the preimage.
"""

import hashlib
import secrets
import uuid
from typing import Any, Literal

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from mailstream_common.contracts import utcnow

from .pages import keyset_page

API_KEYS = "api_keys"
KEY_PREFIX = "ms_"
DISPLAY_PREFIX_LENGTH = 10

Role = Literal["admin", "agent"]

INDEXES = {
    API_KEYS: [
        IndexModel([("key_hash", ASCENDING)], unique=True, name="api_keys_hash"),
        IndexModel([("account_id", ASCENDING), ("created_at", ASCENDING), ("_id", ASCENDING)], name="api_keys_list"),
    ]
}


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def looks_like_key(key: str) -> bool:
    return key.startswith(KEY_PREFIX) and 20 <= len(key) <= 200


async def create_api_key(
    db: AsyncDatabase, account_id: str, role: Role, name: str, *, created_by: str
) -> tuple[dict[str, Any], str]:
    """Store a new key; returns (stored document, the plaintext key to show once)."""
    key = generate_key()
    doc = {
        "_id": uuid.uuid4().hex,
        "account_id": account_id,
        "role": role,
        "name": name,
        "key_hash": hash_key(key),
        "prefix": key[:DISPLAY_PREFIX_LENGTH],
        "created_at": utcnow(),
        "created_by": created_by,
        "revoked": False,
        "revoked_at": None,
    }
    await db[API_KEYS].insert_one(doc)
    return doc, key


async def find_active_key(db: AsyncDatabase, key: str) -> dict[str, Any] | None:
    if not looks_like_key(key):
        return None
    return await db[API_KEYS].find_one({"key_hash": hash_key(key), "revoked": False})


async def get_api_key(db: AsyncDatabase, account_id: str, key_id: str) -> dict[str, Any] | None:
    return await db[API_KEYS].find_one({"_id": key_id, "account_id": account_id})


async def list_api_keys(
    db: AsyncDatabase, account_id: str, *, limit: int, after: dict[str, Any] | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    return await keyset_page(db[API_KEYS], {"account_id": account_id}, limit=limit, after=after)


async def revoke_api_key(db: AsyncDatabase, account_id: str, key_id: str) -> dict[str, Any] | None:
    """Mark a key revoked; returns the key (revoked) or None when the account has no such key."""
    await db[API_KEYS].update_one(
        {"_id": key_id, "account_id": account_id, "revoked": False},
        {"$set": {"revoked": True, "revoked_at": utcnow()}},
    )
    return await get_api_key(db, account_id, key_id)
