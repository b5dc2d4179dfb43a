"""The API under concurrent clients: requests per second and p50/p99 latency per endpoint, behind
gunicorn, against /healthz measured in the same run as the floor.

    .venv/bin/python benchmarks/load_bench.py [--seconds 15] [--connections 1,16] [--workers 3]

It starts its own moto_server (DynamoDB), prepares a fresh database under var/bench/load/ (SQLite,
or --database-url postgres://...) with 100 kits (public and private, four sensors each), a grower
who is a member of ten of them, and one day of one-minute readings for the kit measured, then
serves the app with gunicorn (sync workers, DEBUG off, access log off) on 127.0.0.1 and drives
each endpoint in turn with wrk (Debian's `wrk`; installed by bin/system-packages.sh if missing)
for `--seconds` at each number of keep-alive `--connections` (1: the latency of one client
alone; 16: the server saturated, where latency is mostly waiting in line), every request signed
in as the grower with an API token. Loopback only; every run stops by itself.

Baseline: GET /healthz (the app and one database query, no sign-in). Ratios are the endpoint's
figure divided by the baseline's. GET /kits/{id}/data (latest) has a second baseline: raw
DynamoDB GetItem calls to the same moto_server, as many clients at once as wrk's connections
(threads of this process, each with its own boto3 client), for `--seconds`, on a one-item table
the benchmark makes itself (`load-bench-latest`, the item shaped like a kit's latest state: four
sensors, each {"t": ms, "v": value}), so the baseline does not depend on where telemetry keeps
the latest state. Its ratio is the endpoint's req/s over those GetItem calls per second.

The last line of the output is one JSON object of the figures. For each endpoint (`healthz`,
`kits`, `kit`, `data_latest`, `data_24h`) and each concurrency N of `--connections`:
`{endpoint}_rps_cN`, `{endpoint}_p50_ms_cN`, `{endpoint}_p99_ms_cN` (null if no request was
answered), `{endpoint}_requests_cN`, `{endpoint}_non_2xx_cN`, and (but for /healthz) against
/healthz's `{endpoint}_healthz_ratio_cN` (req/s), `{endpoint}_p50_healthz_ratio_cN`,
`{endpoint}_p99_healthz_ratio_cN`; `getitem_per_s_cN` (the raw baseline) and
`data_latest_getitem_ratio_cN`. The summary, at the highest concurrency of the run
(`connections`): `kits_ratio`, `kit_ratio`, `data_24h_ratio`, `data_latest_healthz_ratio` (req/s
over /healthz's), `data_latest_ratio` (the latest data's req/s over raw GetItem calls per
second), `healthz_rps`, `getitem_per_s`; also `seconds`, `workers` and `kits`.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.figures import figures_print  # noqa: E402 (the path above first)
from localdev.moto import MotoServer  # noqa: E402
from localdev.ports import free_port, port_answers  # noqa: E402

MEASURED_KIT = "load-kit-000"
SENSORS = ("temperature", "humidity", "co2", "light")
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}
LATEST_TABLE = "load-bench-latest"  # the GetItem baseline's own table, not one of telemetry's


def latest_table_prepare() -> None:
    """The GetItem baseline's table: one item shaped like a kit's latest state (four sensors,
    each its newest time in ms and value)."""
    import boto3

    client = boto3.client("dynamodb")
    client.create_table(
        TableName=LATEST_TABLE,
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    now_ms = int(time.time() * 1000)
    client.put_item(
        TableName=LATEST_TABLE,
        Item={
            "k": {"S": MEASURED_KIT},
            "n": {"N": str(now_ms)},
            "s": {"M": {s: {"M": {"t": {"N": str(now_ms)}, "v": {"N": "21.5"}}} for s in SENSORS}},
            "ver": {"N": "1"},
        },
    )


def getitem_rate(*, seconds: float, clients: int) -> float:
    """GetItem calls per second on the baseline table from `clients` threads at once, each with
    its own boto3 client, each call waiting for the one before (as a keep-alive wrk connection)."""
    import boto3

    counts = [0] * clients
    ready = threading.Barrier(clients + 1)
    stop = threading.Event()
    failures: list[BaseException] = []

    def run(index: int) -> None:
        try:
            client = boto3.client("dynamodb")
            key = {"k": {"S": MEASURED_KIT}}
            client.get_item(TableName=LATEST_TABLE, Key=key)  # connected and warm before the clock
            ready.wait()
            while not stop.is_set():
                if "Item" not in client.get_item(TableName=LATEST_TABLE, Key=key):
                    raise AssertionError(f"{LATEST_TABLE} has lost its item")
                counts[index] += 1
        except BaseException as error:  # reported below, by the main thread
            failures.append(error)
            ready.abort()

    threads = [threading.Thread(target=run, args=(index,), daemon=True) for index in range(clients)]
    for thread in threads:
        thread.start()
    try:
        ready.wait(timeout=60)
        began = time.perf_counter()
        time.sleep(seconds)
    except threading.BrokenBarrierError:
        began = time.perf_counter()
    stop.set()
    for thread in threads:
        thread.join()
    took = time.perf_counter() - began
    if failures:
        raise RuntimeError(f"GetItem baseline failed: {failures[0]!r}") from failures[0]
    return sum(counts) / took


def prepare_data(kits: int) -> str:
    """The kits, the grower and a day of readings; returns the grower's API token."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from knox.models import AuthToken

    from kits import memberships, registry
    from kits.models import Role
    from kits.registry import SensorSpec
    from telemetry.services import Reading, readings_write

    call_command("migrate", "--no-input", verbosity=0)
    call_command("createcachetable", verbosity=0)  # the API's throttle counts
    call_command("dynamodb_setup", verbosity=0)
    grower = get_user_model().objects.create_user("grower", "grower@example.org", "not-used")
    specs = [
        SensorSpec("temperature", "temperature", "°C", -10, 50),
        SensorSpec("humidity", "humidity", "%", 0, 100),
        SensorSpec("co2", "co2", "ppm", 200, 5000),
        SensorSpec("light", "light", "lux", 0, 100000),
    ]
    for number in range(kits):
        kit = registry.kit_register(
            id=f"load-kit-{number:03d}",
            name=f"Load kit {number}",
            description="A kit of the load benchmark.",
            admin_email="grower@example.org",
            public=number % 2 == 1,
            sensors=specs,
        )
        if number % 10 == 0:
            memberships.membership_add(kit=kit, username="grower", role=Role.OWNER)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    readings_write(
        readings=[
            Reading(MEASURED_KIT, now - timedelta(minutes=m), {s: 20.0 + (m % 60) / 10 for s in SENSORS})
            for m in range(24 * 60)
        ],
        rollups_now=True,  # as the bridge's refresher leaves them within minutes of a live write
    )
    return AuthToken.objects.create(grower)[1]


