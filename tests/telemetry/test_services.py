"""readings_write against the real local DynamoDB (moto_server): storage, idempotency, rollups,
batching, and what happens when DynamoDB leaves items unprocessed or throttles."""

import math
import threading
from datetime import timedelta

import pytest
from botocore.awsrequest import AWSResponse

from kits.models import Kit
from telemetry import models, selectors
from telemetry.exceptions import ReadingsNotStored
from telemetry.services import Reading, readings_write
from telemetry.timebuckets import HOUR_MS, Resolution, day_name, from_ms, to_ms

from .conftest import minutely

pytestmark = pytest.mark.integration

KIT = Kit(id="k-test")  # selectors take a kit the caller may see; the kit registry is not involved here


def raw_timestamps(start, end):
    page = selectors.readings_range(
        kit=KIT, start_ms=to_ms(start), end_ms=to_ms(end), resolution=Resolution.RAW, page_size=10_000
    )
    return [point.timestamp_ms for point in page.series.get("temperature", [])]


def hour_point(start, sensor="temperature"):
    series = selectors.rollups_range(
        kit=KIT, start_ms=to_ms(start), end_ms=to_ms(start) + HOUR_MS, resolution=Resolution.HOUR
    )
    (point,) = series[sensor]
    return point


def test_written_readings_are_the_latest_and_the_history(telemetry_tables, two_days_ago):
    # given three readings, the last one without humidity
    readings = minutely("k-test", two_days_ago, 3)
    readings[2] = Reading("k-test", readings[2].timestamp, {"temperature": 25.0})

    # when they are written
    summary = readings_write(readings=readings)

    # then all are stored, the latest of each sensor is its own newest value, and the history has all
    assert summary.stored == 3
    latest = selectors.readings_latest(kit=KIT)
    assert [(p.timestamp_ms, p.value) for p in latest["temperature"]] == [(to_ms(readings[2].timestamp), 25.0)]
    assert [(p.timestamp_ms, p.value) for p in latest["humidity"]] == [(to_ms(readings[1].timestamp), 50.0)]
    assert raw_timestamps(two_days_ago, two_days_ago + timedelta(hours=1)) == [to_ms(r.timestamp) for r in readings]


def test_the_same_reading_written_twice_stays_one_reading_counted_once(telemetry_tables, two_days_ago, dynamodb_calls):
    # given an hour of readings, stored
    readings = minutely("k-test", two_days_ago, 60)
    readings_write(readings=readings)
    dynamodb_calls.clear()

    # when ten of them are delivered again (an MQTT QoS 1 redelivery)
    summary = readings_write(readings=readings[20:30])

    # then nothing is written again, the history has each reading once and the hour counts 60
    assert summary.unchanged == 10
    assert not [name for name, _ in dynamodb_calls if name in ("BatchWriteItem", "PutItem")]
    assert len(raw_timestamps(two_days_ago, two_days_ago + timedelta(hours=1))) == 60
    point = hour_point(two_days_ago)
    assert point.count == 60
    assert point.minimum == 20.0 and point.maximum == 25.9


def test_a_reading_written_again_with_new_values_replaces_the_old_one(telemetry_tables, two_days_ago):
    # given an hour of readings, stored
    readings = minutely("k-test", two_days_ago, 60)
    readings_write(readings=readings)

    # when the hottest one is written again with a lower temperature
    readings_write(readings=[Reading("k-test", readings[59].timestamp, {"temperature": 10.0, "humidity": 50.0})])

    # then it is still one reading, with the new value, and the hour's rollup is counted afresh
    assert len(raw_timestamps(two_days_ago, two_days_ago + timedelta(hours=1))) == 60
    point = hour_point(two_days_ago)
    assert point.count == 60
    assert point.minimum == 10.0 and point.maximum == 25.8
    expected_mean = (sum(r.values["temperature"] for r in readings[:59]) + 10.0) / 60
    assert math.isclose(point.value, expected_mean)


