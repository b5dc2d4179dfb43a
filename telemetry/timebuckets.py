"""Time as telemetry stores it: UTC milliseconds, day partitions, hour and day buckets, and the
count/sum/min/max statistics of a bucket. Pure functions and values; no I/O."""

import copy
import functools
import json
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

SECOND_MS = 1_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000


class Resolution(StrEnum):
    RAW = "raw"
    HOUR = "1h"
    DAY = "1d"


BUCKET_MS = {Resolution.HOUR: HOUR_MS, Resolution.DAY: DAY_MS}


def to_ms(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("Telemetry times must be timezone-aware (UTC).")
    return int(round(moment.timestamp() * 1000))


def from_ms(ms: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)


def timestamp_text(ms: int) -> str:
    """ISO 8601 with `Z`, as on the wire: `2026-11-28T10:00:00Z`, or `...:00.250Z` when the
    reading has milliseconds."""
    seconds, millis = divmod(ms, SECOND_MS)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{text}.{millis:03d}Z" if millis else f"{text}Z"


def day_start(ms: int) -> int:
    return ms - ms % DAY_MS


def bucket_start(resolution: Resolution, ms: int) -> int:
    """The start of the hour or UTC day `ms` falls in."""
    return ms - ms % BUCKET_MS[resolution]


def day_name(ms: int) -> str:
    """The UTC day of `ms`, as in raw partition keys: `2026-11-28`."""
    return from_ms(ms).strftime("%Y-%m-%d")


def days_between(start_ms: int, end_ms: int) -> list[int]:
    """The starts of the UTC days that overlap [start_ms, end_ms)."""
    if end_ms <= start_ms:
        return []
    return list(range(day_start(start_ms), end_ms, DAY_MS))


# Rollups are stored packed: the 24 hourly buckets of one kit's UTC day in one item
# ("1h#2026-11-28"), the daily buckets of one kit's UTC month in another ("1d#2026-11"),
# so a year of daily points is 13 reads, not 366.
def period_of(resolution: Resolution, ms: int) -> tuple[str, int]:
    """The rollup item (period name) that holds the bucket of `ms`, and the bucket's slot in it:
    the hour of the day for 1h, the day of the month for 1d."""
    moment = from_ms(ms)
    if resolution == Resolution.HOUR:
        return f"1h#{moment:%Y-%m-%d}", moment.hour
    return f"1d#{moment:%Y-%m}", moment.day


def slot_start(period: str, slot: int) -> int:
    """The start (ms) of bucket `slot` of the rollup item `period`."""
    first, bucket_ms = _period_start(period)
    return first + (slot - int(bucket_ms == DAY_MS)) * bucket_ms


@functools.lru_cache(maxsize=4096)
def _period_start(period: str) -> tuple[int, int]:
    """The start (ms) of the period's slot numbering, and its bucket length (ms). Cached:
    strptime is slow, and a year of daily points would call it for every point."""
    kind, _, when = period.partition("#")
    if kind == "1h":
        return to_ms(datetime.strptime(when, "%Y-%m-%d").replace(tzinfo=UTC)), HOUR_MS
    return to_ms(datetime.strptime(when, "%Y-%m").replace(tzinfo=UTC)), DAY_MS


def periods_between(resolution: Resolution, start_ms: int, end_ms: int) -> list[str]:
    """The rollup items that hold the buckets overlapping [start_ms, end_ms), oldest first."""
    if end_ms <= start_ms:
        return []
    if resolution == Resolution.HOUR:
        return [period_of(resolution, day)[0] for day in days_between(start_ms, end_ms)]
    first, last = from_ms(start_ms), from_ms(end_ms - 1)
    months = (last.year - first.year) * 12 + last.month - first.month
    return [
        f"1d#{first.year + (first.month - 1 + i) // 12:04d}-{(first.month - 1 + i) % 12 + 1:02d}"
        for i in range(months + 1)
    ]


@dataclass
class Stats:
    """What a rollup keeps of a sensor's readings in one bucket."""

    count: int
    total: float
    minimum: float
    maximum: float

    @classmethod
    def of(cls, value: float) -> "Stats":
        return cls(1, float(value), float(value), float(value))

    def add(self, value: float) -> None:
        self.count += 1
        self.total += value
        self.minimum = min(self.minimum, value)
        self.maximum = max(self.maximum, value)

    def merge(self, other: "Stats") -> None:
        self.count += other.count
        self.total += other.total
        self.minimum = min(self.minimum, other.minimum)
        self.maximum = max(self.maximum, other.maximum)

    @property
    def mean(self) -> float:
        return self.total / self.count


def stats_of(values: list[float]) -> Stats:
    stats = Stats.of(values[0])
    for value in values[1:]:
        stats.add(value)
    return stats


def slots_decode(text: str) -> dict[int, Stats]:
    """A sensor's buckets in one rollup item, from their stored form `{"13": [n, sum, min, max]}`."""
    return {
        int(slot): Stats(int(n), float(total), float(low), float(high))
        for slot, (n, total, low, high) in json.loads(text).items()
    }


def slots_decode_raw(text: str) -> dict[str, list]:
    """Like slots_decode, without building Stats: {"13": [n, sum, min, max]}, for reading fast."""
    return json.loads(text)


def slots_encode(slots: dict[int, Stats]) -> str:
    # Sums are kept to 12 significant digits: the mean stays exact far beyond any sensor's
    # precision, and the packed item stays small (its size is what a write costs).
    return json.dumps(
        {str(slot): [s.count, float(f"{s.total:.12g}"), s.minimum, s.maximum] for slot, s in sorted(slots.items())},
        separators=(",", ":"),
    )


def slots_replace(stored: dict[str, str], replaced: dict[int, dict[str, Stats]]) -> dict[str, str]:
    """A rollup item's encoded buckets ({sensor: slots_encode(...)}) with the slots of `replaced`
    put in place of what they held: a sensor absent from a replaced slot loses that slot, and a
    sensor left with no slot at all is dropped."""
    slots = {sensor: slots_decode(text) for sensor, text in stored.items()}
    for slot, by_sensor in replaced.items():
        for sensor_slots in slots.values():
            sensor_slots.pop(slot, None)
        for sensor, stats in by_sensor.items():
            slots.setdefault(sensor, {})[slot] = copy.copy(stats)
    return {sensor: slots_encode(sensor_slots) for sensor, sensor_slots in sorted(slots.items()) if sensor_slots}


def is_finite_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
