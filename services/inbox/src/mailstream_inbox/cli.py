"""`mailstream`: what an operator needs from a shell, straight against the database (no gateway required).

Every command prints JSON on stdout (one object, or one object per line for lists) so it can be piped into jq;
diagnostics go to stderr. Configuration is the services' own: MONGODB_URI, INBOX_MONGODB_DATABASE (else
MONGODB_DATABASE), MAILSTREAM_INBOUND_DOMAIN, and AMQP_URL for `projections resync` and `dead-letters requeue`.
"""

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from tqdm import tqdm

from mailstream_common import mongo, topology
from mailstream_common.broker import Broker
from mailstream_common.contracts import ProjectionResyncRequested, utcnow

from . import dead_letters, history_import
from .repositories import accounts as accounts_repo
from .repositories import api_keys as api_keys_repo
from .repositories import dead_letters as dead_letters_repo
from .repositories import ensure_indexes
from .repositories import streams as streams_repo
from .repositories import topics as topics_repo
from .settings import InboxSettings
from .use_cases import dead_letters as dead_letters_use_case

Command = Callable[[AsyncDatabase, argparse.Namespace, InboxSettings], Awaitable[int]]


class CliError(Exception):
    """A user error: printed to stderr, exit status 1."""


def _emit(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, default=_json_default, ensure_ascii=False) + "\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


async def _require_account(db: AsyncDatabase, account_id: str) -> dict:
    account = await accounts_repo.get_account(db, account_id)
    if account is None:
        raise CliError(f"no account {account_id!r}")
    return account


async def _all_pages(fetch) -> list[dict]:
    items: list[dict] = []
    after = None
    while True:
        page, after = await fetch(after)
        items.extend(page)
        if after is None:
            return items


async def accounts_create(db: AsyncDatabase, args: argparse.Namespace, settings: InboxSettings) -> int:
    name = args.name.strip()
    if not name or any(c in name for c in "\r\n\x00"):
        raise CliError("--name must be a non-empty single line")
    account = await accounts_repo.create_account(db, name)
    _key_doc, key = await api_keys_repo.create_api_key(
        db, account["_id"], "admin", "initial admin key", created_by="cli"
    )
    _emit({"account_id": account["_id"], "api_key": key})
    return 0


async def accounts_list(db: AsyncDatabase, args: argparse.Namespace, settings: InboxSettings) -> int:
    for account in await _all_pages(lambda after: accounts_repo.list_accounts(db, limit=200, after=after)):
        _emit({"account_id": account["_id"], "name": account["name"], "created_at": account["created_at"]})
    return 0


async def accounts_set_attachment_limit(db: AsyncDatabase, args: argparse.Namespace, settings: InboxSettings) -> int:
    if args.max_bytes < 0:
        raise CliError("--max-bytes must be 0 (the service default) or more")
    account = await accounts_repo.set_attachment_max_bytes(db, args.account, args.max_bytes or None)
    if account is None:
        raise CliError(f"no account {args.account!r}")
    _emit(
        {
            "account_id": account["_id"],
            "attachment_max_bytes": account.get("attachment_max_bytes") or settings.attachment_max_bytes,
            "own_limit": bool(account.get("attachment_max_bytes")),
        }
    )
    return 0


def _key_summary(doc: dict) -> dict:
    return {
        "id": doc["_id"],
        "account_id": doc["account_id"],
        "name": doc["name"],
        "role": doc["role"],
        "prefix": doc["prefix"],
        "created_at": doc["created_at"],
        "revoked": doc.get("revoked", False),
    }


async def api_keys_create(db: AsyncDatabase, args: argparse.Namespace, settings: InboxSettings) -> int:
    await _require_account(db, args.account)
    doc, key = await api_keys_repo.create_api_key(db, args.account, args.role, args.name, created_by="cli")
    _emit({**_key_summary(doc), "api_key": key})
    return 0


