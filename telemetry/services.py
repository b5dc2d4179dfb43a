"""Every telemetry write: `readings_write` stores kit readings and keeps each kit's latest values
right, `rollups_refresh` brings their rollups up to date, `telemetry_tables_setup` prepares DynamoDB."""

import logging
import re
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from device.payloads import KIT_ID_PATTERN, SENSOR_KEY_PATTERN

from . import dynamodb
from .dead_letters import DeadLetter
from .dynamodb import StoredReading
from .exceptions import ReadingsNotStored, RollupNotStorable, TelemetryError, TelemetryUnavailable
from .kit_state import LatestValue, RollupMark
from .models import RollupPeriod
from .selectors import day_totals, hours_stats
from .timebuckets import (
    DAY_MS,
    HOUR_MS,
    Resolution,
    Stats,
    day_start,
    is_finite_number,
    period_of,
    slots_replace,
    to_ms,
)

log = logging.getLogger(__name__)

MAX_SENSORS_PER_READING = 64
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
    permanent: bool = False  # it can never be stored as it is; else a later try may succeed


@dataclass(frozen=True)
class WriteSummary:
    stored: int  # readings stored now, counting those that were stored already


def telemetry_tables_setup() -> list[str]:
    """Creates the telemetry tables that are missing and turns on the raw readings' TTL.
    Safe to run again; returns one line per table saying what it found or did."""
    return dynamodb.tables_setup()


def telemetry_tables_missing() -> list[str]:
    """The names of the telemetry tables that do not exist yet (run `dynamodb_setup`). Raises
    TelemetryUnavailable if DynamoDB cannot be reached."""
    return dynamodb.tables_missing()


def readings_write(*, readings: Iterable[Reading], rollups_now: bool = False) -> WriteSummary:
    """Stores `readings` in DynamoDB, moves each kit's latest values forward and marks the hours
    and days they fall in for a rollup refresh (`rollups_refresh`), which follows within
    TELEMETRY_ROLLUP_DELAY_SECONDS, or at once with `rollups_now`.

    Idempotent: a kit and timestamp written twice stays one reading (the second write wins), and
    rollups are recomputed from the raw readings, never added to, so a redelivered MQTT message
    changes nothing, whichever bridge stores it. Raw readings go to DynamoDB in batches of at
    most 25, retried with backoff while DynamoDB leaves items unprocessed or throttles.

    Raises ReadingsNotStored, listing each failed reading with its reason and whether the failure
    is permanent (the reading can never be stored as it is) or transient; all others are stored.
    Raises TelemetryUnavailable if the database is away after the raw readings were stored:
    writing them again is safe.
    """
    now_ms = to_ms(timezone.now())
    failed: list[FailedReading] = []
    accepted: dict[tuple[str, int], tuple[Reading, StoredReading]] = {}
    for reading in readings:
        problem = _problem_with(reading, now_ms)
        if problem:
            failed.append(FailedReading(reading, problem, permanent=True))
            continue
        timestamp_ms = to_ms(reading.timestamp)
        values = {sensor: float(value) for sensor, value in reading.values.items()}
        stored = StoredReading(reading.kit_id, timestamp_ms, values)
        problem = dynamodb.raw_item_problem(stored)
        if problem:
            failed.append(FailedReading(reading, problem, permanent=True))
            continue
        accepted[(reading.kit_id, timestamp_ms)] = (reading, stored)

    not_put = dynamodb.raw_items_put([stored for _, stored in accepted.values()])
    failed.extend(
        FailedReading(accepted[key][0], failure.reason, permanent=failure.permanent) for key, failure in not_put.items()
    )
    written = [stored for key, (_, stored) in accepted.items() if key not in not_put]
    if written:
        try:
            _kit_state_record(written, now_ms)
        except DatabaseError as error:
            reason = f"Stored, but the database did not take the kits' latest values: {error}"
            raise TelemetryUnavailable(reason) from error
        if rollups_now:
            rollups_refresh_all(kit_ids={reading.kit_id for reading in written})
    if failed:
        raise ReadingsNotStored(failed, stored=len(written))
    return WriteSummary(stored=len(written))


