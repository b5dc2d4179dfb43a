"""Telemetry benchmark: the four figures of the telemetry issue, each a ratio against a baseline
measured in the same run, against a real local DynamoDB (a moto_server this script starts).

    .venv/bin/python benchmarks/telemetry_bench.py [--year-days 365] [--big-kit 100000]

1. Write throughput of readings_write against raw batch_write_item calls with the same items.
2. DynamoDB write units per reading (one sensor value) for a kit with four sensors reporting
   every minute, counting every item the write path writes (raw readings, rollups) at one unit
   per started KB, as DynamoDB bills them. Live: each call is made (on a simulated clock) a
   second after its newest message and followed by the bridge's rollup refresh, so rollups are
   saved as often as TELEMETRY_ROLLUP_DELAY_SECONDS lets them be; backlog: a kit's day drained at
   once, 100 messages per call.
3. GET /kits/{id}/data latency for a kit with 100,000 readings against one with 100.
4. One year of one-minute readings: the resolution=auto response's points per series, and its
   latency against the latest-data call of the same kit.

Latencies are medians of requests through Django's test client (the whole view: permission
check, SQL, DynamoDB, JSON), interleaved so both sides see the same machine.

The last line of the output is one JSON object of the figures (N is the messages per
readings_write call): 1. `write_msg_per_s_per_call_N`, `raw_msg_per_s_per_call_N` and
`write_over_raw_ratio_per_call_N` for N in 1440, 60, 1; 2. `write_units_per_reading_per_call_N`
for N in 1440, 60, 15, 5, 1 (live), `write_units_per_reading_backlog`, and the seed layout's
computed `seed_write_units_per_reading`, `seed_write_units_per_message_day_end`, `seed_messages_to_400kb`;
3. `latest_big_ms`,
`latest_small_ms`, `latest_big_over_small_ratio`, and the same for `last100_`; 4.
`auto_resolution`, `auto_points_per_series`, `auto_ms`, `auto_latest_ms`, `auto_over_latest_ratio`;
with the run's `year_days`, `big_kit_messages`, `rounds` and the seconds its histories took to
write (`big_kit_write_s`, `year_write_s`).
"""

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.figures import figures_print  # noqa: E402
from localdev.moto import MotoServer  # noqa: E402
from telemetry.dynamodb_sizes import item_size, value_size, write_units  # noqa: E402 (pure: no Django)

SENSOR_COUNT = 4


class WriteUnitMeter:
    """Counts the write units of every item sent to DynamoDB by the telemetry client."""

    def __init__(self, client):
        self.client, self.units, self.items = client, 0, 0

    def count(self, model, params, **kwargs):
        if model.name == "BatchWriteItem":
            for requests in params["RequestItems"].values():
                for request in requests:
                    self.add(request["PutRequest"]["Item"])
        elif model.name == "PutItem":
            self.add(params["Item"])
        elif model.name == "TransactWriteItems":
            for entry in params["TransactItems"]:
                self.add(entry["Put"]["Item"], factor=2)
        elif model.name in ("UpdateItem", "DeleteItem"):
            raise AssertionError(f"{model.name} is not counted here: add it")

    def add(self, item, factor=1):
        self.units += factor * write_units(item)
        self.items += 1

    def __enter__(self):
        self.client.meta.events.register("provide-client-params.dynamodb.*", self.count)
        return self

    def __exit__(self, *exc):
        self.client.meta.events.unregister("provide-client-params.dynamodb.*", self.count)


def seed_layout_units(readings) -> tuple[float, float, int | None]:
    """The seed's layout (one item per kit holding every reading, rewritten on each message),
    computed with the same size rules for these readings, not written: write units per reading
    over the first day, per message at the end of it, and the message whose item passes 400 KB."""
    details = {"M": {"id": {"S": "k"}, "ip": {"S": "192.0.2.1"}, "admin": {"S": "a@example.org"}}}
    size_fixed = item_size({"id": {"S": "k"}, "details": details}) + len("data") + 3
    size_data: dict[str, int] = {}
    day_units = day_values = last_units = 0
    for index, reading in enumerate(readings):
        for sensor, value in reading.values.items():
            point = {"M": {"timestamp": {"S": reading.timestamp.isoformat()}, "value": {"N": repr(value)}}}
            size_data[sensor] = size_data.get(sensor, 3) + 1 + value_size(point)
        size = size_fixed + sum(len(sensor) + 1 + n for sensor, n in size_data.items())
        if size > 400 * 1024:
            return day_units / day_values, last_units, index
        if index < 1440:
            last_units = math.ceil(size / 1024)
            day_units += last_units
            day_values += len(reading.values)
    return day_units / day_values, last_units, None