async def api_keys_list(db: AsyncDatabase, args: argparse.Namespace, settings: InboxSettings) -> int:
    await _require_account(db, args.account)
    for doc in await _all_pages(lambda after: api_keys_repo.list_api_keys(db, args.account, limit=200, after=after)):
        _emit(_key_summary(doc))
    return 0


async def api_keys_revoke(db: AsyncDatabase, args: argparse.Namespace, settings: InboxSettings) -> int:
    doc = await api_keys_repo.revoke_api_key(db, args.account, args.key)
    if doc is None:
        raise CliError(f"account {args.account!r} has no key {args.key!r}")
    _emit(_key_summary(doc))
    return 0


async def topics_list(db: AsyncDatabase, args: argparse.Namespace, settings: InboxSettings) -> int:
    await _require_account(db, args.account)
    for doc in await _all_pages(lambda after: topics_repo.list_topics(db, args.account, limit=200, after=after)):
        _emit({"id": doc["_id"], "name": doc["name"], "created_at": doc["created_at"]})
    return 0


async def streams_list(db: AsyncDatabase, args: argparse.Namespace, settings: InboxSettings) -> int:
    await _require_account(db, args.account)
    docs = await _all_pages(lambda after: streams_repo.list_streams(db, args.account, limit=200, after=after))
    for doc in docs:
        _emit(
            {
                "id": doc["_id"],
                "topic_id": doc["topic_id"],
                "address": doc["address"],
                "forwarding_address": doc["forwarding_address"],
                "allow_agent_send": doc["allow_agent_send"],
                "status": doc.get("status"),
                "forwarding_verified": bool(doc.get("forwarding_verified")),
                "forwarding_method": doc.get("forwarding_method"),
            }
        )
    return 0


async def projections_resync(db: AsyncDatabase, args: argparse.Namespace, settings: InboxSettings) -> int:
    """Ask (over the broker) for every stream, topic and canned response to be republished as a snapshot: the
    other services' projections catch up with whatever they missed. Inbox's workers answer it."""
    broker = Broker(settings.amqp_url.get_secret_value(), service="mailstream-cli")
    await broker.connect()
    try:
        await broker.declare(topology.INBOX_RESYNC)
        request = ProjectionResyncRequested(entities=list(args.entities), requested_by="operator (mailstream cli)")
        await broker.publish(request)
    finally:
        await broker.close(grace=1)
    _emit({"requested": request.entities, "event_id": request.event_id})
    return 0


async def import_history(db: AsyncDatabase, args: argparse.Namespace, settings: InboxSettings) -> int:
    """Bring a mailbox's history into a stream (see `history_import`); a progress bar on stderr, a summary on
    stdout. Needs AMQP_URL: each mail takes the live path from ingest's analysis on."""
    stream = await db[streams_repo.STREAMS].find_one({"_id": args.stream, "deleted": False})
    if stream is None:
        raise CliError(f"no stream {args.stream!r}")
    source = Path(args.source)
    try:
        total = history_import.count_mails(source)
    except (OSError, history_import.HistoryImportError) as exc:
        raise CliError(str(exc)) from exc
    broker = Broker(settings.amqp_url.get_secret_value(), service="mailstream-cli")
    await broker.connect()
    try:
        await broker.declare(topology.INGEST_ANALYSE)
        with tqdm(total=total, unit="mail", file=sys.stderr, disable=args.quiet) as bar:
            counts = await history_import.import_mails(
                db, broker, stream, history_import.read_mails(source), now=utcnow(), on_progress=lambda _: bar.update()
            )
    finally:
        await broker.close(grace=1)
    _emit({"stream_id": stream["_id"], "total": total, **counts})
    return 0


def _letter_summary(doc: dict) -> dict:
    fields = ("queue", "state", "reason", "attempts", "event", "origin_exchange", "origin_routing_key")
    more = ("message_id", "correlation_id", "account_id", "dead_at", "requeues", "size")
    return {"id": doc["_id"], **{name: doc.get(name) for name in (*fields, *more)}}


