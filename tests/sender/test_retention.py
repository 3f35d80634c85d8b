"""Retention rules of `sender_deliveries` and `sender_mails`: the age check and the expiries agree, and the
retention outlives the retries. Pure."""

from datetime import UTC, datetime, timedelta

import pytest

from mailstream_sender.retention import is_past_retention, mail_expires_at, minimum_retention_hours, record_expires_at

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def test_age_check_and_expiries_agree():
    assert is_past_retention(NOW - timedelta(hours=72, seconds=1), NOW, 72)
    assert not is_past_retention(NOW - timedelta(hours=71), NOW, 72)
    assert record_expires_at(NOW, 72) == NOW + timedelta(hours=72)
    # A mail stored now outlives its record even if that becomes final only at the very end of its retries.
    latest_final = NOW + timedelta(hours=minimum_retention_hours(48 * 3600))
    assert mail_expires_at(NOW, 72, 48 * 3600) == record_expires_at(latest_final, 72) == NOW + timedelta(hours=121)


@pytest.mark.parametrize(
    ("max_age_seconds", "minimum_hours"),
    [(48 * 3600, 49), (3600, 2), (0, 1), (1800, 1.5)],
)
def test_the_minimum_retention_is_the_maximum_age_plus_the_longest_retry_tier(max_age_seconds, minimum_hours):
    assert minimum_retention_hours(max_age_seconds) == minimum_hours