def _kit_state_record(written: list[StoredReading], now_ms: int) -> None:
    """Moves the kits' latest values forward and marks the rollup buckets these readings changed,
    in one transaction. Both are upserts: they need no read, and two bridges writing the same
    kit at once both succeed (rows in key order, so they cannot deadlock on each other)."""
    newest: dict[tuple[str, str], tuple[int, float]] = {}
    hours, days = set(), set()
    for reading in written:
        for sensor, value in reading.values.items():
            current = newest.get((reading.kit_id, sensor))
            if current is None or reading.timestamp_ms >= current[0]:
                newest[(reading.kit_id, sensor)] = (reading.timestamp_ms, value)
        hours.add((reading.kit_id, reading.timestamp_ms - reading.timestamp_ms % HOUR_MS))
        days.add((reading.kit_id, day_start(reading.timestamp_ms)))
    delay_ms = settings.TELEMETRY_ROLLUP_DELAY_SECONDS * 1000
    latest_table, marks_table = LatestValue._meta.db_table, RollupMark._meta.db_table
    marks = sorted(
        [(kit_id, RollupMark.HOUR, hour, now_ms + delay_ms) for kit_id, hour in hours]
        # A day's bucket is refreshed once the day is over (until then readers count it from its
        # hours), so a kit reporting all day rewrites its month's item once, not every few minutes.
        + [(kit_id, RollupMark.DAY, day, max(now_ms, day + DAY_MS) + delay_ms) for kit_id, day in days]
    )
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {latest_table} (kit_id, sensor, timestamp_ms, value) VALUES (%s, %s, %s, %s) "  # noqa: S608 (our table names)
            "ON CONFLICT (kit_id, sensor) DO UPDATE SET timestamp_ms = excluded.timestamp_ms, value = excluded.value "
            f"WHERE {latest_table}.timestamp_ms <= excluded.timestamp_ms",
            [(kit_id, sensor, ms, value) for (kit_id, sensor), (ms, value) in sorted(newest.items())],
        )
        cursor.executemany(
            f"INSERT INTO {marks_table} (kit_id, kind, bucket_ms, due_ms, generation, claimed_by) "  # noqa: S608
            "VALUES (%s, %s, %s, %s, 1, '') "
            f"ON CONFLICT (kit_id, kind, bucket_ms) DO UPDATE SET generation = {marks_table}.generation + 1",
            marks,
        )


@dataclass(frozen=True)
class RefreshSummary:
    hours: int  # hourly buckets brought up to date
    days: int  # daily buckets brought up to date
    failed: int  # marks left for a later try (DynamoDB away, or an item it refuses)


ROLLUP_CLAIM_MS = 60_000  # a refresh that stops half-way leaves its marks to another after this


