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
figure divided by the baseline's.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from localdev.moto import MotoServer  # noqa: E402 (the path above first)
from localdev.ports import free_port  # noqa: E402

MEASURED_KIT = "load-kit-000"
SENSORS = ("temperature", "humidity", "co2", "light")
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def prepare_data(kits: int) -> str:
    """The kits, the grower and a day of readings; returns the grower's API token."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from knox.models import AuthToken

    from kits import services
    from kits.models import Role
    from kits.services import SensorSpec
    from telemetry.services import Reading, readings_write

    call_command("migrate", "--no-input", verbosity=0)
    call_command("dynamodb_setup", verbosity=0)
    grower = get_user_model().objects.create_user("grower", "grower@example.org", "not-used")
    specs = [
        SensorSpec("temperature", "temperature", "°C", -10, 50),
        SensorSpec("humidity", "humidity", "%", 0, 100),
        SensorSpec("co2", "co2", "ppm", 200, 5000),
        SensorSpec("light", "light", "lux", 0, 100000),
    ]
    for number in range(kits):
        kit = services.kit_register(
            id=f"load-kit-{number:03d}",
            name=f"Load kit {number}",
            description="A kit of the load benchmark.",
            admin_email="grower@example.org",
            public=number % 2 == 1,
            sensors=specs,
        )
        if number % 10 == 0:
            services.membership_add(kit=kit, username="grower", role=Role.OWNER)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    readings_write(
        readings=[
            Reading(MEASURED_KIT, now - timedelta(minutes=m), {s: 20.0 + (m % 60) / 10 for s in SENSORS})
            for m in range(24 * 60)
        ]
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
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "requests": int(re.search(r"(\d+) requests in", output).group(1)),
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
        )
        import django

        django.setup()
        print(f"Preparing {arguments.kits} kits and a day of readings...", flush=True)
        token = prepare_data(arguments.kits)

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
                ("GET /healthz (baseline)", "/healthz", None),
                ("GET /kits", "/kits", token),
                ("GET /kits/{id}", f"/kits/{MEASURED_KIT}", token),
                ("GET /kits/{id}/data (latest)", f"/kits/{MEASURED_KIT}/data", token),
                (
                    "GET /kits/{id}/data?from=-24h&resolution=1h",
                    f"/kits/{MEASURED_KIT}/data?from={day_ago}&resolution=1h",
                    token,
                ),
            ]
            levels = [int(level) for level in arguments.connections.split(",")]
            results = {level: [] for level in levels}
            for level in levels:
                for label, path, auth in cases:
                    print(f"{label}: {arguments.seconds} s, {level} connection(s)...", flush=True)
                    wrk(base + path, seconds=2, connections=level, token=auth)  # warm up
                    results[level].append(
                        (label, wrk(base + path, seconds=arguments.seconds, connections=level, token=auth))
                    )
        finally:
            server.terminate()
            server.wait(timeout=30)

    for level, rows in results.items():
        baseline = rows[0][1]
        print()
        print(
            f"gunicorn {arguments.workers} sync workers; wrk {min(2, level)} thread(s), {level} connection(s), "
            f"{arguments.seconds} s per endpoint; {os.cpu_count()} cores shared by gunicorn, wrk and moto_server"
        )
        columns = ("req/s", "ratio", "p50 ms", "ratio", "p99 ms", "ratio", "non-2xx")
        print(f"{'endpoint':46} " + " ".join(f"{column:>{8 if 'ratio' not in column else 6}}" for column in columns))
        for label, figures in rows:
            print(
                f"{label:46} {figures['rps']:8.0f} {figures['rps'] / baseline['rps']:6.2f} "
                f"{figures['p50']:8.1f} {figures['p50'] / baseline['p50']:6.2f} "
                f"{figures['p99']:8.1f} {figures['p99'] / baseline['p99']:6.2f} "
                f"{figures['failed']:7d}{'  ' + figures['socket_errors'] if figures['socket_errors'] else ''}"
            )


if __name__ == "__main__":
    main()