async def dead_letters_list(db: AsyncDatabase, args: argparse.Namespace, settings: InboxSettings) -> int:
    """Every account's letters (the operator's view; an account's admins use /v1/dead-letters)."""
    letters = await _all_pages(
        lambda after: dead_letters_repo.list_letters(
            db, account_id=args.account, state=args.state, queue=args.queue, limit=200, after=after
        )
    )
    for doc in letters:
        _emit(_letter_summary(doc))
    return 0


async def dead_letters_show(db: AsyncDatabase, args: argparse.Namespace, settings: InboxSettings) -> int:
    doc = await dead_letters_repo.get(db, args.id, account_id=None)
    if doc is None:
        raise CliError(f"no dead letter {args.id!r}")
    shown = {
        **_letter_summary(doc),
        "account_ids": doc.get("account_ids", []),
        "headers": dead_letters.shown_headers(doc.get("headers", [])),
        "preview": doc.get("preview"),
        "history": doc.get("history", []),
    }
    _emit(shown)
    return 0


async def dead_letters_requeue(db: AsyncDatabase, args: argparse.Namespace, settings: InboxSettings) -> int:
    """Put one letter (`--id`) or every dead letter of a queue (`--queue`) back on its queue."""
    broker = Broker(settings.amqp_url.get_secret_value(), service="mailstream-cli")
    await broker.connect()
    try:
        if args.id:
            outcomes = [await dead_letters_use_case.requeue(db, broker, args.id, account_id=None, by="cli")]
        else:
            outcomes = await dead_letters_use_case.requeue_queue(db, broker, args.queue, account_id=None, by="cli")
    finally:
        await broker.close(grace=1)
    for outcome in outcomes:
        _emit({"id": outcome.letter_id, "outcome": outcome.outcome})
    return 0 if all(o.outcome == "requeued" for o in outcomes) else 1