def rollups_refresh(
    *, everything: bool = False, kit_ids: Iterable[str] | None = None, limit: int = 1000
) -> RefreshSummary:
    """Brings up to date the rollup buckets whose marks are due (with `everything`, due or not),
    of `kit_ids` or of every kit, at most `limit` marks. Each bucket is
    recomputed from the raw readings (a set, not an increment), so several bridges refreshing at
    once, or one refreshing twice, still count every reading exactly once.

    Safe with several refreshers: each claims its marks first, and a claim left by a refresher
    that stopped lapses after a minute. A mark renewed by a writer during the refresh stays."""
    now_ms = to_ms(timezone.now())
    claimant = uuid.uuid4().hex
    marks = _marks_claim(everything=everything, kit_ids=kit_ids, limit=limit, claimant=claimant, now_ms=now_ms)
    hours: dict[tuple[str, int], list[dict]] = defaultdict(list)  # (kit, day) -> its hour marks
    for mark in marks:
        if mark["kind"] == RollupMark.HOUR:
            hours[(mark["kit_id"], day_start(mark["bucket_ms"]))].append(mark)
    done: list[dict] = []
    days_done: set[tuple[str, int]] = set()
    failed = 0
    for (kit_id, day), day_marks in sorted(hours.items()):
        try:
            _hours_refresh(kit_id, day, [mark["bucket_ms"] for mark in day_marks])
            if day + DAY_MS <= now_ms:  # a day that is over: its bucket follows its hours
                _day_refresh(kit_id, day)
                days_done.add((kit_id, day))
        except TelemetryError as error:
            failed += len(day_marks)
            _marks_release(day_marks, error, now_ms)
            continue
        done.extend(day_marks)
    day_marks = [mark for mark in marks if mark["kind"] == RollupMark.DAY]
    done_ids = {mark["id"] for mark in done}
    for mark in day_marks:
        if (mark["kit_id"], mark["bucket_ms"]) in days_done:  # refreshed after its hours, above
            done.append(mark)
            continue
        if _hours_pending(mark["kit_id"], mark["bucket_ms"], but=done_ids):
            continue  # its day follows its hours: left for when they are done (see _marks_remove)
        try:
            _day_refresh(mark["kit_id"], mark["bucket_ms"])
        except TelemetryError as error:
            failed += 1
            _marks_release([mark], error, now_ms)
            continue
        done.append(mark)
    _marks_remove(done, claimed=marks, claimant=claimant, now_ms=now_ms)
    return RefreshSummary(
        hours=sum(1 for mark in done if mark["kind"] == RollupMark.HOUR),
        days=sum(1 for mark in done if mark["kind"] == RollupMark.DAY),
        failed=failed,
    )


def rollups_refresh_all(*, kit_ids: Iterable[str] | None = None) -> RefreshSummary:
    """Refreshes every marked bucket now, due or not (for seeding and tests)."""
    kit_ids = set(kit_ids) if kit_ids is not None else None
    hours = days = failed = 0
    while True:
        summary = rollups_refresh(everything=True, kit_ids=kit_ids)
        hours, days, failed = hours + summary.hours, days + summary.days, failed + summary.failed
        if summary.hours + summary.days == 0 or summary.failed:
            return RefreshSummary(hours, days, failed)


def _marks_claim(*, everything: bool, kit_ids, limit: int, claimant: str, now_ms: int) -> list[dict]:
    """Takes up to `limit` due marks (with `everything`, all but those another refresher holds)
    for this refresher, and returns them with the generation they had when taken."""
    # With `everything`, all but the marks another refresher holds now.
    due = (
        RollupMark.objects.exclude(claimed_by__gt="", due_ms__gt=now_ms)
        if everything
        else RollupMark.objects.filter(due_ms__lte=now_ms)
    )
    if kit_ids is not None:
        due = due.filter(kit_id__in=kit_ids)
    ids = list(due.order_by("due_ms").values_list("id", flat=True)[:limit])
    if not ids:
        return []
    lease = now_ms + ROLLUP_CLAIM_MS
    due.filter(id__in=ids).update(due_ms=lease, claimed_by=claimant)
    return list(
        RollupMark.objects.filter(id__in=ids, claimed_by=claimant, due_ms=lease).values(
            "id", "kit_id", "kind", "bucket_ms", "generation"
        )
    )


def _hours_pending(kit_id: str, day: int, *, but: set[int]) -> bool:
    """Whether hours of this day are still marked, other than the marks `but` (refreshed now)."""
    marked = RollupMark.objects.filter(
        kit_id=kit_id, kind=RollupMark.HOUR, bucket_ms__gte=day, bucket_ms__lt=day + DAY_MS
    )
    return marked.exclude(id__in=but).exists()


def _marks_remove(done: list[dict], *, claimed: list[dict], claimant: str, now_ms: int) -> None:
    """Removes the marks whose bucket is refreshed, unless a writer marked it again meanwhile:
    such a mark stays, due again after the usual delay, for the readings that came since, as
    does a mark this refresh claimed but left."""
    by_generation: dict[int, list[int]] = defaultdict(list)
    for mark in done:
        by_generation[mark["generation"]].append(mark["id"])
    for generation, ids in by_generation.items():
        RollupMark.objects.filter(id__in=ids, generation=generation).delete()
    RollupMark.objects.filter(id__in=[mark["id"] for mark in claimed], claimed_by=claimant).update(
        claimed_by="", due_ms=now_ms + settings.TELEMETRY_ROLLUP_DELAY_SECONDS * 1000
    )