def test_rollups_per_hour_and_per_day_hold_count_sum_min_max(telemetry_tables, two_days_ago):
    # given two hours of readings on one day and one reading on the next, written in two calls
    first_day = minutely("k-test", two_days_ago, 120)
    next_day = [Reading("k-test", two_days_ago + timedelta(days=1, hours=5), {"temperature": 30.0})]
    readings_write(readings=first_day[:90])
    readings_write(readings=first_day[90:] + next_day)

    # when the hourly and daily rollups are read
    start, end = to_ms(two_days_ago), to_ms(two_days_ago + timedelta(days=2))
    hourly = selectors.rollups_range(kit=KIT, start_ms=start, end_ms=end, resolution=Resolution.HOUR)["temperature"]
    daily = selectors.rollups_range(kit=KIT, start_ms=start, end_ms=end, resolution=Resolution.DAY)["temperature"]

    # then each bucket has its readings' statistics
    temperatures = [r.values["temperature"] for r in first_day]
    assert [(p.timestamp_ms - start, p.count) for p in hourly] == [(0, 60), (HOUR_MS, 60), (29 * HOUR_MS, 1)]
    assert (hourly[1].minimum, hourly[1].maximum) == (26.0, 31.9)
    assert math.isclose(hourly[0].value, sum(temperatures[:60]) / 60)
    assert [(p.timestamp_ms - start, p.count) for p in daily] == [(0, 120), (24 * HOUR_MS, 1)]
    assert math.isclose(daily[0].value, sum(temperatures) / 120)
    assert (daily[0].minimum, daily[0].maximum, daily[1].value) == (20.0, 31.9, 30.0)


def test_raw_readings_go_in_batches_of_at_most_25(telemetry_tables, two_days_ago, dynamodb_calls):
    # when 130 readings are written in one call
    readings_write(readings=minutely("k-test", two_days_ago, 130))

    # then DynamoDB got them in batches of at most 25 (moto would take more; AWS would not)
    batches = [
        len(items)
        for name, params in dynamodb_calls
        if name == "BatchWriteItem"
        for items in params["RequestItems"].values()
    ]
    assert batches == [25, 25, 25, 25, 25, 5]


class UnprocessedItemsInjector:
    """Makes the real client's BatchWriteItem calls leave their last `per_call` items unwritten and
    hand them back as UnprocessedItems, as DynamoDB does under load, for the first `calls` calls."""

    def __init__(self, per_call: int, calls: int):
        self.per_call, self.calls = per_call, calls
        self.client = models.client()
        self.lock = threading.Lock()
        self.call = threading.local()  # batches go out from several threads at once

    def hold_back(self, params, **kwargs):
        with self.lock:
            inject = self.calls > 0
            self.calls -= 1
        self.call.held_back = []
        if not inject:
            return
        ((table_name, requests),) = params["RequestItems"].items()
        self.call.held_back = requests[-self.per_call :]
        params["RequestItems"] = {table_name: requests[: -self.per_call]}  # these are really not sent
        self.call.table_name = table_name

    def hand_back(self, parsed, **kwargs):
        if getattr(self.call, "held_back", None):
            parsed["UnprocessedItems"] = {self.call.table_name: self.call.held_back}

    def __enter__(self):
        self.client.meta.events.register("provide-client-params.dynamodb.BatchWriteItem", self.hold_back)
        self.client.meta.events.register("after-call.dynamodb.BatchWriteItem", self.hand_back)
        return self

    def __exit__(self, *exc):
        self.client.meta.events.unregister("provide-client-params.dynamodb.BatchWriteItem", self.hold_back)
        self.client.meta.events.unregister("after-call.dynamodb.BatchWriteItem", self.hand_back)


def test_a_batch_with_unprocessed_items_still_ends_fully_written(telemetry_tables, two_days_ago, dynamodb_calls):
    # given DynamoDB leaves 10 items unprocessed on each of the first 4 batch writes
    readings = minutely("k-test", two_days_ago, 60)
    with UnprocessedItemsInjector(per_call=10, calls=4):
        # when an hour of readings is written
        summary = readings_write(readings=readings)

    # then the unprocessed items were sent again until every reading was stored and counted
    assert summary.stored == 60
    assert sum(1 for name, _ in dynamodb_calls if name == "BatchWriteItem") > 3
    assert raw_timestamps(two_days_ago, two_days_ago + timedelta(hours=1)) == [to_ms(r.timestamp) for r in readings]
    assert hour_point(two_days_ago).count == 60


