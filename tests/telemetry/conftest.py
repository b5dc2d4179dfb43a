"""Helpers for the telemetry tests: times inside the retention window, and readings."""

from datetime import timedelta

import pytest
from django.utils import timezone

from telemetry.services import Reading


@pytest.fixture
def two_days_ago():
    """The start of the UTC day two days ago: readings from there on are past, and retained."""
    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=2)


def minutely(kit_id: str, start, count: int, **fixed) -> list[Reading]:
    """`count` readings one minute apart from `start`: temperature 20.0, 20.1, ... unless fixed."""
    readings = []
    for i in range(count):
        values = {"temperature": round(20 + i / 10, 2), "humidity": 50.0}
        values.update(fixed)
        readings.append(Reading(kit_id, start + timedelta(minutes=i), values))
    return readings
