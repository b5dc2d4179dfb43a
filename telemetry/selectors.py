"""Every telemetry read. Each takes a kit the caller may see: get it from
`kits.selectors.kit_get_visible` first, so DynamoDB is never asked about a kit the caller may not see."""

import copy
import math
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

from django.conf import settings

from kits.models import Kit

from . import dynamodb, models
from .exceptions import TelemetryQueryInvalid
from .kit_state import LatestValue, RollupMark
from .timebuckets import (
    BUCKET_MS,
    DAY_MS,
    HOUR_MS,
    Resolution,
    Stats,
    bucket_start,
    day_start,
    period_of,
    periods_between,
    slot_start,
    slots_decode,
    slots_decode_raw,
    slots_replace,
    stats_of,
)

LAST_MAX = 1_000
AUTO_MAX_POINTS = 2_000  # "about 2,000 points per series" for resolution=auto
MAX_ROLLUP_POINTS = 10_000  # per series; beyond, ask for a coarser resolution
MAX_RANGE_DAYS = 5 * 366 + 1  # what 1d can show within MAX_ROLLUP_POINTS, with room to spare
RAW_PAGE_SIZE_DEFAULT = 2_000
RAW_PAGE_SIZE_MAX = 10_000

# Decoded rollup items: {period: {sensor: {slot: [count, sum, min, max]}}}.
Rollups = dict[str, dict[str, dict[str, list]]]


class Point(NamedTuple):  # a NamedTuple: a year of daily points makes thousands of them
    timestamp_ms: int
    value: float  # the mean, for rollup points
    minimum: float | None = None
    maximum: float | None = None
    count: int | None = None


@dataclass(frozen=True)
class DataPage:
    resolution: Resolution
    series: dict[str, list[Point]]  # sensor key -> points, oldest first
    next_after_ms: int | None = None  # raw pages: the next page holds readings after this time


def readings_latest(*, kit: Kit, sensors: list[str] | None = None, last: int = 1) -> dict[str, list[Point]]:
    """The latest `last` points of each sensor (or of `sensors`), oldest first. The latest one
    per sensor is one database query, whatever the kit's history; never behind the readings
    stored (they are written with them)."""
    if not 1 <= last <= LAST_MAX:
        raise TelemetryQueryInvalid({"last": [f"Give a number from 1 to {LAST_MAX}."]})
    latest = latest_values(kit_ids=[kit.id]).get(kit.id)
    if not latest:
        return {}
    wanted = sorted(sensors if sensors is not None else latest)
    if last == 1:
        return {sensor: [latest[sensor]] for sensor in wanted if sensor in latest}
    newest = max(point.timestamp_ms for point in latest.values())
    oldest = newest - settings.TELEMETRY_RAW_RETENTION_DAYS * DAY_MS
    found: dict[str, list[Point]] = {sensor: [] for sensor in wanted}
    for day in reversed(list(_days_with_data(kit.id, oldest, newest + 1, wanted))):
        for reading in dynamodb.raw_day_query(kit.id, day, day, newest + 1, newest_first=True, page_size=last):
            for sensor in wanted:
                if sensor in reading.values and len(found[sensor]) < last:
                    found[sensor].append(Point(reading.timestamp_ms, reading.values[sensor]))
            if all(len(points) >= last for points in found.values()):
                break
        if all(len(points) >= last for points in found.values()):
            break
    return {sensor: list(reversed(points)) for sensor, points in found.items() if points}


def latest_values(*, kit_ids: Iterable[str]) -> dict[str, dict[str, Point]]:
    """Each kit's latest point of each sensor, {kit id: {sensor: point}}, for many kits in one
    query (the dashboard's kit list). Take the kit ids from a selector that scopes them to the
    caller."""
    found: dict[str, dict[str, Point]] = defaultdict(dict)
    rows = LatestValue.objects.filter(kit_id__in=list(kit_ids)).values_list("kit_id", "sensor", "timestamp_ms", "value")
    for kit_id, sensor, timestamp_ms, value in rows:
        found[kit_id][sensor] = Point(timestamp_ms, value)
    return dict(found)


def rollup_marks_pending(*, kit_ids: Iterable[str]) -> int:
    """How many rollup buckets of these kits wait for a refresh."""
    return RollupMark.objects.filter(kit_id__in=list(kit_ids)).count()


def resolution_auto(*, kit: Kit, start_ms: int, end_ms: int, sensors: list[str] | None = None) -> Resolution:
    """The finest resolution that gives at most about AUTO_MAX_POINTS points per series.
    Raw counts are estimated from the daily rollups of the days the range touches."""
    return _resolution_auto(_rollup_items(kit.id, Resolution.DAY, start_ms, end_ms), start_ms, end_ms, sensors)