def test_readings_that_stay_unprocessed_are_reported_and_the_rest_stored(telemetry_tables, two_days_ago, settings):
    # given DynamoDB never processes the last 5 items of a batch, and three attempts are allowed
    settings.TELEMETRY_WRITE_MAX_ATTEMPTS = 3
    readings = minutely("k-test", two_days_ago, 20)
    with UnprocessedItemsInjector(per_call=5, calls=1_000), pytest.raises(ReadingsNotStored) as raised:
        readings_write(readings=readings)

    # then the caller learns exactly which readings failed, and why; the others are stored
    failed = raised.value.failed
    assert [f.reading for f in failed] == readings[15:]
    assert all("unprocessed after 3 attempts" in f.reason for f in failed)
    assert raised.value.stored == 15
    assert raw_timestamps(two_days_ago, two_days_ago + timedelta(hours=1)) == [
        to_ms(r.timestamp) for r in readings[:15]
    ]
    assert hour_point(two_days_ago).count == 15

    # and writing them again once DynamoDB recovers completes the hour, counted once each
    readings_write(readings=readings)
    assert hour_point(two_days_ago).count == 20


def test_throttled_batch_writes_are_retried_with_backoff(telemetry_tables, two_days_ago):
    # given DynamoDB throttles the first two batch writes
    client = models.client()
    throttles = [2]

    def throttle(**kwargs):
        if throttles[0] > 0:
            throttles[0] -= 1
            body = {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "Slow down"}}
            return AWSResponse("http://dynamodb", 400, {}, None), body
        return None

    client.meta.events.register("before-call.dynamodb.BatchWriteItem", throttle)
    try:
        # when readings are written
        summary = readings_write(readings=minutely("k-test", two_days_ago, 30))
    finally:
        client.meta.events.unregister("before-call.dynamodb.BatchWriteItem", throttle)

    # then they are all stored in the end
    assert throttles == [0]
    assert summary.stored == 30
    assert len(raw_timestamps(two_days_ago, two_days_ago + timedelta(hours=1))) == 30


def test_invalid_readings_are_refused_with_reasons_and_valid_ones_stored(telemetry_tables, two_days_ago):
    good = Reading("k-test", two_days_ago, {"temperature": 21.0})
    future = Reading("k-test", two_days_ago + timedelta(days=30), {"temperature": 21.0})
    not_a_number = Reading("k-test", two_days_ago + timedelta(minutes=1), {"temperature": float("nan")})
    bad_sensor = Reading("k-test", two_days_ago + timedelta(minutes=2), {"Temp C": 21.0})
    no_zone = Reading("k-test", two_days_ago.replace(tzinfo=None), {"temperature": 21.0})
    too_old = Reading("k-test", two_days_ago - timedelta(days=500), {"temperature": 21.0})

    with pytest.raises(ReadingsNotStored) as raised:
        readings_write(readings=[good, future, not_a_number, bad_sensor, no_zone, too_old])

    failed = raised.value.failed
    assert [f.reading for f in failed] == [future, not_a_number, bad_sensor, no_zone, too_old]
    reasons = [f.reason for f in failed]
    assert "in the future" in reasons[0]
    assert "finite number" in reasons[1]
    assert "not a sensor key" in reasons[2]
    assert "timezone-aware" in reasons[3]
    assert "older than" in reasons[4]
    assert raw_timestamps(two_days_ago, two_days_ago + timedelta(hours=1)) == [to_ms(good.timestamp)]


def test_raw_readings_carry_a_ttl_from_the_retention_setting(telemetry_tables, two_days_ago, settings):
    settings.TELEMETRY_RAW_RETENTION_DAYS = 30
    readings_write(readings=minutely("k-test", two_days_ago, 1))

    item = models.table(models.RawReading).get(f"k-test#{two_days_ago:%Y-%m-%d}", to_ms(two_days_ago))
    assert item.expires_at == two_days_ago + timedelta(days=30)