def wrk(url: str, *, seconds: int, connections: int, token: str | None) -> dict:
    command = ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    if token:
        command += ["-H", f"Authorization: Token {token}"]
    output = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout  # noqa: S603 (wrk, fixed)
    latency = {
        percent: float(value) * UNITS[unit]
        for percent, value, unit in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
    }
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: (.*)", output)
    requests = int(re.search(r"(\d+) requests in", output).group(1))
    if not requests:  # wrk prints zero latencies then: none was measured
        latency = {"50": float("nan"), "99": float("nan")}
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "requests": requests,
        "p50": latency["50"],
        "p99": latency["99"],
        "failed": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": errors.group(1) if errors else "",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=15, help="per endpoint and concurrency")
    parser.add_argument("--connections", default="1,16", help="comma-separated concurrencies")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn sync workers")
    parser.add_argument("--kits", type=int, default=100)
    parser.add_argument("--database-url", default="", help="default: a fresh SQLite file under var/bench/load/")
    parser.add_argument(
        "--cache-url",
        default="",
        help="where the API's request rates are counted; default: Redis on 127.0.0.1:6379 (db 12) if it "
        "answers, as docs/production.md advises, else the database",
    )
    arguments = parser.parse_args()

    if not shutil.which("wrk"):
        subprocess.run([str(ROOT / "bin" / "system-packages.sh"), "wrk"], check=True)  # noqa: S603 (our own script)
    work = ROOT / "var" / "bench" / "load"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    with MotoServer() as moto:
        os.environ.update(
            moto.client_env(),
            DJANGO_SETTINGS_MODULE="astroplant_site.settings.local",
            DJANGO_DEBUG="false",
            LOG_LEVEL="WARNING",
            DATABASE_URL=arguments.database_url or f"sqlite:///{work / 'db.sqlite3'}",
            CELERY_BROKER_URL=f"sqla+sqlite:///{work / 'broker.sqlite3'}",  # registrations queue here, unread
            IOT_CA_DIR=str(work / "ca"),
            DYNAMODB_TABLE_PREFIX="load-",
            # The API's request rates counted as in production, never reached by the benchmark's
            # one client.
            **{f"API_THROTTLE_{scope}_RATE": "100000/second" for scope in ("ANON", "USER", "DATA", "DATA_CSV")},
        )
        cache_url = arguments.cache_url or ("redis://127.0.0.1:6379/12" if port_answers(6379) else "")
        if cache_url:
            os.environ["CACHE_URL"] = cache_url
        print(f"Request rates counted in {cache_url or 'the database'}.", flush=True)
        import django

        django.setup()
        print(f"Preparing {arguments.kits} kits and a day of readings...", flush=True)
        token = prepare_data(arguments.kits)
        latest_table_prepare()

        port = free_port()
        base = f"http://127.0.0.1:{port}"
        with open(work / "gunicorn.log", "w") as log:
            server = subprocess.Popen(  # noqa: S603 (gunicorn, fixed arguments)
                [sys.executable, "-m", "gunicorn", "astroplant_site.wsgi:application", "-b", f"127.0.0.1:{port}"]
                + ["--workers", str(arguments.workers), "--worker-class", "sync", "--keep-alive", "5"],
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            for _ in range(300):
                try:
                    urllib.request.urlopen(f"{base}/healthz", timeout=1).close()  # noqa: S310 (loopback)
                    break
                except OSError:
                    time.sleep(0.1)
            day_ago = (datetime.now(UTC) - timedelta(hours=24)).strftime("%Y-%m-%dT%H:%M:%SZ")
            cases = [
                ("healthz", "GET /healthz (baseline)", "/healthz", None),
                ("kits", "GET /kits", "/kits", token),
                ("kit", "GET /kits/{id}", f"/kits/{MEASURED_KIT}", token),
                ("data_latest", "GET /kits/{id}/data (latest)", f"/kits/{MEASURED_KIT}/data", token),
                (
                    "data_24h",
                    "GET /kits/{id}/data?from=-24h&resolution=1h",
                    f"/kits/{MEASURED_KIT}/data?from={day_ago}&resolution=1h",
                    token,
                ),
            ]
            levels = [int(level) for level in arguments.connections.split(",")]
            results = {level: [] for level in levels}
            getitem = {}
            for level in levels:
                for name, label, path, auth in cases:
                    print(f"{label}: {arguments.seconds} s, {level} connection(s)...", flush=True)
                    wrk(base + path, seconds=2, connections=level, token=auth)  # warm up
                    results[level].append(
                        (name, label, wrk(base + path, seconds=arguments.seconds, connections=level, token=auth))
                    )
                    if name == "data_latest":  # its own baseline right after it, gunicorn idle
                        print(
                            f"raw GetItem (baseline of the latest data): {arguments.seconds} s, {level} client(s)...",
                            flush=True,
                        )
                        getitem[level] = getitem_rate(seconds=arguments.seconds, clients=level)
        finally:
            server.terminate()
            server.wait(timeout=30)

    figures = {"seconds": arguments.seconds, "workers": arguments.workers, "kits": arguments.kits}
    for level, rows in results.items():
        baseline = rows[0][2]
        print()
        print(
            f"gunicorn {arguments.workers} sync workers; wrk {min(2, level)} thread(s), {level} connection(s), "
            f"{arguments.seconds} s per endpoint; {os.cpu_count()} cores shared by gunicorn, wrk and moto_server"
        )
        columns = ("req/s", "ratio", "p50 ms", "ratio", "p99 ms", "ratio", "non-2xx")
        print(f"{'endpoint':46} " + " ".join(f"{column:>{8 if 'ratio' not in column else 6}}" for column in columns))
        for name, label, measured in rows:
            print(
                f"{label:46} {measured['rps']:8.0f} {measured['rps'] / baseline['rps']:6.2f} "
                f"{measured['p50']:8.1f} {measured['p50'] / baseline['p50']:6.2f} "
                f"{measured['p99']:8.1f} {measured['p99'] / baseline['p99']:6.2f} "
                f"{measured['failed']:7d}{'  ' + measured['socket_errors'] if measured['socket_errors'] else ''}"
                f"{'' if measured['requests'] else f'  (no request answered within {arguments.seconds} s)'}"
            )
            figures.update(
                {
                    f"{name}_rps_c{level}": measured["rps"],
                    f"{name}_p50_ms_c{level}": measured["p50"],
                    f"{name}_p99_ms_c{level}": measured["p99"],
                    f"{name}_non_2xx_c{level}": measured["failed"],
                    f"{name}_requests_c{level}": measured["requests"],
                }
            )
            if name != "healthz":
                figures.update(
                    {
                        f"{name}_healthz_ratio_c{level}": measured["rps"] / baseline["rps"],
                        f"{name}_p50_healthz_ratio_c{level}": measured["p50"] / baseline["p50"],
                        f"{name}_p99_healthz_ratio_c{level}": measured["p99"] / baseline["p99"],
                    }
                )
        data_latest = next(measured for name, _, measured in rows if name == "data_latest")
        print(
            f"{'raw GetItem, same moto_server (data baseline)':46} {getitem[level]:8.0f}   "
            f"GET /kits/{{id}}/data (latest) / GetItem: {data_latest['rps'] / getitem[level]:.2f}"
        )
        figures[f"getitem_per_s_c{level}"] = getitem[level]
        figures[f"data_latest_getitem_ratio_c{level}"] = data_latest["rps"] / getitem[level]

    top = max(levels)
    figures.update(
        {
            "connections": top,
            "healthz_rps": figures[f"healthz_rps_c{top}"],
            "getitem_per_s": figures[f"getitem_per_s_c{top}"],
            "kits_ratio": figures[f"kits_healthz_ratio_c{top}"],
            "kit_ratio": figures[f"kit_healthz_ratio_c{top}"],
            "data_latest_ratio": figures[f"data_latest_getitem_ratio_c{top}"],
            "data_latest_healthz_ratio": figures[f"data_latest_healthz_ratio_c{top}"],
            "data_24h_ratio": figures[f"data_24h_healthz_ratio_c{top}"],
        }
    )
    figures_print(figures)


if __name__ == "__main__":
    main()
