"""readings_write and rollups_refresh against the real local DynamoDB (moto_server): storage,
idempotency, rollups, batching, DynamoDB's own limits, and what happens when DynamoDB leaves
items unprocessed, throttles or refuses an item."""

import math
import threading
from datetime import timedelta

import pytest
from botocore.awsrequest import AWSResponse

from kits.models import Kit
from telemetry import dynamodb, models, selectors
from telemetry.exceptions import ReadingsNotStored
from telemetry.kit_state import RollupMark
from telemetry.services import Reading, readings_write, rollups_refresh, rollups_refresh_all
from telemetry.timebuckets import HOUR_MS, Resolution, day_name, from_ms, to_ms

from .conftest import minutely

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

KIT = Kit(id="k-test")  # selectors take a kit the caller may see; the kit registry is not involved here


def raw_timestamps(start, end):
    page = selectors.readings_range(
        kit=KIT, start_ms=to_ms(start), end_ms=to_ms(end), resolution=Resolution.RAW, page_size=10_000
    )
    return [point.timestamp_ms for point in page.series.get("temperature", [])]


def refreshed():
    """Brings every rollup up to date now, as the bridge does a few minutes after a write."""
    summary = rollups_refresh_all()
    assert summary.failed == 0 and not RollupMark.objects.exists()
    return summary


def stored_hour_counts(kit_id, day_start, sensor="temperature"):
    """The hourly counts DynamoDB holds for one kit's day (not the ones readers overlay)."""
    from telemetry.timebuckets import slots_decode

    period = f"1h#{day_start:%Y-%m-%d}"
    item = dynamodb.rollup_periods_get([(kit_id, period)], consistent=True).get((kit_id, period))
    if item is None:
        return {}
    text = dynamodb.as_plain_dict(item.sensors).get(sensor)
    return {slot: stats.count for slot, stats in slots_decode(text).items()} if text else {}


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


def test_the_same_reading_written_twice_stays_one_reading_counted_once(telemetry_tables, two_days_ago):
    # given an hour of readings, stored and rolled up
    readings = minutely("k-test", two_days_ago, 60)
    readings_write(readings=readings)
    refreshed()

    # when ten of them are delivered again (an MQTT QoS 1 redelivery)
    summary = readings_write(readings=readings[20:30])
    refreshed()

    # then the history has each reading once and the hour, recounted, counts 60
    assert summary.stored == 10
    assert len(raw_timestamps(two_days_ago, two_days_ago + timedelta(hours=1))) == 60
    assert stored_hour_counts("k-test", two_days_ago) == {0: 60}
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
        self.client = dynamodb.client()
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
    client = dynamodb.client()
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

    item = dynamodb.table(models.RawReading).get(f"k-test#{two_days_ago:%Y-%m-%d}", to_ms(two_days_ago))
    assert item.expires_at == two_days_ago + timedelta(days=30)


def test_raw_items_are_what_the_pynamodb_model_would_store(settings):
    # given readings with values of every shape a float takes in text
    settings.TELEMETRY_RAW_RETENTION_DAYS = 30
    reading = dynamodb.StoredReading(
        "k-test", 1_764_400_000_123, {"a": 21.5, "b": 420.0, "c": 1e-7, "d": -3e20, "e": 0.0}
    )

    # when it is built directly, as the write path does
    item = dynamodb.raw_item(reading, retention_seconds=30 * 86400)

    # then it is exactly what PynamoDB makes of the same reading
    model = dynamodb.table(models.RawReading)
    expires_at = from_ms(reading.timestamp_ms) + timedelta(days=30)
    expected = model(
        f"k-test#{day_name(reading.timestamp_ms)}", reading.timestamp_ms, values=reading.values, expires_at=expires_at
    ).serialize()
    assert item == expected


def test_a_refresh_racing_another_writer_loses_no_reading(telemetry_tables, two_days_ago, dynamodb_calls):
    # given half an hour of readings, marked for a rollup refresh
    ours, theirs = minutely("k-test", two_days_ago, 60)[:30], minutely("k-test", two_days_ago, 60)[30:]
    readings_write(readings=ours)
    interrupted = []

    def competing_writer(**kwargs):
        # another bridge stores the next half-hour and refreshes it, just before our save
        if not interrupted:
            interrupted.append(True)
            readings_write(readings=theirs)
            rollups_refresh_all()

    dynamodb.client().meta.events.register("before-call.dynamodb.PutItem", competing_writer)
    try:
        # when our refresh saves the hour it counted before their readings were stored
        rollups_refresh(everything=True)
    finally:
        dynamodb.client().meta.events.unregister("before-call.dynamodb.PutItem", competing_writer)

    # then our save was refused (their item is newer), our refresh counted again, and each of
    # the 60 readings is counted once in the hour and in the day
    assert interrupted
    refreshed()
    assert stored_hour_counts("k-test", two_days_ago) == {0: 60}
    (day,) = selectors.rollups_range(
        kit=KIT, start_ms=to_ms(two_days_ago), end_ms=to_ms(two_days_ago) + HOUR_MS, resolution=Resolution.DAY
    )["temperature"]
    assert day.count == 60


