"""The one adapter that talks to DynamoDB for telemetry: table binding, batch writes with
backoff, reads, DynamoDB's own limits, and the rollup items' conditional saves. Nothing else in
the product imports PynamoDB's connection or botocore for telemetry (the models are in models.py).

Table names and the region are read from settings when a table is first used, never at import.
Writes of many items go through `batch_write_item` in batches of at most 25, retried with
backoff while DynamoDB leaves items unprocessed or throttles. A batch DynamoDB refuses as
invalid is split until the item(s) it refuses are found: those fail for good, with DynamoDB's
reason; the rest are stored. This module also knows DynamoDB's limits on numbers and item
sizes (`number_problem`, `item_size`), so readings that break them are refused before any write,
and counts the write units it spends (`write_units_spent`).
"""

import contextlib
import functools
import logging
import random
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from botocore.exceptions import BotoCoreError, ClientError
from cachetools import LRUCache
from django.conf import settings
from pynamodb.connection import Connection
from pynamodb.constants import PAY_PER_REQUEST_BILLING_MODE
from pynamodb.exceptions import PutError, PynamoDBException
from pynamodb.models import Model

from .dynamodb_sizes import item_size, write_units
from .exceptions import RollupNotStorable, TelemetryUnavailable
from .models import MODELS, RawReading, RollupPeriod
from .timebuckets import day_name

log = logging.getLogger(__name__)

BATCH_WRITE_LIMIT = 25  # DynamoDB's limit; moto accepts more, AWS refuses them
BATCH_GET_LIMIT = 100
MAX_ITEM_BYTES = 400 * 1024
# DynamoDB's numbers: a magnitude from 1E-130 to 9.99...E+125, or zero, with at most 38
# significant digits. moto accepts some numbers AWS refuses (1E+126, 40 digits): we refuse them all.
NUMBER_MIN_MAGNITUDE = Decimal("1E-130")
NUMBER_MAX_MAGNITUDE = Decimal("9.9999999999999999999999999999999999999E+125")
NUMBER_MAX_DIGITS = 38
# Refused for what the request holds: sending it again changes nothing. Any other error is
# taken as transient (a service away, credentials, a missing table) and retried, never
# dead-lettered: it says nothing about the message.
PERMANENT_ERRORS = {"ValidationException"}
# Errors after which the same request may succeed if sent again a little later.
RETRYABLE_ERRORS = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
}


@dataclass(frozen=True)
class StoredReading:
    kit_id: str
    timestamp_ms: int
    values: dict[str, float]


# --- Tables ---------------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _shared_connection(region: str) -> Connection:
    # One botocore client for every telemetry table: a client costs a session and its service
    # model to build, and botocore clients are safe to share between threads.
    return Connection(region=region)


@functools.lru_cache(maxsize=128)
def _bound(model: type[Model], table_name: str, region: str) -> type[Model]:
    # A subclass per table name, so settings decide the names at run time (tests give each test
    # its own prefix).
    meta = type("Meta", (), {"table_name": table_name, "region": region, "billing_mode": PAY_PER_REQUEST_BILLING_MODE})
    bound = type(model.__name__, (model,), {"Meta": meta, "__module__": __name__})
    table_connection = bound._get_connection()
    shared = _shared_connection(region)
    with contextlib.suppress(ValueError):  # the table is known to the connection already
        shared.add_meta_table(table_connection.connection.get_meta_table(table_name))
    table_connection.connection = shared
    return bound


def table(model: type[Model]) -> type[Model]:
    """`model` bound to its table under the current settings."""
    return _bound(model, settings.DYNAMODB_TABLE_PREFIX + model.Meta.table_name, settings.AWS_REGION)


def client():
    """The botocore client every telemetry table uses (benchmarks and tests attach event hooks)."""
    return _shared_connection(settings.AWS_REGION).client


