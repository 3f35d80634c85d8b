"""Sender settings: the delivery records' retention must outlive the retries."""

import pytest
from pydantic import ValidationError

from mailstream_sender.settings import SenderSettings


def test_retention_must_outlive_the_retries():
    assert SenderSettings().deliveries_retention_hours == 72
    SenderSettings(SENDER_MAX_AGE_SECONDS=3600, SENDER_DELIVERIES_RETENTION_HOURS=2)
    with pytest.raises(ValidationError, match="at least 49"):
        SenderSettings(SENDER_DELIVERIES_RETENTION_HOURS=48)