def test_a_reading_stored_while_its_hour_is_refreshed_keeps_the_hour_marked(telemetry_tables, two_days_ago):
    # given an hour with readings, marked
    readings = minutely("k-test", two_days_ago, 20)
    readings_write(readings=readings[:10])
    written_meanwhile = []

    def writer_during_refresh(**kwargs):
        # a reading of the same hour arrives after the refresh has counted the hour
        if not written_meanwhile:
            written_meanwhile.append(True)
            readings_write(readings=readings[10:])

    dynamodb.client().meta.events.register("before-call.dynamodb.PutItem", writer_during_refresh)
    try:
        summary = rollups_refresh(everything=True)
    finally:
        dynamodb.client().meta.events.unregister("before-call.dynamodb.PutItem", writer_during_refresh)

    # then the refresh saved what it counted, but left the hour marked: the new readings are
    # counted by the next refresh, not lost
    assert summary.hours == 1
    assert stored_hour_counts("k-test", two_days_ago) == {0: 10}
    assert RollupMark.objects.filter(kind=RollupMark.HOUR).exists()
    refreshed()
    assert stored_hour_counts("k-test", two_days_ago) == {0: 20}


def test_rollups_follow_the_delay_and_readers_count_what_is_not_refreshed_yet(
    telemetry_tables, two_days_ago, settings, dynamodb_calls
):
    # given a refresh delay of five minutes
    settings.TELEMETRY_ROLLUP_DELAY_SECONDS = 300

    # when a kit's readings are written, one call per message as a fleet sends them
    for reading in minutely("k-test", two_days_ago, 5):
        readings_write(readings=[reading])

    # then each call wrote one raw item and no rollup, nothing is due yet, and readers still see
    # every reading in the hourly and daily buckets (counted from the raw readings)
    puts = [name for name, _ in dynamodb_calls if name in ("PutItem", "BatchWriteItem")]
    assert puts == ["BatchWriteItem"] * 5
    assert rollups_refresh().hours == 0
    assert stored_hour_counts("k-test", two_days_ago) == {}
    assert hour_point(two_days_ago).count == 5
    (day,) = selectors.rollups_range(
        kit=KIT, start_ms=to_ms(two_days_ago), end_ms=to_ms(two_days_ago) + HOUR_MS, resolution=Resolution.DAY
    )["temperature"]
    assert day.count == 5

    # and once refreshed, the hour and its (past) day are written once for all five readings
    dynamodb_calls.clear()
    refreshed()
    assert [name for name, _ in dynamodb_calls if name == "PutItem"] == ["PutItem", "PutItem"]
    assert stored_hour_counts("k-test", two_days_ago) == {0: 5}


def test_latest_values_never_go_back_in_time(telemetry_tables, two_days_ago):
    # given a kit's newer reading, stored
    older, newer = minutely("k-test", two_days_ago, 2)
    readings_write(readings=[newer])

    # when an older one arrives late (redelivered, or through another bridge)
    readings_write(readings=[older])

    # then the latest values are still the newer reading's; the history has both
    assert latest_of(KIT) == to_ms(newer.timestamp)
    assert len(raw_timestamps(two_days_ago, two_days_ago + timedelta(hours=1))) == 2


def latest_of(kit):
    return selectors.readings_latest(kit=kit)["temperature"][0].timestamp_ms


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        (0.0, True),
        (-0.0, True),
        (1e-130, True),
        (-1e-130, True),
        (9.9e125, True),
        (1e-131, False),
        (5e-324, False),  # the smallest float there is
        (1e126, False),
        (-1.7976931348623157e308, False),  # the largest
    ],
)
def test_numbers_are_held_to_dynamodbs_own_limits(telemetry_tables, two_days_ago, value, stored):
    reading = Reading("k-test", two_days_ago, {"temperature": value})

    if stored:
        readings_write(readings=[reading])
        assert selectors.readings_latest(kit=KIT)["temperature"][0].value == value
    else:
        with pytest.raises(ReadingsNotStored) as raised:
            readings_write(readings=[reading])
        (failure,) = raised.value.failed
        assert failure.permanent and "DynamoDB stores magnitudes" in failure.reason


