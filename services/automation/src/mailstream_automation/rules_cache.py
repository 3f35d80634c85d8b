"""A per-process cache of each account's enabled rules, valid only for the rules revision it was loaded under.

Every rule write through the API sets the account's revision document (`automation_rule_revisions`, `_id` = account
id) to a fresh random token *after* the write. A message reads that token first (one `_id` read), then takes the
cached rules only if they were loaded under the same token, and otherwise loads the rules and caches them under the
token it read *before* loading. So a write that finished before a message is handled has changed the token that
message reads, on every replica: it never sees rules older than that write.

A random token rather than a counter: it never repeats, even if the revision document is deleted or restored.
"""

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from .rules import StoredRule


@dataclass(frozen=True)
class _Entry:
    revision: str | None
    rules: tuple[StoredRule, ...]


class RulesCache:
    """At most `max_accounts` accounts, least recently used out first; `max_accounts=0` caches nothing."""

    def __init__(self, max_accounts: int) -> None:
        self.max_accounts = max_accounts
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def lookup(self, account_id: str, revision: str | None) -> tuple[StoredRule, ...] | None:
        """The cached rules when they were loaded under `revision`; None means: load them."""
        entry = self._entries.get(account_id)
        if entry is None or entry.revision != revision:
            return None
        self._entries.move_to_end(account_id)
        return entry.rules

    def store(self, account_id: str, revision: str | None, rules: Sequence[StoredRule]) -> None:
        if self.max_accounts <= 0:
            return
        self._entries[account_id] = _Entry(revision, tuple(rules))
        self._entries.move_to_end(account_id)
        while len(self._entries) > self.max_accounts:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