async def dead_letters_discard(db: AsyncDatabase, args: argparse.Namespace, settings: InboxSettings) -> int:
    reason = args.reason.strip()
    if not reason or any(c in reason for c in "\r\n\x00"):
        raise CliError("--reason must be a non-empty single line")
    result = await dead_letters_use_case.discard(db, args.id, account_id=None, reason=reason, by="cli")
    if isinstance(result, str):
        raise CliError(f"dead letter {args.id!r}: {result.replace('_', ' ')}")
    _emit(_letter_summary(result))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mailstream",
        description="Mailstream administration against the configured database (MONGODB_URI, MONGODB_DATABASE).",
    )
    groups = parser.add_subparsers(
        dest="group", required=True, metavar="{accounts,api-keys,topics,streams,projections,import}"
    )

    accounts = groups.add_parser("accounts", help="create and list accounts")
    accounts_cmds = accounts.add_subparsers(dest="command", required=True)
    create = accounts_cmds.add_parser("create", help='create an account; prints {"account_id", "api_key"} (admin key)')
    create.add_argument("--name", required=True)
    create.set_defaults(run=accounts_create)
    accounts_cmds.add_parser("list", help="list accounts (one JSON object per line)").set_defaults(run=accounts_list)
    limit = accounts_cmds.add_parser(
        "set-attachment-limit",
        help="largest attachment the account may upload or receive (larger inbound ones are listed as omitted)",
    )
    limit.add_argument("--account", required=True)
    limit.add_argument(
        "--max-bytes", type=int, required=True, help="0: the service default (INBOX_ATTACHMENT_MAX_BYTES)"
    )
    limit.set_defaults(run=accounts_set_attachment_limit)

    keys = groups.add_parser("api-keys", help="create, list and revoke an account's API keys")
    keys_cmds = keys.add_subparsers(dest="command", required=True)
    key_create = keys_cmds.add_parser("create", help="create a key; the key is printed once")
    key_create.add_argument("--account", required=True, help="account id")
    key_create.add_argument("--role", choices=("admin", "agent"), required=True)
    key_create.add_argument("--name", required=True, help="who or what uses the key")
    key_create.set_defaults(run=api_keys_create)
    key_list = keys_cmds.add_parser("list", help="list an account's keys (never the keys themselves)")
    key_list.add_argument("--account", required=True)
    key_list.set_defaults(run=api_keys_list)
    key_revoke = keys_cmds.add_parser(
        "revoke", help="revoke a key by id (gateways notice within INBOX_API_KEY_CACHE_SECONDS, 10 s by default)"
    )
    key_revoke.add_argument("--account", required=True)
    key_revoke.add_argument("--key", required=True, help="key id (from 'api-keys list')")
    key_revoke.set_defaults(run=api_keys_revoke)

    topics = groups.add_parser("topics", help="list an account's topics")
    topics_cmds = topics.add_subparsers(dest="command", required=True)
    topic_list = topics_cmds.add_parser("list")
    topic_list.add_argument("--account", required=True)
    topic_list.set_defaults(run=topics_list)

    streams = groups.add_parser("streams", help="list an account's streams and their forwarding addresses")
    streams_cmds = streams.add_subparsers(dest="command", required=True)
    stream_list = streams_cmds.add_parser("list")
    stream_list.add_argument("--account", required=True)
    stream_list.set_defaults(run=streams_list)

    projections = groups.add_parser("projections", help="other services' copies of streams, topics, canned responses")
    projections_cmds = projections.add_subparsers(dest="command", required=True)
    resync = projections_cmds.add_parser("resync", help="have inbox republish them all (needs AMQP_URL)")
    resync.add_argument(
        "--entities", nargs="+", choices=("stream", "topic", "canned_response"),
        default=["stream", "topic", "canned_response"],
    )  # fmt: skip
    resync.set_defaults(run=projections_resync)

    dead = groups.add_parser("dead-letters", help="messages a consumer gave up on: list, show, requeue, discard")
    dead_cmds = dead.add_subparsers(dest="command", required=True)
    dead_list = dead_cmds.add_parser("list", help="one JSON object per letter, newest first")
    dead_list.add_argument("--queue", help="only this queue's letters")
    dead_list.add_argument("--account", help="only this account's letters")
    dead_list.add_argument("--state", default="dead", choices=dead_letters.STATES)
    dead_list.set_defaults(run=dead_letters_list)
    dead_show = dead_cmds.add_parser("show", help="one letter: headers, a safe preview of the body, its history")
    dead_show.add_argument("--id", required=True)
    dead_show.set_defaults(run=dead_letters_show)
    dead_requeue = dead_cmds.add_parser("requeue", help="put letters back on their queue (needs AMQP_URL)")
    which = dead_requeue.add_mutually_exclusive_group(required=True)
    which.add_argument("--id", help="one letter")
    which.add_argument("--queue", help="every dead letter of this queue")
    dead_requeue.set_defaults(run=dead_letters_requeue)
    dead_discard = dead_cmds.add_parser("discard", help="drop a letter, recording why")
    dead_discard.add_argument("--id", required=True)
    dead_discard.add_argument("--reason", required=True)
    dead_discard.set_defaults(run=dead_letters_discard)

    importer = groups.add_parser(
        "import", help="bring a mailbox's history into a stream, quietly (no automation, no auto-reply)"
    )
    importer.add_argument("--stream", required=True, help="stream id")
    importer.add_argument("source", help="an mbox file or a directory of .eml files")
    importer.add_argument("--quiet", action="store_true", help="no progress bar")
    importer.set_defaults(run=import_history)
    return parser


async def _run(args: argparse.Namespace, settings: InboxSettings) -> int:
    client = mongo.create_client(settings.mongodb_uri.get_secret_value(), app_name="mailstream-cli", settings=settings)
    try:
        db = client[settings.mongodb_database]
        await ensure_indexes(db)
        return await args.run(db, args, settings)
    finally:
        await client.close()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = InboxSettings()
    try:
        return asyncio.run(_run(args, settings))
    except CliError as exc:
        print(f"mailstream: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # e.g. the database is unreachable: one clear line, not a traceback
        print(f"mailstream: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
