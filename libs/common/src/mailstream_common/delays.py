"""Delayed delivery for arbitrary times on plain RabbitMQ: a ladder of TTL queues.

A message due in `remaining` seconds goes into the largest TTL tier that does not overshoot it (the smallest tier
when even that one does); when it dead-letters back into its queue, the consumer looks at the due time again and
either acts or sends it down the ladder once more. The broker holds every waiting message (durable queues,
persistent messages), so nothing is lost when every service restarts, and no process polls.
"""

from collections.abc import Sequence


def ladder_tier(remaining_seconds: float, tiers: Sequence[int]) -> int:
    """The largest tier that is at most `remaining_seconds`, else the smallest (late by less than it)."""
    ordered = sorted(tiers)
    fitting = [tier for tier in ordered if tier <= remaining_seconds]
    return fitting[-1] if fitting else ordered[0]


def is_due(remaining_seconds: float) -> bool:
    return remaining_seconds <= 0