def tables_missing() -> list[str]:
    """The names of the telemetry tables DynamoDB does not have. Raises TelemetryUnavailable if
    DynamoDB cannot be reached."""
    try:
        return [table(model).Meta.table_name for model in MODELS if not table(model).exists()]
    except (PynamoDBException, BotoCoreError, ClientError) as error:
        raise TelemetryUnavailable(f"Could not look at the telemetry tables: {error}") from error


def tables_setup() -> list[str]:
    """Creates the missing tables and turns on the readings' TTL; safe to run again. Says what it did."""
    done = []
    try:
        for model in MODELS:
            bound = table(model)
            name = bound.Meta.table_name
            if bound.exists():
                done.append(f"table {name} exists")
            else:
                bound.create_table(wait=True)
                done.append(f"table {name} created")
        readings = table(RawReading)
        ttl = client().describe_time_to_live(TableName=readings.Meta.table_name)["TimeToLiveDescription"]
        if ttl.get("TimeToLiveStatus") in ("ENABLED", "ENABLING"):
            done.append(f"TTL on {readings.Meta.table_name} is on")
        else:
            client().update_time_to_live(
                TableName=readings.Meta.table_name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": "x"},
            )
            done.append(f"TTL on {readings.Meta.table_name} turned on")
    except (PynamoDBException, BotoCoreError, ClientError) as error:
        raise TelemetryUnavailable(f"Could not set up the telemetry tables: {error}") from error
    return done


# --- Raw readings ---------------------------------------------------------------------------


def raw_key(kit_id: str, timestamp_ms: int) -> tuple[str, int]:
    return f"{kit_id}#{day_name(timestamp_ms)}", timestamp_ms


@dataclass(frozen=True)
class WriteFailure:
    """Why a reading was not stored. `permanent`: DynamoDB refused the item itself, so writing
    it again can never succeed; otherwise the failure is transient and a retry may succeed."""

    reason: str
    permanent: bool = False