def _resolution_auto(daily: Rollups, start_ms: int, end_ms: int, sensors) -> Resolution:
    per_sensor: dict[str, int] = defaultdict(int)
    for counts in _day_counts(daily, start_ms, end_ms, sensors).values():
        for sensor, count in counts.items():
            per_sensor[sensor] += count
    if max(per_sensor.values(), default=0) <= AUTO_MAX_POINTS:
        return Resolution.RAW
    if math.ceil((end_ms - bucket_start(Resolution.HOUR, start_ms)) / HOUR_MS) <= AUTO_MAX_POINTS:
        return Resolution.HOUR
    return Resolution.DAY


def readings_history(
    *,
    kit: Kit,
    start_ms: int,
    end_ms: int,
    resolution: Resolution | str = "auto",
    sensors: list[str] | None = None,
    page_size: int = RAW_PAGE_SIZE_DEFAULT,
    after_ms: int | None = None,
) -> DataPage:
    """The history in [start_ms, end_ms) at `resolution`, or with "auto" at the finest one that
    gives at most about AUTO_MAX_POINTS points per series (see readings_range)."""
    range_problem(start_ms, end_ms, Resolution.RAW)
    if resolution == "auto":
        # The daily rollups both estimate the raw counts and, for long ranges, are the answer.
        daily = _rollup_items(kit.id, Resolution.DAY, start_ms, end_ms)
        resolution = _resolution_auto(daily, start_ms, end_ms, sensors)
        if resolution == Resolution.DAY:
            return DataPage(resolution, _rollup_points(daily, Resolution.DAY, start_ms, end_ms, sensors))
    return readings_range(
        kit=kit,
        start_ms=start_ms,
        end_ms=end_ms,
        resolution=Resolution(resolution),
        sensors=sensors,
        page_size=page_size,
        after_ms=after_ms,
    )


def readings_range(
    *,
    kit: Kit,
    start_ms: int,
    end_ms: int,
    resolution: Resolution,
    sensors: list[str] | None = None,
    page_size: int = RAW_PAGE_SIZE_DEFAULT,
    after_ms: int | None = None,
) -> DataPage:
    """The history in [start_ms, end_ms). Raw readings come a page at a time: at most `page_size`
    instants from after `after_ms`, and `next_after_ms` says where the next page starts. Rollup
    points (1h, 1d) carry the bucket's mean as value, with min, max and count, and come whole."""
    range_problem(start_ms, end_ms, resolution)
    if resolution != Resolution.RAW:
        return DataPage(
            resolution, rollups_range(kit=kit, start_ms=start_ms, end_ms=end_ms, resolution=resolution, sensors=sensors)
        )
    if not 1 <= page_size <= RAW_PAGE_SIZE_MAX:
        raise TelemetryQueryInvalid({"page_size": [f"Give a number from 1 to {RAW_PAGE_SIZE_MAX}."]})
    series: dict[str, list[Point]] = defaultdict(list)
    last_ms = None
    readings = _raw_readings(kit.id, start_ms, end_ms, sensors, after_ms=after_ms, page_size=page_size + 1)
    for taken, reading in enumerate(readings):
        if taken == page_size:  # one more exists: the next page starts after the last one kept
            return DataPage(resolution, dict(series), next_after_ms=last_ms)
        for sensor, value in reading.values.items():
            series[sensor].append(Point(reading.timestamp_ms, value))
        last_ms = reading.timestamp_ms
    return DataPage(resolution, dict(series))


def rollups_range(
    *, kit: Kit, start_ms: int, end_ms: int, resolution: Resolution, sensors: list[str] | None = None
) -> dict[str, list[Point]]:
    """Hourly or daily points whose bucket overlaps [start_ms, end_ms)."""
    items = _rollup_items(kit.id, resolution, start_ms, end_ms)
    return _rollup_points(items, resolution, start_ms, end_ms, sensors)


def _rollup_items(kit_id: str, resolution: Resolution, start_ms: int, end_ms: int) -> Rollups:
    """The buckets of the rollup items that overlap [start_ms, end_ms), oldest item first, as
    {period: {sensor: {slot: [count, sum, min, max]}}}: one BatchGetItem, whatever the history.

    Rollups trail the raw readings by a few minutes (services.rollups_refresh): the buckets
    still marked for a refresh are counted here and now, an hour from its raw readings and a
    day from its hours, so a chart is never behind the newest reading."""
    periods = periods_between(resolution, bucket_start(resolution, start_ms), end_ms)
    items = dynamodb.rollup_periods_get((kit_id, period) for period in periods)
    decoded: Rollups = {}
    for period in periods:
        item = items.get((kit_id, period))
        if item is not None:
            sensors = dynamodb.as_plain_dict(item.sensors)
            decoded[period] = {sensor: slots_decode_raw(text) for sensor, text in sensors.items()}
    kind = RollupMark.HOUR if resolution == Resolution.HOUR else RollupMark.DAY
    pending = _pending_buckets(kit_id, kind, bucket_start(resolution, start_ms), end_ms)
    if resolution == Resolution.HOUR:
        fresh = hours_stats(kit_id, pending)
    else:
        fresh = {day: _day_stats_fresh(kit_id, day) for day in pending}
    for bucket, stats in fresh.items():
        period, slot = period_of(resolution, bucket)
        _slot_replace(decoded.setdefault(period, {}), str(slot), stats)
    return {period: decoded[period] for period in periods if decoded.get(period)}


