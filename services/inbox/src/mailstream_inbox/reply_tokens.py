"""The conversation token our outbound mail carries, so a customer's answer threads even when the client drops or
rewrites In-Reply-To/References (Outlook does). Pure.

A token is 12 random base32 characters (60 bits), stored on the conversation the first time it is replied to. It
travels twice:
- in our Message-ID, `<ms-<token>.<uuid hex>@<inbound domain>>`: most clients keep it in In-Reply-To/References;
- in Reply-To, as a sub-address of the stream's forwarding address, `<forwarding local>+ms-<token>@<inbound
  domain>`: the customer's client sends the answer (and a Cc'd colleague's reply-all) there, and every client
  keeps the To it answers to. Ingest accepts `+tag` on forwarding addresses.
The token is only ever looked up among the conversations of the stream the mail arrived for, so a token (guessed,
or copied from another account's mail) can never move a mail into another stream's or account's conversation.
"""

import re
import secrets
import uuid
from collections.abc import Iterable

TOKEN_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"  # noqa: S105 - an alphabet, not a secret
TOKEN_LENGTH = 12
_TOKEN = rf"[a-z2-7]{{{TOKEN_LENGTH}}}"
_IN_MESSAGE_ID = re.compile(rf"^<ms-({_TOKEN})\.[0-9a-f]+@[^<>@\s]+>$", re.IGNORECASE)
_IN_ADDRESS = re.compile(rf"^[^@\s+]+\+ms-({_TOKEN})@[^@\s]+$", re.IGNORECASE)


def new_token() -> str:
    return "".join(secrets.choice(TOKEN_ALPHABET) for _ in range(TOKEN_LENGTH))


def message_id_with_token(token: str, inbound_domain: str) -> str:
    return f"<ms-{token}.{uuid.uuid4().hex}@{inbound_domain.lower()}>"


def reply_address(forwarding_address: str, token: str) -> str:
    local, _, domain = forwarding_address.lower().rpartition("@")
    return f"{local.split('+', 1)[0]}+ms-{token}@{domain}"


def token_of_message_id(value: str) -> str | None:
    match = _IN_MESSAGE_ID.match("".join(value.split()))
    return match.group(1).lower() if match else None


def token_of_address(value: str) -> str | None:
    match = _IN_ADDRESS.match(value.strip())
    return match.group(1).lower() if match else None


def tokens_in(*, message_ids: Iterable[str], addresses: Iterable[str]) -> list[str]:
    """Every token the mail names, addresses first (the To the customer answered is the most telling)."""
    found = [token_of_address(a) for a in addresses] + [token_of_message_id(m) for m in message_ids]
    return list(dict.fromkeys(t for t in found if t))