def median_ms(samples) -> float:
    return statistics.median(samples) * 1000


def timed_get(client, url: str) -> tuple[float, dict]:
    started = time.perf_counter()
    response = client.get(url)
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, (url, response.status_code, response.content[:300])
    return elapsed, response


def compare_latency(client, url_a: str, url_b: str, rounds: int) -> tuple[float, float]:
    a, b = [], []
    for _ in range(3):  # warm up
        timed_get(client, url_a), timed_get(client, url_b)
    for _ in range(rounds):
        a.append(timed_get(client, url_a)[0])
        b.append(timed_get(client, url_b)[0])
    return median_ms(a), median_ms(b)


def write_history(kit_id: str, start, minutes: int, *, per_call: int = 1440, progress: str | None = None) -> float:
    """Writes `minutes` one-minute readings of the demo sensors through readings_write; seconds taken."""
    from tqdm import tqdm

    from telemetry.services import readings_write, rollups_refresh_all
    from telemetry.synthetic import DEMO_SENSORS, synthetic_readings

    end = start + timedelta(minutes=minutes)
    readings = synthetic_readings(
        kit_id=kit_id, sensors=DEMO_SENSORS, start=start, end=end, interval=timedelta(minutes=1)
    )
    took = 0.0
    with tqdm(total=minutes, unit="reading", desc=progress, disable=progress is None, file=sys.stderr) as bar:
        while True:
            chunk = [reading for _, reading in zip(range(per_call), readings, strict=False)]
            if not chunk:
                break
            started = time.perf_counter()
            readings_write(readings=chunk)
            took += time.perf_counter() - started
            bar.update(len(chunk))
    # What the bridge's refresher does within minutes of a live write: rollups up to date, as
    # the latency figures below assume (marked buckets are counted from raw readings instead).
    rollups_refresh_all(kit_ids=[kit_id])
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--year-days", type=int, default=365, help="Days of one-minute history for figure 4.")
    parser.add_argument("--big-kit", type=int, default=100_000, help="Messages (of 4 readings) in the big kit.")
    parser.add_argument("--rounds", type=int, default=40, help="Requests per latency median.")
    args = parser.parse_args()

    moto = MotoServer().start()
    try:
        with tempfile.TemporaryDirectory() as workdir:
            os.environ.update(moto.client_env())
            os.environ["DJANGO_SETTINGS_MODULE"] = "astroplant_site.settings.test"
            os.environ["DATABASE_URL"] = f"sqlite:///{workdir}/bench.sqlite3"
            os.environ["DYNAMODB_TABLE_PREFIX"] = "bench-"
            import django

            django.setup()
            figures = run(args)
    finally:
        # moto_server waits for its keep-alive connections on SIGTERM: do not wait for it.
        moto.process.kill()
        moto.process.wait()
    figures_print(figures)


