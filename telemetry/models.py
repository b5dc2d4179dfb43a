"""Telemetry's models: the PynamoDB models of the two DynamoDB tables, and (imported here so
Django finds them) the relational ones. Everything that talks to DynamoDB is in dynamodb.py.

- `readings`: one item per kit message (every sensor's value at one instant), partitioned by
  kit and UTC day so no partition grows without bound, sorted by time; a TTL attribute lets
  DynamoDB drop raw readings after the retention period.
- `rollups`: count, sum, min and max per kit, sensor and bucket, packed per period: the 24 hourly
  buckets of a kit's UTC day in one item, the daily buckets of a kit's UTC month in another.

Each kit's latest values and its rollup marks live in Django's database (kit_state.py); refused
kit messages too (dead_letters.py).
"""

from pynamodb.attributes import MapAttribute, NumberAttribute, TTLAttribute, UnicodeAttribute, VersionAttribute
from pynamodb.models import Model

from .dead_letters import DeadLetter  # noqa: F401 (Django finds an app's models here)
from .kit_state import LatestValue, RollupMark  # noqa: F401


class RawReading(Model):
    """One kit message: every sensor's value at one instant. Writing the same kit and timestamp
    again overwrites the item, so a redelivered message never becomes a second reading."""

    class Meta:
        table_name = "telemetry-readings"

    # Short stored names keep items small: an item's size is what its write costs.
    kit_day = UnicodeAttribute(hash_key=True, attr_name="kd")  # "<kit id>#2026-11-28"
    timestamp_ms = NumberAttribute(range_key=True, attr_name="t")
    values = MapAttribute(attr_name="v")  # sensor key -> number
    expires_at = TTLAttribute(attr_name="x")


class RollupPeriod(Model):
    """One kit's rollup buckets of one period: `1h#2026-11-28` holds the day's hours,
    `1d#2026-11` the month's days. `sensors` maps a sensor key to its buckets, encoded by
    `timebuckets.slots_encode`. `version` makes concurrent writers retry instead of losing updates."""

    class Meta:
        table_name = "telemetry-rollups"

    kit_id = UnicodeAttribute(hash_key=True, attr_name="k")
    period = UnicodeAttribute(range_key=True, attr_name="p")
    sensors = MapAttribute(attr_name="s", default=dict)
    version = VersionAttribute(attr_name="ver")


MODELS = (RawReading, RollupPeriod)