def test_a_reading_dynamodb_refuses_for_an_unforeseen_reason_is_found_and_the_rest_stored(
    telemetry_tables, two_days_ago, monkeypatch, dynamodb_calls
):
    # given our own check of DynamoDB's limits misses something (here: switched off), and one
    # reading in the middle of a batch carries a number DynamoDB refuses
    monkeypatch.setattr(dynamodb, "raw_item_problem", lambda reading: None)
    readings = minutely("k-test", two_days_ago, 30)
    readings[17] = Reading("k-test", readings[17].timestamp, {"temperature": 1e-200})

    # when the batch is written
    with pytest.raises(ReadingsNotStored) as raised:
        readings_write(readings=readings)

    # then DynamoDB's refusal was narrowed down to that reading alone, permanently failed with
    # DynamoDB's own reason, and every other reading is stored
    (failure,) = raised.value.failed
    assert failure.reading == readings[17]
    assert failure.permanent and "ValidationException" in failure.reason
    assert raised.value.stored == 29
    stored = raw_timestamps(two_days_ago, two_days_ago + timedelta(hours=1))
    assert stored == [to_ms(r.timestamp) for i, r in enumerate(readings) if i != 17]
    batch_sizes = [
        len(items)
        for name, params in dynamodb_calls
        if name == "BatchWriteItem"
        for items in params["RequestItems"].values()
    ]
    assert max(batch_sizes) == 25 and 1 in batch_sizes  # split down to the one item


def test_a_missing_table_is_a_transient_failure_not_a_refused_reading(telemetry_tables, two_days_ago):
    from django.test import override_settings

    # given the table prefix names tables that do not exist (a misconfigured bridge)
    with override_settings(DYNAMODB_TABLE_PREFIX="nowhere-"), pytest.raises(ReadingsNotStored) as raised:
        readings_write(readings=minutely("k-test", two_days_ago, 2))

    # then no reading is refused for good: the bridge retries them, it does not dead-letter them
    assert raised.value.failed and not any(failure.permanent for failure in raised.value.failed)
    assert "ResourceNotFoundException" in raised.value.failed[0].reason


def _drop_puts_to(table_suffix: str):
    """A botocore hook that cuts the connection of every PutItem into the table whose name ends
    with `table_suffix`, as when DynamoDB goes away mid-write."""
    from botocore.exceptions import ConnectionClosedError

    def drop(params, **kwargs):
        if params["TableName"].endswith(table_suffix):
            raise ConnectionClosedError(endpoint_url="http://127.0.0.1/")

    return drop


def test_a_connection_dropped_while_saving_rollups_leaves_them_marked_for_a_retry(telemetry_tables, two_days_ago):
    # given readings written, and DynamoDB cut off while their rollups are saved
    readings_write(readings=minutely("tx-kit", two_days_ago, 3))
    drop = _drop_puts_to("telemetry-rollups")
    client = dynamodb.client()
    client.meta.events.register("provide-client-params.dynamodb.PutItem", drop)
    try:
        summary = rollups_refresh(everything=True)
    finally:
        client.meta.events.unregister("provide-client-params.dynamodb.PutItem", drop)

    # then the refresh says it failed, keeps the marks (the day's waits for its hour), and a
    # later one completes the rollups
    assert (summary.failed, summary.days) == (1, 0) and RollupMark.objects.count() == 2
    RollupMark.objects.update(due_ms=0)  # due now, rather than in the few seconds a retry waits
    summary = rollups_refresh()
    assert (summary.hours, summary.days) == (1, 1)
    assert stored_hour_counts("tx-kit", two_days_ago) == {0: 3}


def test_a_batch_stored_but_cut_off_before_its_marks_is_counted_once_when_retried(telemetry_tables, two_days_ago):
    # given minutes 0-19 written, and a write of minutes 30-39 that stopped after its raw
    # readings were stored, before the database took its latest values and marks (a bridge
    # killed mid-batch: its messages stay unacknowledged)
    readings = minutely("k-test", two_days_ago, 40)
    readings_write(readings=readings[:20])
    dynamodb.raw_items_put(
        [dynamodb.StoredReading("k-test", to_ms(r.timestamp), dict(r.values)) for r in readings[30:40]]
    )

    # when the broker delivers the stopped write's messages again, with a redelivery of minute 5
    readings_write(readings=[readings[5], *readings[30:40]])
    refreshed()

    # then the hour counts each of the 30 minutes once, and the latest value is minute 39's
    assert stored_hour_counts("k-test", two_days_ago) == {0: 30}
    assert latest_of(KIT) == to_ms(readings[39].timestamp)