def _marks_release(marks: list[dict], error: TelemetryError, now_ms: int) -> None:
    """Leaves the marks for a later try: soon if DynamoDB was away, in an hour if it refused the
    item itself (which no retry soon will change)."""
    later_ms = 3_600_000 if isinstance(error, RollupNotStorable) else 5_000
    if isinstance(error, RollupNotStorable):
        log.error("Rollups of %s not refreshed: %s", marks[0]["kit_id"], error.message)
    else:
        log.warning("Rollups of %s not refreshed now (%s); trying again soon", marks[0]["kit_id"], error.message)
    RollupMark.objects.filter(id__in=[mark["id"] for mark in marks]).update(due_ms=now_ms + later_ms, claimed_by="")


def _hours_refresh(kit_id: str, day: int, hours: list[int]) -> None:
    """Recomputes these hours of one kit's day from its raw readings and saves the day's hourly
    item, conditional on its version. The raw readings are read after the item: so whichever
    refresher saves last has seen every reading stored before its save."""
    key = (kit_id, period_of(Resolution.HOUR, day)[0])
    item = dynamodb.rollup_items_get([key], cached=True).get(key) or dynamodb.rollup_item_new(key)
    for attempt in range(1, CONFLICT_RETRIES + 1):
        replaced = {(hour - day) // HOUR_MS: stats for hour, stats in hours_stats(kit_id, hours).items()}
        if not _slots_apply(item, replaced=replaced) or dynamodb.rollup_item_save(item):
            return
        dynamodb.backoff_sleep(attempt)
        item = dynamodb.rollup_items_get([key]).get(key) or dynamodb.rollup_item_new(key)
    raise TelemetryUnavailable(f"the hourly rollups kept changing under us; gave up after {CONFLICT_RETRIES} tries")


def _day_refresh(kit_id: str, day: int) -> None:
    """Recomputes one kit's daily bucket from the day's hourly buckets and saves the month's item,
    conditional on its version (the hourly item is read after it, for the same reason)."""
    month, slot = period_of(Resolution.DAY, day)
    month_key, hours_key = (kit_id, month), (kit_id, period_of(Resolution.HOUR, day)[0])
    for attempt in range(1, CONFLICT_RETRIES + 1):
        cached = attempt == 1
        daily = dynamodb.rollup_items_get([month_key], cached=cached).get(month_key) or dynamodb.rollup_item_new(
            month_key
        )
        hourly = dynamodb.rollup_items_get([hours_key], cached=cached).get(hours_key)
        if not _slots_apply(daily, replaced={slot: day_totals(hourly)}) or dynamodb.rollup_item_save(daily):
            return
        dynamodb.backoff_sleep(attempt)
    raise TelemetryUnavailable(f"the daily rollups kept changing under us; gave up after {CONFLICT_RETRIES} tries")


def reading_problem(reading: Reading) -> str | None:
    """Why `readings_write` would refuse this reading, or None if it would take it."""
    problem = _problem_with(reading, to_ms(timezone.now()))
    if problem:
        return problem
    values = {sensor: float(value) for sensor, value in reading.values.items()}
    return dynamodb.raw_item_problem(StoredReading(reading.kit_id, to_ms(reading.timestamp), values))


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
        if not is_finite_number(value):
            return f"The value of {sensor} must be a finite number, not {value!r}."
    return None


def _slots_apply(item: RollupPeriod, *, replaced: dict[int, dict[str, Stats]]) -> bool:
    """Replaces some buckets of a rollup item; False if nothing changed."""
    stored = dynamodb.as_plain_dict(item.sensors)
    encoded = slots_replace(stored, replaced)
    if encoded == stored:
        return False
    item.sensors = encoded
    return True


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