def test_a_concurrent_writer_of_the_same_kit_loses_no_update(telemetry_tables, two_days_ago, dynamodb_calls):
    # given another writer stores the second half-hour of readings just before our write saves
    # the latest state and rollups it read a moment earlier
    ours, theirs = minutely("k-test", two_days_ago, 60)[:30], minutely("k-test", two_days_ago, 60)[30:]
    interrupted = []

    def competing_write(**kwargs):
        if not interrupted:
            interrupted.append(True)
            readings_write(readings=theirs)

    models.client().meta.events.register("before-call.dynamodb.PutItem", competing_write)
    try:
        # when we write the first half-hour
        readings_write(readings=ours)
    finally:
        models.client().meta.events.unregister("before-call.dynamodb.PutItem", competing_write)

    # then our latest-state save was refused, and our write started over from a fresh read: the
    # latest state (theirs is newer) needed no change, and the hour and the day, recounted, count
    # all 60
    assert interrupted
    puts = [params["TableName"].rpartition("telemetry-")[2] for name, params in dynamodb_calls if name == "PutItem"]
    assert puts == [
        "latest",  # ours, refused
        *("latest", "rollups", "rollups"),  # theirs
        *("rollups", "rollups"),  # ours, from the fresh read
    ]
    assert hour_point(two_days_ago).count == 60
    (day,) = selectors.rollups_range(
        kit=KIT, start_ms=to_ms(two_days_ago), end_ms=to_ms(two_days_ago) + HOUR_MS, resolution=Resolution.DAY
    )["temperature"]
    assert day.count == 60
    latest = selectors.readings_latest(kit=KIT)
    assert latest["temperature"][0].timestamp_ms == to_ms(theirs[-1].timestamp)


def _drop_puts_to(table_suffix: str):
    """A botocore hook that cuts the connection of every PutItem into the table whose name ends
    with `table_suffix`, as when DynamoDB goes away mid-write."""
    from botocore.exceptions import ConnectionClosedError

    def drop(params, **kwargs):
        if params["TableName"].endswith(table_suffix):
            raise ConnectionClosedError(endpoint_url="http://127.0.0.1/")

    return drop


def test_a_connection_dropped_while_saving_rollups_is_a_transient_failure(telemetry_tables, two_days_ago):
    """Found by the end-to-end test: DynamoDB cut off while the latest state and rollups are
    saved must read as 'unavailable, try again', never crash the caller."""
    from telemetry.exceptions import TelemetryUnavailable

    drop = _drop_puts_to("telemetry-latest")
    client = models.client()
    client.meta.events.register("provide-client-params.dynamodb.PutItem", drop)
    try:
        with pytest.raises((TelemetryUnavailable, ReadingsNotStored)):
            readings_write(readings=minutely("tx-kit", two_days_ago, 3))
    finally:
        client.meta.events.unregister("provide-client-params.dynamodb.PutItem", drop)

    summary = readings_write(readings=minutely("tx-kit", two_days_ago, 3))  # DynamoDB is back
    assert summary.stored == 3


def test_a_write_cut_off_between_latest_state_and_rollups_counts_each_reading_once_on_retry(
    telemetry_tables, two_days_ago
):
    # given a write whose raw readings and latest state were saved, but not its rollups
    # (DynamoDB went away between the two)
    first, second = minutely("k-test", two_days_ago, 40)[:20], minutely("k-test", two_days_ago, 40)[20:]
    readings_write(readings=first)
    drop = _drop_puts_to("telemetry-rollups")
    models.client().meta.events.register("provide-client-params.dynamodb.PutItem", drop)
    try:
        with pytest.raises(ReadingsNotStored) as raised:
            readings_write(readings=second)
    finally:
        models.client().meta.events.unregister("provide-client-params.dynamodb.PutItem", drop)
    assert "could not be updated" in raised.value.failed[0].reason
    assert selectors.readings_latest(kit=KIT)["temperature"][0].timestamp_ms == to_ms(second[-1].timestamp)
    assert hour_point(two_days_ago).count == 20  # the rollups missed the second write

    # when the same readings are written again, as the ingest bridge does with a failed batch
    readings_write(readings=second)

    # then the hour is recounted from the raw readings: each of the 40 counted once
    point = hour_point(two_days_ago)
    assert point.count == 40
    assert point.minimum == 20.0 and point.maximum == pytest.approx(23.9)