def _pending_buckets(kit_id: str, kind: str, start_ms: int, end_ms: int) -> list[int]:
    return list(
        RollupMark.objects.filter(kit_id=kit_id, kind=kind, bucket_ms__gte=start_ms, bucket_ms__lt=end_ms)
        .order_by("bucket_ms")
        .values_list("bucket_ms", flat=True)
    )


def _day_stats_fresh(kit_id: str, day: int) -> dict[str, Stats]:
    """A day's statistics from its hourly buckets, with the hours still marked counted from raw."""
    period = period_of(Resolution.HOUR, day)[0]
    hourly = dynamodb.rollup_periods_get([(kit_id, period)], consistent=True).get((kit_id, period))
    if hourly is None:
        hourly = dynamodb.rollup_item_new((kit_id, period))
    hours = _pending_buckets(kit_id, RollupMark.HOUR, day, day + DAY_MS)
    if hours:
        fresh = {(hour - day) // HOUR_MS: stats for hour, stats in hours_stats(kit_id, hours).items()}
        hourly.sensors = slots_replace(dynamodb.as_plain_dict(hourly.sensors), fresh)
    return day_totals(hourly)


def hours_stats(kit_id: str, hours: Iterable[int]) -> dict[int, dict[str, Stats]]:
    """Every sensor's statistics of each of these hours (their starts), counted afresh from the
    stored raw readings: one strongly consistent Query per day they fall in (a refresh must see
    every reading stored before it). An hour without readings maps to {}."""
    by_day: dict[int, set[int]] = defaultdict(set)
    for hour in hours:
        by_day[day_start(hour)].add(hour)
    found: dict[int, dict[str, Stats]] = {}
    for day, wanted in by_day.items():
        values: dict[int, dict[str, list[float]]] = {hour: defaultdict(list) for hour in wanted}
        for reading in dynamodb.raw_day_query(kit_id, day, min(wanted), max(wanted) + HOUR_MS, consistent=True):
            hour_values = values.get(reading.timestamp_ms - reading.timestamp_ms % HOUR_MS)
            if hour_values is not None:
                for sensor, value in reading.values.items():
                    hour_values[sensor].append(value)
        for hour, by_sensor in values.items():
            found[hour] = {sensor: stats_of(sensor_values) for sensor, sensor_values in by_sensor.items()}
    return found


def day_totals(hourly: models.RollupPeriod | None) -> dict[str, Stats]:
    """A day's statistics per sensor, from its hourly rollup item."""
    totals: dict[str, Stats] = {}
    if hourly is None:
        return totals
    for sensor, text in dynamodb.as_plain_dict(hourly.sensors).items():
        for stats in slots_decode(text).values():
            if sensor in totals:
                totals[sensor].merge(stats)
            else:
                totals[sensor] = copy.copy(stats)
    return totals


def _slot_replace(by_sensor: dict[str, dict[str, list]], slot: str, fresh: dict[str, Stats]) -> None:
    """Puts `fresh` in place of one slot of a decoded rollup item, keeping each sensor's slots in order."""
    for sensor_slots in by_sensor.values():
        sensor_slots.pop(slot, None)
    for sensor, stats in fresh.items():
        by_sensor.setdefault(sensor, {})[slot] = [stats.count, stats.total, stats.minimum, stats.maximum]
    for sensor in list(by_sensor):
        if by_sensor[sensor]:
            by_sensor[sensor] = dict(sorted(by_sensor[sensor].items(), key=lambda pair: int(pair[0])))
        else:
            del by_sensor[sensor]


def _rollup_points(
    rollups: Rollups, resolution: Resolution, start_ms: int, end_ms: int, sensors
) -> dict[str, list[Point]]:
    first_bucket = bucket_start(resolution, start_ms)
    series: dict[str, list[Point]] = defaultdict(list)
    for period, by_sensor in rollups.items():
        for sensor, slots in sorted(by_sensor.items()):
            if sensors is not None and sensor not in sensors:
                continue
            for slot, (count, total, low, high) in slots.items():  # stored in slot order (slots_encode)
                at = slot_start(period, int(slot))
                if first_bucket <= at < end_ms:
                    series[sensor].append(Point(at, total / count, low, high, count))
    return dict(series)


def readings_range_rows(
    *, kit: Kit, start_ms: int, end_ms: int, resolution: Resolution, sensors: list[str] | None = None
) -> Iterator[tuple[int, str, float]]:
    """The whole range as (timestamp ms, sensor, value) rows in time order, read lazily, for
    streaming exports: raw readings page by page, rollups as their means."""
    range_problem(start_ms, end_ms, resolution)
    if resolution != Resolution.RAW:
        points = rollups_range(kit=kit, start_ms=start_ms, end_ms=end_ms, resolution=resolution, sensors=sensors)
        rows = [(point.timestamp_ms, sensor, point.value) for sensor, series in points.items() for point in series]
        yield from sorted(rows)
        return
    for reading in _raw_readings(kit.id, start_ms, end_ms, sensors, page_size=RAW_PAGE_SIZE_DEFAULT):
        for sensor, value in sorted(reading.values.items()):
            yield reading.timestamp_ms, sensor, value


def range_problem(start_ms: int, end_ms: int, resolution: Resolution) -> None:
    """Raises TelemetryQueryInvalid for a range the API does not serve."""
    if start_ms >= end_ms:
        raise TelemetryQueryInvalid({"from": ["Must be before to."]})
    if end_ms - start_ms > MAX_RANGE_DAYS * DAY_MS:
        raise TelemetryQueryInvalid({"to": [f"A range may span at most {MAX_RANGE_DAYS} days."]})
    if resolution in BUCKET_MS:
        buckets = math.ceil((end_ms - bucket_start(resolution, start_ms)) / BUCKET_MS[resolution])
        if buckets > MAX_ROLLUP_POINTS:
            raise TelemetryQueryInvalid(
                {"resolution": [f"{resolution} gives {buckets} points; at most {MAX_ROLLUP_POINTS}. Use 1d."]}
            )


def csv_range_problem(start_ms: int, end_ms: int) -> None:
    """Raises TelemetryQueryInvalid for a range of raw readings longer than one CSV may cover
    (TELEMETRY_CSV_RAW_MAX_DAYS): checked before the first row is streamed."""
    most = settings.TELEMETRY_CSV_RAW_MAX_DAYS
    if end_ms - start_ms > most * DAY_MS:
        days = math.ceil((end_ms - start_ms) / DAY_MS)
        raise TelemetryQueryInvalid(
            {
                "to": [
                    f"One CSV of raw readings covers at most {most} days, and this range spans {days}: "
                    "narrow from and to (and ask for the rest in further requests), or use resolution=1h or 1d."
                ]
            }
        )


def _raw_readings(
    kit_id: str, start_ms: int, end_ms: int, sensors: list[str] | None, *, page_size: int, after_ms: int | None = None
) -> Iterator[dynamodb.StoredReading]:
    """The kit's raw readings in [start_ms, end_ms) after `after_ms`, oldest first, keeping only
    `sensors` and dropping readings with none of them. Only days with data are queried."""
    if after_ms is not None:
        start_ms = max(start_ms, after_ms + 1)
    for day in _days_with_data(kit_id, start_ms, end_ms, sensors):
        for reading in dynamodb.raw_day_query(
            kit_id, day, max(start_ms, day), min(end_ms, day + DAY_MS), page_size=page_size
        ):
            values = reading.values
            if sensors is not None:
                values = {sensor: value for sensor, value in values.items() if sensor in sensors}
                if not values:
                    continue
            yield dynamodb.StoredReading(kit_id, reading.timestamp_ms, values)


def _days_with_data(kit_id: str, start_ms: int, end_ms: int, sensors: list[str] | None) -> dict[int, dict[str, int]]:
    """The UTC days overlapping [start_ms, end_ms) with readings of `sensors` (all if None), oldest
    first, each with its reading count per sensor, from the daily rollups."""
    if end_ms <= start_ms:
        return {}
    return _day_counts(_rollup_items(kit_id, Resolution.DAY, start_ms, end_ms), start_ms, end_ms, sensors)


def _day_counts(daily: Rollups, start_ms: int, end_ms: int, sensors) -> dict[int, dict[str, int]]:
    first_day = day_start(start_ms)
    days: dict[int, dict[str, int]] = defaultdict(dict)
    for period, by_sensor in daily.items():
        for sensor, slots in by_sensor.items():
            if sensors is not None and sensor not in sensors:
                continue
            for slot, (count, *_) in slots.items():
                day = slot_start(period, int(slot))
                if first_day <= day < end_ms and count:
                    days[day][sensor] = count
    return dict(sorted(days.items()))
