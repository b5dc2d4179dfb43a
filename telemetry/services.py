"""Every telemetry write: `readings_write` stores kit readings and keeps each kit's latest state
and rollups right; `telemetry_tables_setup` prepares DynamoDB."""

import copy
import functools
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.utils import timezone

from kits.models import KIT_ID_PATTERN, SENSOR_KEY_PATTERN

from . import models
from .dead_letters import DeadLetter
from .exceptions import ReadingsNotStored, TelemetryUnavailable
from .models import LatestState, RollupPeriod, StoredReading
from .timebuckets import (
    DAY_MS,
    HOUR_MS,
    Resolution,
    Stats,
    day_start,
    is_finite_number,
    period_of,
    slots_decode,
    slots_encode,
    stats_of,
    to_ms,
)

MAX_SENSORS_PER_READING = 64
MAX_ABS_VALUE = 1e100  # DynamoDB numbers stop at 1e126; nothing a sensor measures comes near
# Readings this close to the retention limit are refused: their hour's older readings may be
# expiring, and a rollup recounted from what is left would shrink.
RETENTION_MARGIN_MS = DAY_MS
CONFLICT_RETRIES = 10

_KIT_ID = re.compile(KIT_ID_PATTERN)
_SENSOR_KEY = re.compile(SENSOR_KEY_PATTERN)


@dataclass(frozen=True)
class Reading:
    """One kit message: the values of the kit's sensors at one instant (timezone-aware)."""

    kit_id: str
    timestamp: datetime
    values: Mapping[str, float]


@dataclass(frozen=True)
class FailedReading:
    reading: Reading
    reason: str


@dataclass(frozen=True)
class WriteSummary:
    stored: int  # readings stored now, counting those that were stored already
    unchanged: int  # of which already stored with the same values, so nothing was written


def telemetry_tables_setup() -> list[str]:
    """Creates the telemetry tables that are missing and turns on the raw readings' TTL.
    Safe to run again; returns one line per table saying what it found or did."""
    return models.tables_setup()


def telemetry_tables_missing() -> list[str]:
    """The names of the telemetry tables that do not exist yet (run `dynamodb_setup`). Raises
    TelemetryUnavailable if DynamoDB cannot be reached."""
    return models.tables_missing()


def readings_write(*, readings: Iterable[Reading]) -> WriteSummary:
    """Stores `readings` and brings each kit's latest state and hourly and daily rollups up to date.

    Idempotent: a kit and timestamp written twice stays one reading (the second write wins) and
    is counted once in the rollups, so a redelivered MQTT message changes nothing. Raw readings
    go to DynamoDB in batches of at most 25, retried with backoff while DynamoDB leaves items
    unprocessed or throttles. The latest state and the rollups are written once per kit and
    period for the whole call, so calling with many readings at once costs far fewer writes
    than calling once per reading.

    Raises ReadingsNotStored, listing each failed reading with its reason, if any reading is
    invalid or could not be stored with its latest state and rollups; all others are stored.
    """
    now_ms = to_ms(timezone.now())
    failed: list[FailedReading] = []
    accepted: dict[tuple[str, int], tuple[Reading, StoredReading]] = {}
    for reading in readings:
        problem = _problem_with(reading, now_ms)
        if problem:
            failed.append(FailedReading(reading, problem))
            continue
        timestamp_ms = to_ms(reading.timestamp)
        values = {sensor: float(value) for sensor, value in reading.values.items()}
        accepted[(reading.kit_id, timestamp_ms)] = (reading, StoredReading(reading.kit_id, timestamp_ms, values))

    # Each round writes the kits still pending. A kit whose latest state somebody else saved
    # meanwhile is written again from a fresh read: which of its readings may be stored already
    # was decided on a latest state that is out of date.
    pending, written, unchanged = accepted, {}, set()
    for attempt in range(1, CONFLICT_RETRIES + 1):
        if not pending:
            break
        outcome = _write_round(pending, cached=attempt == 1)
        failed.extend(FailedReading(accepted[key][0], reason) for key, reason in outcome.failed.items())
        written.update(outcome.written)
        if attempt == 1:  # later rounds find this call's own first writes stored
            unchanged = outcome.unchanged
        pending = {
            key: value for key, value in pending.items() if key[0] in outcome.stale_kits and key not in outcome.failed
        }
        if pending and attempt < CONFLICT_RETRIES:
            models.backoff_sleep(attempt)
    reason = (
        "Stored, but the kit's latest state kept changing under us (or DynamoDB kept throttling its save); "
        f"gave up after {CONFLICT_RETRIES} tries"
    )
    failed.extend(FailedReading(reading, reason) for reading, _ in pending.values())
    stored = sum(len(by_time) for by_time in written.values())
    unchanged_count = sum(1 for kit_id, by_time in written.items() for ms in by_time if (kit_id, ms) in unchanged)
    if failed:
        raise ReadingsNotStored(failed, stored=stored)
    return WriteSummary(stored=stored, unchanged=unchanged_count)