def raw_items_put(readings: list[StoredReading]) -> dict[tuple[str, int], WriteFailure]:
    """Stores `readings` (at most one per kit and timestamp) with BatchWriteItem, 25 at a time,
    retrying unprocessed items and throttling with backoff. Returns the readings that could not
    be stored, as {(kit id, timestamp ms): WriteFailure}; an empty dict means all are stored."""
    table_name = table(RawReading).Meta.table_name
    retention_seconds = settings.TELEMETRY_RAW_RETENTION_DAYS * 86400
    requests = [{"PutRequest": {"Item": raw_item(reading, retention_seconds)}} for reading in readings]
    batches = [requests[start : start + BATCH_WRITE_LIMIT] for start in range(0, len(requests), BATCH_WRITE_LIMIT)]
    dynamodb = client()
    # Several batches in flight at once: DynamoDB (and moto) work while we wait on the network.
    workers = max(1, min(settings.TELEMETRY_WRITE_CONCURRENCY, len(batches)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        outcomes = list(pool.map(lambda batch: _batch_write_splitting(dynamodb, table_name, batch), batches))
    failed: dict[tuple[str, int], WriteFailure] = {}
    for request, failure in (pair for outcome in outcomes for pair in outcome):
        item = request["PutRequest"]["Item"]
        kit_id = item["kd"]["S"].rpartition("#")[0]
        failed[(kit_id, int(item["t"]["N"]))] = failure
    return failed


def _batch_write_splitting(client, table_name: str, requests: list[dict]) -> list[tuple[dict, WriteFailure]]:
    """Writes one batch; if DynamoDB refuses it as invalid, writes each half apart, down to the
    single item(s) it refuses, so one bad reading never keeps the others out."""
    failures = _batch_write(client, table_name, requests)
    if len(requests) == 1 or not any(failure.permanent for _, failure in failures):
        return failures
    middle = len(requests) // 2
    log.warning("DynamoDB refused a batch of %d readings; splitting it to find the one(s) it refuses", len(requests))
    return _batch_write_splitting(client, table_name, requests[:middle]) + _batch_write_splitting(
        client, table_name, requests[middle:]
    )


def raw_item(reading: StoredReading, retention_seconds: int) -> dict:
    """`reading` as the RawReading item DynamoDB stores, built directly: the bridge writes
    thousands a second, and a PynamoDB model per item cost about a tenth of its time. A test holds
    this to what `RawReading.serialize()` makes of the same reading."""
    kit_day, timestamp_ms = raw_key(reading.kit_id, reading.timestamp_ms)
    return {
        "kd": {"S": kit_day},
        "t": {"N": str(timestamp_ms)},
        # repr() is the shortest text that reads back as the same float, as PynamoDB writes it.
        "v": {"M": {sensor: {"N": repr(float(value))} for sensor, value in reading.values.items()}},
        "x": {"N": str(timestamp_ms // 1000 + retention_seconds)},
    }


def raw_item_problem(reading: StoredReading) -> str | None:
    """Why DynamoDB would refuse this reading's item (a number out of its range, or an item too
    large), or None. Checked before any write, so such a reading is refused with a clear reason."""
    for sensor, value in reading.values.items():
        problem = number_problem(value)
        if problem:
            return f"The value of {sensor} {problem}"
    size = item_size(raw_item(reading, 0))
    if size > MAX_ITEM_BYTES:
        return f"The reading would be a {size}-byte item; DynamoDB stores items of at most {MAX_ITEM_BYTES} bytes."
    return None


def number_problem(value: float) -> str | None:
    """Why DynamoDB would refuse `value` as a number (in the words of the rest of a sentence
    that names it), or None. Judged on the text we send, repr(float(value))."""
    text = repr(float(value))
    try:
        number = Decimal(text)
    except InvalidOperation:
        return f"{text} is not a number DynamoDB stores."
    if not number.is_finite():
        return f"{text} is not a finite number."
    if number == 0:
        return None
    magnitude = abs(number)
    if magnitude < NUMBER_MIN_MAGNITUDE:
        return f"{text} is too close to zero: DynamoDB stores magnitudes from 1E-130 (or exactly 0)."
    if magnitude > NUMBER_MAX_MAGNITUDE:
        return f"{text} is too large: DynamoDB stores magnitudes up to 9.99...E+125."
    if len(number.normalize().as_tuple().digits) > NUMBER_MAX_DIGITS:
        return f"{text} has more than {NUMBER_MAX_DIGITS} significant digits."
    return None


_write_units_lock = threading.Lock()
_write_units_spent = 0


def count_write_units(item: dict) -> None:
    """Adds what writing `item` costs (one unit per started KB) to this process's total."""
    global _write_units_spent
    units = write_units(item)
    with _write_units_lock:
        _write_units_spent += units


def write_units_spent() -> int:
    """The DynamoDB write units this process has spent on telemetry items since it started."""
    return _write_units_spent


def _batch_write(client, table_name: str, requests: list[dict]) -> list[tuple[dict, WriteFailure]]:
    """One batch (≤ 25 requests) written until DynamoDB has taken all of it or we give up.
    Returns the requests not written, each with the failure."""
    assert len(requests) <= BATCH_WRITE_LIMIT
    pending = requests
    attempts = settings.TELEMETRY_WRITE_MAX_ATTEMPTS
    for attempt in range(1, attempts + 1):
        try:
            response = client.batch_write_item(RequestItems={table_name: pending})
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            message = error.response.get("Error", {}).get("Message", "")
            if code in PERMANENT_ERRORS:
                failure = WriteFailure(f"DynamoDB refused the reading: {code}: {message}", permanent=True)
                return [(request, failure) for request in pending]
            if code not in RETRYABLE_ERRORS:
                failure = WriteFailure(f"DynamoDB refused the write: {code}: {message}")
                return [(request, failure) for request in pending]
            reason = f"DynamoDB kept throttling the write ({code})"
        except BotoCoreError as error:
            reason = f"DynamoDB could not be reached: {error}"
        else:
            unprocessed = response.get("UnprocessedItems", {}).get(table_name, [])
            _count_written(pending, unprocessed)
            pending = unprocessed
            if not pending:
                return []
            reason = "DynamoDB kept leaving the write unprocessed"
        if attempt < attempts:
            log.info("%d item(s) of %s not written (%s); retry %d", len(pending), table_name, reason, attempt)
            backoff_sleep(attempt)
    return [(request, WriteFailure(f"{reason} after {attempts} attempts")) for request in pending]


def _count_written(sent: list[dict], unprocessed: list[dict]) -> None:
    def key(request: dict) -> tuple[str, str]:
        item = request["PutRequest"]["Item"]
        return item["kd"]["S"], item["t"]["N"]

    left = {key(request) for request in unprocessed}
    for request in sent:
        if key(request) not in left:
            count_write_units(request["PutRequest"]["Item"])


def backoff_sleep(attempt: int) -> None:
    """Exponential backoff with full jitter, as AWS advises for unprocessed items."""
    ceiling = min(
        settings.TELEMETRY_WRITE_BACKOFF_MAX_SECONDS, settings.TELEMETRY_WRITE_BACKOFF_BASE_SECONDS * 2**attempt
    )
    time.sleep(random.uniform(0, ceiling))  # noqa: S311 (jitter, not cryptography)


def raw_day_query(
    kit_id: str,
    day_ms: int,
    start_ms: int,
    end_ms: int,
    *,
    newest_first: bool = False,
    page_size: int | None = None,
    consistent: bool = False,
) -> Iterator[StoredReading]:
    """A kit's readings of one UTC day with start_ms <= timestamp < end_ms, in time order.
    Readings past their TTL that DynamoDB has not yet deleted are left out, as AWS advises.
    `page_size` items are fetched per request; stop iterating and no further page is asked for."""
    if end_ms <= start_ms:
        return
    model = table(RawReading)
    now_s = time.time()
    try:
        results = model.query(
            f"{kit_id}#{day_name(day_ms)}",
            model.timestamp_ms.between(start_ms, end_ms - 1),
            scan_index_forward=not newest_first,
            page_size=page_size,
            consistent_read=consistent,
        )
        for item in results:
            if item.expires_at is not None and item.expires_at.timestamp() <= now_s:
                continue
            yield StoredReading(kit_id, int(item.timestamp_ms), item.values.as_dict())
    except (PynamoDBException, BotoCoreError) as error:
        raise TelemetryUnavailable(f"Could not read readings from DynamoDB: {error}") from error


# --- Rollups --------------------------------------------------------------------------------

# A rollup item's key: (kit id, period), such as ("k-1", "1h#2026-11-28").
RollupKey = tuple[str, str]


def as_plain_dict(value) -> dict:
    """A MapAttribute's content as a plain dict (PynamoDB gives a MapAttribute or a dict)."""
    if value is None:
        return {}
    return value.as_dict() if hasattr(value, "as_dict") else dict(value)


class _RollupItemCache:
    """The rollup items this process last read or saved, as DynamoDB stores them, so a writer
    that keeps refreshing the same kits (the ingest bridge) need not read them back before every
    save. Safe because every save is conditional on the item's version: a stale entry costs a
    refused save and a fresh read, never a lost update. Holds raw items, not models, so no two
    callers share a model they change. Bounded (least recently used go first) and shared by the
    bridge's threads, hence the lock."""

    def __init__(self, size: int):
        self.items: LRUCache[tuple[str, RollupKey], dict] = LRUCache(maxsize=size)
        self.lock = threading.Lock()

    def get(self, key: tuple[str, RollupKey]) -> dict | None:
        with self.lock:
            return self.items.get(key)

    def put(self, key: tuple[str, RollupKey], raw: dict) -> None:
        with self.lock:
            self.items[key] = raw

    def drop(self, key: tuple[str, RollupKey]) -> None:
        with self.lock:
            self.items.pop(key, None)


ROLLUP_CACHE_SIZE = 20_000  # two items (this day's hours, this month's days) per kit
_rollup_cache = _RollupItemCache(ROLLUP_CACHE_SIZE)


def _cache_key(key: RollupKey) -> tuple[str, RollupKey]:
    # The table prefix is part of the key: tests and benchmarks give each run its own tables.
    return (settings.DYNAMODB_TABLE_PREFIX, key)


def rollup_items_get(keys: Iterable[RollupKey], *, cached: bool = False) -> dict[RollupKey, RollupPeriod]:
    """The stored rollup items with these keys, read together (one BatchGetItem per 100 keys,
    strongly consistent), retrying unprocessed keys with backoff. With `cached`, items this
    process last read or saved are taken from memory, and may be stale: save them only with
    `rollup_item_save`, which refuses a stale item."""
    model = table(RollupPeriod)
    table_name = model.Meta.table_name
    found: dict[RollupKey, RollupPeriod] = {}
    requests = []
    for key in set(keys):
        raw = _rollup_cache.get(_cache_key(key)) if cached else None
        if raw is not None:
            found[key] = model.from_raw_data(raw)
        else:
            requests.append({"k": {"S": key[0]}, "p": {"S": key[1]}})
    for start in range(0, len(requests), BATCH_GET_LIMIT):
        pending = {table_name: {"Keys": requests[start : start + BATCH_GET_LIMIT], "ConsistentRead": True}}
        for attempt in range(1, settings.TELEMETRY_WRITE_MAX_ATTEMPTS + 1):
            try:
                response = client().batch_get_item(RequestItems=pending)
            except (BotoCoreError, ClientError) as error:
                raise TelemetryUnavailable(f"Could not read the rollups: {error}") from error
            for item in response.get("Responses", {}).get(table_name, []):
                key = (item["k"]["S"], item["p"]["S"])
                found[key] = model.from_raw_data(item)
                _rollup_cache.put(_cache_key(key), item)
            pending = response.get("UnprocessedKeys") or {}
            if not pending:
                break
            backoff_sleep(attempt)
        else:
            raise TelemetryUnavailable("DynamoDB kept leaving the rollups unread")
    return found


def rollup_item_new(key: RollupKey) -> RollupPeriod:
    return table(RollupPeriod)(key[0], key[1], sensors={})


def rollup_item_save(item: RollupPeriod) -> bool:
    """Saves `item` only if nobody saved it since it was read (a PutItem conditional on its
    version). False on a conflict or throttling: read it again and retry. Raises
    RollupNotStorable if DynamoDB refuses the item itself (too large, say), and
    TelemetryUnavailable on other failures."""
    cache_key = _cache_key((item.kit_id, item.period))
    _rollup_cache.drop(cache_key)  # until saved, what the cache holds may be out of date
    try:
        item.save()
    except PutError as error:
        code = _aws_error_code(error)
        if code in ("ConditionalCheckFailedException", *RETRYABLE_ERRORS):
            return False
        if code in PERMANENT_ERRORS:
            raise RollupNotStorable(f"DynamoDB refused the rollup item {item.kit_id} {item.period}: {error}") from error
        raise TelemetryUnavailable(f"Could not save the rollups: {error}") from error
    except BotoCoreError as error:
        raise TelemetryUnavailable(f"Could not save the rollups: {error}") from error
    saved = item.serialize()
    count_write_units(saved)
    _rollup_cache.put(cache_key, saved)  # with the version the save gave it
    return True


def _aws_error_code(error: PynamoDBException) -> str | None:
    # Not pynamodb's cause_response_code: it raises AttributeError when the cause carries no
    # response at all, as when the connection drops mid-request.
    response = getattr(error.cause, "response", None) or {}
    return (response.get("Error") or {}).get("Code")


def rollup_periods_get(
    keys: Iterable[tuple[str, str]], *, consistent: bool = False
) -> dict[tuple[str, str], RollupPeriod]:
    """The stored rollup items with these (kit id, period) keys."""
    model = table(RollupPeriod)
    try:
        items = model.batch_get(list(set(keys)), consistent_read=consistent)
        return {(item.kit_id, item.period): item for item in items}
    except (PynamoDBException, BotoCoreError) as error:
        raise TelemetryUnavailable(f"Could not read rollups from DynamoDB: {error}") from error