def test_raw_items_are_what_the_pynamodb_model_would_store(settings):
    # given readings with values of every shape a float takes in text
    settings.TELEMETRY_RAW_RETENTION_DAYS = 30
    reading = models.StoredReading(
        "k-test", 1_764_400_000_123, {"a": 21.5, "b": 420.0, "c": 1e-7, "d": -3e20, "e": 0.0}
    )

    # when it is built directly, as the write path does
    item = models.raw_item(reading, retention_seconds=30 * 86400)

    # then it is exactly what PynamoDB makes of the same reading
    model = models.table(models.RawReading)
    expires_at = from_ms(reading.timestamp_ms) + timedelta(days=30)
    expected = model(
        f"k-test#{day_name(reading.timestamp_ms)}", reading.timestamp_ms, values=reading.values, expires_at=expires_at
    ).serialize()
    assert item == expected


def test_a_writer_that_keeps_writing_a_kit_does_not_read_its_state_back(telemetry_tables, two_days_ago, dynamodb_calls):
    # given a kit's first ten minutes written by this process
    readings = minutely("k-test", two_days_ago, 20)
    readings_write(readings=readings[:10])
    dynamodb_calls.clear()

    # when the next ten minutes are written
    readings_write(readings=readings[10:])

    # then the latest state and rollups came from what this process saved, not from DynamoDB,
    # and are right
    assert [name for name, _ in dynamodb_calls if name in ("BatchGetItem", "GetItem", "Query")] == []
    assert hour_point(two_days_ago).count == 20


def test_a_kit_written_meanwhile_by_another_process_is_counted_right(
    telemetry_tables, two_days_ago, dynamodb_calls, monkeypatch
):
    # given this process wrote minutes 0-9 and remembers the kit's state as of then
    readings = minutely("k-test", two_days_ago, 30)
    readings_write(readings=readings[:10])
    ours = models._derived_cache

    # and another process (with its own memory) wrote minutes 10-19 since
    monkeypatch.setattr(models, "_derived_cache", models._DerivedItemCache(size=100))
    readings_write(readings=readings[10:20])
    monkeypatch.setattr(models, "_derived_cache", ours)
    dynamodb_calls.clear()

    # when this process gets minutes 10-19 again (a redelivery) with the new minutes 20-29
    summary = readings_write(readings=readings[10:])

    # then its remembered state was refused, it read the kit afresh, and each minute counts once
    assert summary.stored == 20
    state_reads = [
        params
        for name, params in dynamodb_calls
        if name == "BatchGetItem" and any(table.endswith("telemetry-latest") for table in params["RequestItems"])
    ]
    assert len(state_reads) == 1  # the fresh read
    point = hour_point(two_days_ago)
    assert point.count == 30
    assert latest_of(KIT) == to_ms(readings[-1].timestamp)


def latest_of(kit):
    return selectors.readings_latest(kit=kit)["temperature"][0].timestamp_ms


def test_raw_readings_of_a_write_that_stopped_before_its_latest_state_are_counted_once(telemetry_tables, two_days_ago):
    # given minutes 0-19 written, and a write of minutes 30-39 that stopped after its raw
    # readings were stored, before the latest state (a bridge killed mid-batch)
    readings = minutely("k-test", two_days_ago, 40)
    readings_write(readings=readings[:20])
    models.raw_items_put([models.StoredReading("k-test", to_ms(r.timestamp), dict(r.values)) for r in readings[30:40]])

    # when minute 5 is delivered again, so its hour is recounted, and then the stopped write is
    # retried (the broker delivers its unacknowledged messages again)
    readings_write(readings=[readings[5]])
    readings_write(readings=readings[30:40])

    # then the hour counts each of the 30 minutes once
    assert hour_point(two_days_ago).count == 30