@dataclass
class _RoundOutcome:
    written: dict[str, dict[int, dict[str, float]]]  # kit -> {ms: values}, with latest state and rollups
    unchanged: set[tuple[str, int]]  # found stored already with the same values
    failed: dict[tuple[str, int], str]  # reading -> why it failed
    stale_kits: set[str]  # to write again from a fresh read


def _write_round(accepted: dict[tuple[str, int], tuple[Reading, StoredReading]], *, cached: bool) -> _RoundOutcome:
    """Stores these (valid) readings and saves their kits' latest state and rollups."""
    kits: dict[str, list[int]] = defaultdict(list)
    for kit_id, timestamp_ms in accepted:
        kits[kit_id].append(timestamp_ms)
    derived = models.derived_items_get(
        [("latest", kit_id) for kit_id in kits]
        + [("rollup", kit_id, period) for kit_id, stamps in kits.items() for period in _rollup_periods(stamps)],
        cached=cached,
    )
    newest = {kit_id: int(item.newest_ms) for (kind, kit_id, *_), item in derived.items() if kind == "latest"}
    # A reading no newer than its kit's newest written one may be stored already (a
    # redelivery, or a retry of a failed write): look it up. Newer ones cannot be.
    maybe_stored = [key for key in accepted if key[0] in newest and key[1] <= newest[key[0]]]
    existing = models.raw_items_get(maybe_stored) if maybe_stored else {}
    unchanged = {key for key, values in existing.items() if values == accepted[key][1].values}
    not_put = models.raw_items_put([stored for key, (_, stored) in accepted.items() if key not in unchanged])
    failed = dict(not_put)

    changes: dict[str, list[_Change]] = {}
    written: dict[str, dict[int, dict[str, float]]] = {}
    for kit_id, stamps in kits.items():
        written[kit_id] = {ms: accepted[(kit_id, ms)][1].values for ms in stamps if (kit_id, ms) not in not_put}
        if written[kit_id]:
            recount = {ms - ms % HOUR_MS for ms in written[kit_id] if (kit_id, ms) in existing}
            newest_after = max(newest.get(kit_id, 0), max(written[kit_id]))
            changes[kit_id] = _kit_changes(kit_id, written[kit_id], recount, newest_after)
    stale_kits = set()
    for kit_id, error in _changes_commit(changes, derived).items():
        if isinstance(error, _LatestStateChanged):
            stale_kits.add(kit_id)
            del written[kit_id]
            continue
        reason = (
            f"Stored, but the kit's latest state and rollups could not be updated ({error.message}); write it again"
        )
        failed.update({(kit_id, ms): reason for ms in written.pop(kit_id)})
    return _RoundOutcome(written, unchanged, failed, stale_kits)


def reading_problem(reading: Reading) -> str | None:
    """Why `readings_write` would refuse this reading, or None if it would take it."""
    return _problem_with(reading, to_ms(timezone.now()))


def _problem_with(reading: Reading, now_ms: int) -> str | None:
    if not isinstance(reading.kit_id, str) or not _KIT_ID.match(reading.kit_id):
        return f"{reading.kit_id!r} is not a kit id."
    if not isinstance(reading.timestamp, datetime) or reading.timestamp.tzinfo is None:
        return "The timestamp must be a timezone-aware time."
    timestamp_ms = to_ms(reading.timestamp)
    if timestamp_ms > now_ms + settings.TELEMETRY_MAX_FUTURE_SECONDS * 1000:
        return f"The timestamp is more than {settings.TELEMETRY_MAX_FUTURE_SECONDS} s in the future."
    if timestamp_ms < now_ms - settings.TELEMETRY_RAW_RETENTION_DAYS * DAY_MS + RETENTION_MARGIN_MS:
        return f"The timestamp is older than the {settings.TELEMETRY_RAW_RETENTION_DAYS} days raw readings are kept."
    if not reading.values:
        return "The reading has no sensor values."
    if len(reading.values) > MAX_SENSORS_PER_READING:
        return f"The reading has more than {MAX_SENSORS_PER_READING} sensor values."
    for sensor, value in reading.values.items():
        if not isinstance(sensor, str) or not _SENSOR_KEY.match(sensor):
            return f"{sensor!r} is not a sensor key (lower-case letters, digits and underscores)."
        if not is_finite_number(value) or abs(value) > MAX_ABS_VALUE:
            return f"The value of {sensor} must be a finite number, not {value!r}."
    return None