def run(args) -> dict:
    """Measures and prints the four figures; returns them for the JSON line."""
    from unittest import mock

    from django.conf import settings
    from django.core.management import call_command
    from django.test import Client
    from django.utils import timezone

    from kits.registry import SensorSpec, kit_register
    from telemetry import dynamodb, models
    from telemetry.services import readings_write, rollups_refresh, telemetry_tables_setup
    from telemetry.synthetic import DEMO_SENSORS, synthetic_readings

    call_command("migrate", verbosity=0)
    call_command("createcachetable", verbosity=0)  # the API's throttle counts
    telemetry_tables_setup()
    client = dynamodb.client()
    now = timezone.now().replace(second=0, microsecond=0)
    sensors = [SensorSpec(s.key, s.quantity, "u", s.low, s.high) for s in DEMO_SENSORS]
    results = []
    figures = {"year_days": args.year_days, "big_kit_messages": args.big_kit, "rounds": args.rounds}

    def report(figure, value, baseline, ratio, aim):
        results.append((figure, value, baseline, ratio, aim))
        print(f"  {figure}: {value}  vs  {baseline}  ->  {ratio}   (aim {aim})", flush=True)

    # 1. Throughput --------------------------------------------------------------------------
    print("1. write throughput: readings_write against raw batch_write_item, same items", flush=True)
    readings_table = dynamodb.table(models.RawReading)
    client.create_table(
        TableName="bench-baseline-readings",
        KeySchema=[{"AttributeName": "kd", "KeyType": "HASH"}, {"AttributeName": "t", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "kd", "AttributeType": "S"},
            {"AttributeName": "t", "AttributeType": "N"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    for per_call, messages, rounds in ((1440, 8640, 3), (60, 2880, 3), (1, 200, 2)):
        ours = raw = 0.0
        for round_number in range(rounds):
            kit_id = f"tp-{per_call}-{round_number}"
            start = now - timedelta(days=300)
            batch = list(
                synthetic_readings(
                    kit_id=kit_id,
                    sensors=DEMO_SENSORS,
                    start=start,
                    end=start + timedelta(minutes=messages),
                    interval=timedelta(minutes=1),
                )
            )
            started = time.perf_counter()  # the baseline: the same raw items, 25 per call, nothing else
            for first in range(0, len(batch), 25):
                requests = []
                for reading in batch[first : first + 25]:
                    kit_day, stamp = dynamodb.raw_key(reading.kit_id, int(reading.timestamp.timestamp() * 1000))
                    item = readings_table(kit_day, stamp, values=dict(reading.values), expires_at=reading.timestamp)
                    requests.append({"PutRequest": {"Item": item.serialize()}})
                client.batch_write_item(RequestItems={"bench-baseline-readings": requests})
            raw += time.perf_counter() - started
            started = time.perf_counter()
            for first in range(0, len(batch), per_call):
                readings_write(readings=batch[first : first + per_call])
            ours += time.perf_counter() - started
        total = messages * rounds
        label = f"{per_call} message(s) per call"
        figures[f"write_msg_per_s_per_call_{per_call}"] = total / ours
        figures[f"raw_msg_per_s_per_call_{per_call}"] = total / raw
        figures[f"write_over_raw_ratio_per_call_{per_call}"] = raw / ours
        report(
            f"throughput, {label}",
            f"{total / ours:.0f} msg/s",
            f"{total / raw:.0f} msg/s raw",
            f"{raw / ours:.2f}",
            ">= 0.8",
        )

    # 2. Write units per reading -------------------------------------------------------------
    print(f"2. write units per reading (one sensor value), {SENSOR_COUNT} sensors every minute, one day", flush=True)
    start = now - timedelta(days=200)
    day = list(
        synthetic_readings(
            kit_id="wcu",
            sensors=DEMO_SENSORS,
            start=start,
            end=start + timedelta(days=1),
            interval=timedelta(minutes=1),
        )
    )
    seed_units, seed_last, seed_cap = seed_layout_units(
        synthetic_readings(
            kit_id="wcu",
            sensors=DEMO_SENSORS,
            start=start,
            end=start + timedelta(days=7),
            interval=timedelta(minutes=1),
        )
    )
    print(
        f"  seed layout (computed): {seed_units:.0f} per reading over the first day, {seed_last} per message at its "
        f"end; the item passes 400 KB after {seed_cap} messages ({(seed_cap or 0) / 1440:.1f} days)",
        flush=True,
    )
    figures["seed_write_units_per_reading"] = seed_units
    figures["seed_write_units_per_message_day_end"] = seed_last
    figures["seed_messages_to_400kb"] = seed_cap
    delay = settings.TELEMETRY_ROLLUP_DELAY_SECONDS
    print(
        f"  live: each call made a second after its newest message, the bridge's refresher run after every call "
        f"(rollups due {delay} s after a reading first marks its hour); backlog: a day of one kit's messages "
        "drained at once, 100 per call (AWS IoT's in-flight cap), refreshed after the delay; the clock is simulated",
        flush=True,
    )
    for pattern, per_call in (("live", 1440), ("live", 60), ("live", 15), ("live", 5), ("live", 1), ("backlog", 100)):
        kit_id = f"wcu-{pattern}-{per_call}"
        batch = [type(r)(kit_id, r.timestamp, r.values) for r in day]
        drained_at = batch[-1].timestamp + timedelta(minutes=1)
        with WriteUnitMeter(client) as meter:
            for first in range(0, len(batch), per_call):
                chunk = batch[first : first + per_call]
                clock = chunk[-1].timestamp + timedelta(seconds=1) if pattern == "live" else drained_at
                with mock.patch("telemetry.services.timezone.now", return_value=clock):
                    readings_write(readings=chunk)
                    rollups_refresh()
            # the day is over: what is still marked falls due, the day's own bucket with it
            with mock.patch("telemetry.services.timezone.now", return_value=drained_at + timedelta(days=1)):
                rollups_refresh()
        per_reading = meter.units / (len(batch) * SENSOR_COUNT)
        key = f"write_units_per_reading_per_call_{per_call}" if pattern == "live" else "write_units_per_reading_backlog"
        figures[key] = per_reading
        report(
            f"WCU per reading, {pattern}, {per_call} message(s) per call",
            f"{per_reading:.3f}",
            f"1 (one item per reading); seed layout {seed_units:.0f}",
            f"{per_reading:.3f}",
            "<= 0.3" if pattern == "backlog" else "<= 0.5",
        )

    # 3. Latency, big kit against small kit ----------------------------------------------------
    print(f"3. GET /kits/{{id}}/data latency: {args.big_kit} messages against 100", flush=True)
    for kit_id in ("kit-small", "kit-big", "kit-year"):
        kit_register(id=kit_id, name=kit_id, public=True, sensors=sensors)
    big_minutes = args.big_kit
    took = write_history("kit-big", now - timedelta(minutes=big_minutes), big_minutes, progress="writing kit-big")
    print(f"  wrote {big_minutes} messages ({big_minutes * SENSOR_COUNT} readings) in {took:.0f} s", flush=True)
    figures["big_kit_write_s"] = took
    write_history("kit-small", now - timedelta(minutes=100), 100)
    web = Client(HTTP_HOST="localhost")
    small_ms, big_ms = compare_latency(web, "/kits/kit-small/data", "/kits/kit-big/data", args.rounds)
    figures.update(latest_big_ms=big_ms, latest_small_ms=small_ms, latest_big_over_small_ratio=big_ms / small_ms)
    report(
        "latest data latency",
        f"{big_ms:.1f} ms (big)",
        f"{small_ms:.1f} ms (small)",
        f"{big_ms / small_ms:.2f}",
        "<= 1.3",
    )
    small_ms, big_ms = compare_latency(web, "/kits/kit-small/data?last=100", "/kits/kit-big/data?last=100", 10)
    figures.update(last100_big_ms=big_ms, last100_small_ms=small_ms, last100_big_over_small_ratio=big_ms / small_ms)
    report("?last=100 latency (not an aim)", f"{big_ms:.1f} ms", f"{small_ms:.1f} ms", f"{big_ms / small_ms:.2f}", "-")

    # 4. A year of one-minute readings -----------------------------------------------------------
    minutes = args.year_days * 1440
    print(f"4. {args.year_days} days of one-minute readings: resolution=auto against the latest data", flush=True)
    took = write_history("kit-year", now - timedelta(minutes=minutes), minutes, progress="writing kit-year")
    print(f"  wrote {minutes} messages ({minutes * SENSOR_COUNT} readings) in {took:.0f} s", flush=True)
    figures["year_write_s"] = took
    since = (now - timedelta(days=args.year_days)).strftime("%Y-%m-%dT%H:%M:%SZ")
    auto_url = f"/kits/kit-year/data?from={since}"
    _, response = timed_get(web, auto_url)
    points = max(len(series) for series in response.json().values())
    print(f"  auto chose {response['X-Resolution']}: {points} points per series (aim: at most about 2000)")
    latest_ms, auto_ms = compare_latency(web, "/kits/kit-year/data", auto_url, args.rounds)
    figures.update(
        auto_resolution=response["X-Resolution"],
        auto_points_per_series=points,
        auto_ms=auto_ms,
        auto_latest_ms=latest_ms,
        auto_over_latest_ratio=auto_ms / latest_ms,
    )
    report(
        "auto over the year", f"{auto_ms:.1f} ms", f"{latest_ms:.1f} ms (latest)", f"{auto_ms / latest_ms:.2f}", "<= 3"
    )

    print("\nSummary")
    for figure, _value, _baseline, ratio, aim in results:
        print(f"  {figure:45s} {ratio:>6}  (aim {aim})")
    return figures


if __name__ == "__main__":
    main()