def _rollup_periods(stamps: Iterable[int]) -> set[str]:
    days = {day_start(ms) for ms in stamps}
    return {period_of(resolution, day)[0] for day in days for resolution in (Resolution.HOUR, Resolution.DAY)}


@dataclass(frozen=True)
class _Change:
    """A change to one derived item: `apply(item)` makes it on the item as read, and says whether
    the item changed. Applied again to a fresh copy when somebody else wrote the item meanwhile."""

    key: models.DerivedKey
    apply: Callable[[LatestState | RollupPeriod], bool]


def _kit_changes(
    kit_id: str, written: dict[int, dict[str, float]], recount_hours: set[int], newest_after: int
) -> list[_Change]:
    """The changes one kit's latest state, hourly and daily rollups need for the readings just
    `written` ({timestamp ms: values}), in the order they must be applied.

    Rollups stay exact however often a reading is written. A reading newer than the kit's
    newest written time cannot be stored already, so it is added to its hour. Any other reading
    that was stored already has its whole hour recounted from the raw readings
    (`recount_hours`): it may be a redelivery, counted already, or a retry of a write whose
    raw items were stored but whose rollups were not. Daily buckets are always recomputed from
    the day's hourly buckets, never added to. The latest state comes first: once it says a time
    is written, a later write of that time recounts rather than adds.

    So the rollups count exactly the raw readings no newer than the latest state's newest time
    (`newest_after`, as this write leaves it), and a recount counts only those: a newer raw
    reading is one whose writer stopped before saving the latest state, and is added when that
    write is retried.
    """
    recounted = {hour: _hour_recount(kit_id, hour, until_ms=newest_after) for hour in recount_hours}
    deltas: dict[int, dict[str, Stats]] = defaultdict(dict)
    for timestamp_ms, values in written.items():
        hour = timestamp_ms - timestamp_ms % HOUR_MS
        if hour in recounted:
            continue
        for sensor, value in values.items():
            if sensor in deltas[hour]:
                deltas[hour][sensor].add(value)
            else:
                deltas[hour][sensor] = Stats.of(value)

    changes = [_Change(("latest", kit_id), functools.partial(_latest_apply, written=written))]
    hours_by_day: dict[int, set[int]] = defaultdict(set)
    for hour in [*recounted, *deltas]:
        hours_by_day[day_start(hour)].add(hour)
    hourly_after: dict[int, RollupPeriod] = {}  # each day's hourly item as last applied
    for day, hours in sorted(hours_by_day.items()):
        slot = {hour: (hour - day) // HOUR_MS for hour in hours}
        replaced = {slot[hour]: recounted[hour] for hour in hours if hour in recounted}
        added = {slot[hour]: deltas[hour] for hour in hours if hour in deltas}

        def apply_hours(item, day=day, replaced=replaced, added=added):
            hourly_after[day] = item
            return _slots_apply(item, replaced=replaced, added=added)

        changes.append(_Change(("rollup", kit_id, period_of(Resolution.HOUR, day)[0]), apply_hours))
    days_by_month: dict[str, list[int]] = defaultdict(list)
    for day in sorted(hours_by_day):
        days_by_month[period_of(Resolution.DAY, day)[0]].append(day)
    for month, days in days_by_month.items():

        def apply_days(item, days=days):
            replaced = {period_of(Resolution.DAY, day)[1]: _day_totals(hourly_after[day]) for day in days}
            return _slots_apply(item, replaced=replaced, added={})

        changes.append(_Change(("rollup", kit_id, month), apply_days))
    return changes


def _latest_apply(item: LatestState, *, written: dict[int, dict[str, float]]) -> bool:
    sensors = models.as_plain_dict(item.sensors)
    before = copy.deepcopy(sensors)
    for timestamp_ms in sorted(written):
        for sensor, value in written[timestamp_ms].items():
            current = sensors.get(sensor)
            if current is None or timestamp_ms >= current["t"]:
                sensors[sensor] = {"t": timestamp_ms, "v": value}
    newest = max(int(item.newest_ms or 0), max(written))
    if sensors == before and newest == item.newest_ms:
        return False
    item.sensors = sensors
    item.newest_ms = newest
    return True


class _LatestStateChanged(TelemetryUnavailable):
    """Somebody saved the kit's latest state after we read it: write the kit again from a fresh read."""


def _changes_commit(
    changes: dict[str, list[_Change]], stored: dict[models.DerivedKey, LatestState | RollupPeriod]
) -> dict[str, TelemetryUnavailable]:
    """Applies every kit's changes and saves them, kits side by side. Returns the kits whose
    changes could not be saved, with the reason."""
    workers = max(1, min(settings.TELEMETRY_WRITE_CONCURRENCY, len(changes)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {
            kit_id: pool.submit(_kit_changes_commit, kit_changes, stored) for kit_id, kit_changes in changes.items()
        }
    failures = {}
    for kit_id, future in futures.items():
        try:
            future.result()
        except TelemetryUnavailable as error:
            failures[kit_id] = error
    return failures


def _kit_changes_commit(
    kit_changes: list[_Change], stored: dict[models.DerivedKey, LatestState | RollupPeriod]
) -> None:
    """Saves one kit's changes in their order, each item only if nobody saved it since it was
    read. The latest state comes first; if it was saved meanwhile, raises _LatestStateChanged
    and saves nothing. A rollup saved meanwhile is read again and its change applied afresh.

    One item at a time, not one transaction: the order alone keeps the kit right. Were the
    writer to stop half-way, the latest state already says its readings are written, so the
    retry recounts their hours from the raw readings instead of adding them twice; daily
    buckets are always recomputed from hourly ones. It also costs half the write units of a
    transaction. Stops at the first item it cannot save, as later ones derive from it."""
    for change in kit_changes:
        item = stored.get(change.key) or models.derived_item_new(change.key)
        for attempt in range(1, CONFLICT_RETRIES + 1):
            if not change.apply(item) or models.derived_item_save(item):
                break
            if change.key[0] == "latest":
                raise _LatestStateChanged("the kit's latest state changed meanwhile")
            models.backoff_sleep(attempt)
            item = models.derived_items_get([change.key]).get(change.key) or models.derived_item_new(change.key)
        else:
            raise TelemetryUnavailable(f"the items kept changing under us; gave up after {CONFLICT_RETRIES} tries")


def _slots_apply(
    item: RollupPeriod, *, replaced: dict[int, dict[str, Stats]], added: dict[int, dict[str, Stats]]
) -> bool:
    """Replaces some buckets of a rollup item and adds to others; False if nothing changed."""
    stored = models.as_plain_dict(item.sensors)
    slots = {sensor: slots_decode(text) for sensor, text in stored.items()}
    for slot, by_sensor in replaced.items():
        for sensor_slots in slots.values():
            sensor_slots.pop(slot, None)
        for sensor, stats in by_sensor.items():
            slots.setdefault(sensor, {})[slot] = copy.copy(stats)
    for slot, by_sensor in added.items():
        for sensor, stats in by_sensor.items():
            current = slots.setdefault(sensor, {}).get(slot)
            if current is None:
                slots[sensor][slot] = copy.copy(stats)
            else:
                current.merge(stats)
    encoded = {sensor: slots_encode(sensor_slots) for sensor, sensor_slots in sorted(slots.items()) if sensor_slots}
    if encoded == stored:
        return False
    item.sensors = encoded
    return True


def _hour_recount(kit_id: str, hour_ms: int, *, until_ms: int) -> dict[str, Stats]:
    """Every sensor's statistics of one hour, counted afresh from the stored raw readings no newer
    than `until_ms`."""
    values: dict[str, list[float]] = defaultdict(list)
    end_ms = min(hour_ms + HOUR_MS, until_ms + 1)
    for reading in models.raw_day_query(kit_id, day_start(hour_ms), hour_ms, end_ms, consistent=True):
        for sensor, value in reading.values.items():
            values[sensor].append(value)
    return {sensor: stats_of(sensor_values) for sensor, sensor_values in values.items()}


def _day_totals(hourly: RollupPeriod | None) -> dict[str, Stats]:
    """A day's statistics per sensor, from its hourly buckets."""
    totals: dict[str, Stats] = {}
    if hourly is None:
        return totals
    for sensor, text in models.as_plain_dict(hourly.sensors).items():
        for stats in slots_decode(text).values():
            if sensor in totals:
                totals[sensor].merge(stats)
            else:
                totals[sensor] = copy.copy(stats)
    return totals


@dataclass(frozen=True)
class RefusedMessage:
    """A kit message the ingest bridge refused, and why."""

    topic: str
    payload: bytes
    reason: str
    kit_id: str = ""


def dead_letters_record(*, refused: Iterable[RefusedMessage], received_at: datetime) -> int:
    """Keep refused kit messages, each with its reason, where admins see them. Returns how many."""
    letters = [
        DeadLetter(
            received_at=received_at, topic=m.topic[:256], kit_id=m.kit_id[:64], reason=m.reason, payload=m.payload
        )
        for m in refused
    ]
    DeadLetter.objects.bulk_create(letters)
    return len(letters)
