"""Two-way round trips, as a grower sees them through the API: from `PUT /kits/{id}/configuration`
until the configuration's status is `applied`, and from `POST /kits/{id}/commands` of a `ping`
until the command has `succeeded` (issue 13's figures), each the median of `--repeats`, with the
p90 and the maximum.

    .venv/bin/python benchmarks/two_way_bench.py [--repeats 20] [--poll-ms 50] [--database-url ...]

Real parts only, each its own process, on this machine's loopback:
- moto_server (AWS IoT for the kit's provisioning, DynamoDB for its readings);
- mosquitto with mutual TLS and the per-kit ACLs, trusting the project CA (a fresh one under
  var/bench/two_way/);
- one Celery worker (`celery -A astroplant_site worker --pool=solo`) on Redis db 11 of
  127.0.0.1:6379 if it answers, else on a SQLite file; it provisions the kit, then publishes each
  configuration and command as the backend (`astroplant.backend`, BACKEND_MQTT_*). No beat: nothing
  measured waits on it;
- the ingest bridge (`manage.py ingest`), which records the kit's reports;
- gunicorn (one sync worker, DEBUG off) serving the API; the benchmark is an HTTP client of it,
  signed in as the kit's owner with a token from `POST /auth/token`;
- the kit agent (`python -m device run --config kit.toml`) with the bundle its provisioning made,
  unpacked as on a Pi: a dimmable LED panel (`led`) and a fan, simulated.
The database is a fresh SQLite file under var/bench/two_way/ (or --database-url; each run makes
a kit and a user of its own, so a PostgreSQL database may be reused).

Once the kit is online (its agent subscribed, and its first status through the bridge), one
configuration and one ping are sent as a warm-up (first TLS connections, first imports in the
worker; shown, not counted). Then `--repeats` configurations, one at a time, each changing the
measurement interval (alternately 5 and 7 s) and the LED's level, then `--repeats` pings. Each
time runs from just before the request is sent until a GET of the configuration (or of the
command) shows it `applied` (`succeeded`), polled every `--poll-ms`: a figure includes up to one
poll interval. Each applied configuration is checked to be the one sent (version, interval, LED).

Where the time goes, from the database's own timestamps (all on this machine's clock), each in
ms after the request was sent: `published`, when the worker had the broker's confirmation of the
publication (a configuration's `published_at`, a command's `sent_at`; the kit may have answered a
ping before the worker wrote that, and then it is missing), and `kit`, the time on the kit's
status message that says it applied the configuration, or on its answer to the ping. What comes
after `kit` is the bridge (its batches wait 0.2 s for more messages), the database, and polling.

The last line of the output is one JSON object of the figures: `repeats`, `poll_ms`, `database`,
`celery_broker`; `config_applied_p50_ms`, `_p90_ms`, `_max_ms`, `_min_ms`; `ping_succeeded_p50_ms`,
`_p90_ms`, `_max_ms`, `_min_ms` (p90: the nearest-rank value); the medians of the marks above,
`config_published_p50_ms`, `config_kit_p50_ms`, `ping_published_p50_ms`, `ping_kit_p50_ms`;
`warmup_config_ms`, `warmup_ping_ms`.

Every process it started is stopped (SIGTERM, then killed after 30 s) however the run ends: done,
failed, Ctrl-C or SIGTERM. Their logs stay in var/bench/two_way/logs/.
"""

import argparse
import json
import math
import os
import secrets
import shutil
import signal
import statistics
import sys
import time
import urllib.error
import urllib.request
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.figures import figures_print  # noqa: E402 (the path above first)
from benchmarks.ingest_world import bridge_environment  # noqa: E402
from localdev.moto import MotoServer  # noqa: E402
from localdev.ports import free_port, port_answers  # noqa: E402

WORK = ROOT / "var" / "bench" / "two_way"
REDIS_URL = "redis://127.0.0.1:6379/11"
INTERVALS = (5, 7)  # seconds between measurements, alternately: each change is a real change
ROUND_TIMEOUT_SECONDS = 30  # the issue's own bound for a change to be applied
STARTUP_TIMEOUT_SECONDS = 60


class BenchFailed(Exception):
    """Something the benchmark waits for did not happen; the message says what, and where to look."""


class Api:
    """The API over HTTP, signed in with a token, as the mobile app uses it."""

    def __init__(self, base: str):
        self.base = base
        self.token = ""

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Token {self.token}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, method=method, data=data, headers=headers)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (loopback)
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")
        except OSError as error:  # refused or reset: gunicorn is gone (or stopping, after Ctrl-C)
            raise BenchFailed(f"{method} {path}: the API did not answer ({error})") from error

    def expect(self, status: int, method: str, path: str, body: dict | None = None) -> dict:
        answered, content = self.call(method, path, body)
        if answered != status:
            raise BenchFailed(f"{method} {path} answered {answered}, not {status}: {content}")
        return content

    def sign_in(self, username: str, password: str) -> None:
        self.token = self.expect(200, "POST", "/auth/token", {"username": username, "password": password})["token"]


@dataclass
class Samples:
    """One kind of round trip: the milliseconds each took, and when each passed a mark on the way."""

    totals: list[float] = field(default_factory=list)
    marks: dict[str, list[float]] = field(default_factory=dict)

    def add(self, total_ms: float, marks: dict[str, float | None]) -> None:
        self.totals.append(total_ms)
        for name, value in marks.items():
            if value is not None:
                self.marks.setdefault(name, []).append(value)

    def summary(self) -> dict[str, float]:
        ordered = sorted(self.totals)
        return {
            "p50": statistics.median(ordered),
            "p90": ordered[math.ceil(0.9 * len(ordered)) - 1],  # nearest rank: a time measured
            "max": ordered[-1],
            "min": ordered[0],
        }

    def mark_median(self, name: str) -> float | None:
        values = self.marks.get(name)
        return statistics.median(values) if values else None


def milliseconds_after(start: datetime, moment: datetime | None) -> float | None:
    return None if moment is None else (moment - start).total_seconds() * 1000


def poll(read, done, *, poll_seconds: float, what: str, logs: list[Path]):
    """Call `read()` every `poll_seconds` until `done(answer)`; returns (answer, perf_counter()
    when it was seen). BenchFailed naming `what`, with the tails of `logs`, after the round's time."""
    deadline = time.monotonic() + ROUND_TIMEOUT_SECONDS
    while True:
        answer = read()
        if done(answer):
            return answer, time.perf_counter()
        if time.monotonic() > deadline:
            tails = "".join(f"\n--- {log.name} ---\n" + "\n".join(log.read_text().splitlines()[-15:]) for log in logs)
            raise BenchFailed(f"No {what} after {ROUND_TIMEOUT_SECONDS} s; the last answer: {answer}{tails}")
        time.sleep(poll_seconds)


def desired_for(round_number: int) -> dict:
    """The configuration of one round: the other interval than the round before, another LED level."""
    return {
        "interval_seconds": INTERVALS[round_number % 2],
        "actuators": {"led": {"mode": "on", "level": 10 + round_number % 90}, "fan": {"mode": "off"}},
    }


def configuration_round(api: Api, kit_id: str, round_number: int, *, poll_seconds: float, logs: list[Path]):
    """PUT a new configuration and wait until the API shows it applied; (total ms, marks)."""
    from control.models import KitConfiguration

    path = f"/kits/{kit_id}/configuration"
    desired = desired_for(round_number)
    sent_at = datetime.now(UTC)
    began = time.perf_counter()
    version = api.expect(200, "PUT", path, {"desired": desired})["version"]
    state, seen = poll(
        lambda: api.expect(200, "GET", path),
        lambda answer: answer["version"] == version and answer["status"] != "pending",
        poll_seconds=poll_seconds,
        what=f"report on configuration version {version}",
        logs=logs,
    )
    total_ms = (seen - began) * 1000
    if state["status"] != "applied":
        raise BenchFailed(f"The kit {state['status']} configuration version {version}: {state['reason']}")
    reported = state["reported"]
    if (reported["interval_seconds"], reported["actuators"]["led"]) != (
        desired["interval_seconds"],
        desired["actuators"]["led"],
    ):
        raise BenchFailed(f"Version {version} shows applied, but the kit reports running {reported}")
    record = KitConfiguration.objects.get(kit_id=kit_id)
    published_at = record.published_at if record.published_version == version else None
    return total_ms, {
        "published": milliseconds_after(sent_at, published_at),
        "kit": milliseconds_after(sent_at, record.reported_at),
    }


def ping_round(api: Api, kit_id: str, *, poll_seconds: float, logs: list[Path]):
    """POST a ping and wait until the API shows it succeeded; (total ms, marks)."""
    from control.models import Command

    sent_at = datetime.now(UTC)
    began = time.perf_counter()
    command_id = api.expect(201, "POST", f"/kits/{kit_id}/commands", {"name": "ping", "arguments": {}})["id"]
    answer, seen = poll(
        lambda: api.expect(200, "GET", f"/kits/{kit_id}/commands/{command_id}"),
        lambda command: command["status"] not in ("queued", "sent"),
        poll_seconds=poll_seconds,
        what=f"answer to ping {command_id}",
        logs=logs,
    )
    total_ms = (seen - began) * 1000
    if answer["status"] != "succeeded" or "software_version" not in (answer["result"] or {}):
        raise BenchFailed(f"Ping {command_id} ended {answer['status']}: {answer['reason'] or answer['result']}")
    command = Command.objects.get(pk=command_id)
    return total_ms, {
        "published": milliseconds_after(sent_at, command.sent_at),
        "kit": milliseconds_after(sent_at, command.answered_at),
    }


def django_prepare(*, moto: MotoServer, database_url: str, broker_url: str) -> None:
    """Point this process (and every process it starts) at the local parts, and set up Django."""
    os.environ.update(
        moto.client_env(),
        DJANGO_SETTINGS_MODULE="astroplant_site.settings.local",
        DJANGO_DEBUG="false",
        DATABASE_URL=database_url,
        CELERY_BROKER_URL=broker_url,
        IOT_CA_DIR=str(WORK / "ca"),
        DYNAMODB_TABLE_PREFIX="two-way-bench-",
        PYTHONUNBUFFERED="1",
        # The benchmark polls faster than a person may; the rates are not what it measures.
        **{f"API_THROTTLE_{scope}_RATE": "100000/second" for scope in ("ANON", "USER", "DATA", "DATA_CSV")},
    )
    if broker_url.startswith("redis"):
        os.environ["CACHE_URL"] = broker_url  # the request rates' counts; kombu's keys are apart
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", "--no-input", verbosity=0)
    call_command("createcachetable", verbosity=0)
    call_command("dynamodb_setup", verbosity=0)


def celery_queue_purge() -> None:
    """Tasks an interrupted run left on the broker would run in this run's worker: drop them."""
    from astroplant_site.celery import app

    with app.connection_for_write() as connection:
        app.control.purge(connection=connection)


def kit_and_owner_prepare(run_id: str):
    """A kit with two sensors, a dimmable LED panel and a fan, and its owner; returns the kit and
    the owner's username and password. Registering the kit queues its provisioning for the worker."""
    from django.contrib.auth import get_user_model
    from django.db import transaction

    from kits import memberships, registry
    from kits.models import Role

    username, password = f"bench-owner-{run_id}", secrets.token_urlsafe(16)
    # One transaction: on SQLite, the worker provisioning the kit would hold the database meanwhile.
    with transaction.atomic():
        get_user_model().objects.create_user(username, f"{username}@example.org", password)
        kit = registry.kit_register(
            id=f"two-way-bench-{run_id}",
            name="Two-way benchmark",
            sensors=[
                registry.SensorSpec("temperature", "temperature", "°C"),
                registry.SensorSpec("light", "light", "lux"),
            ],
            actuators=[registry.ActuatorSpec("led", "light", dimmable=True), registry.ActuatorSpec("fan", "fan")],
        )
        memberships.membership_add(kit=kit, username=username, role=Role.OWNER)
    return kit, username, password


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20, help="configurations, then pings, one at a time")
    parser.add_argument("--poll-ms", type=float, default=50, help="how often the API is asked while waiting")
    parser.add_argument("--database-url", default="", help="default: a fresh SQLite file under var/bench/two_way/")
    arguments = parser.parse_args()
    if arguments.repeats < 1 or arguments.poll_ms <= 0:
        parser.error("--repeats and --poll-ms must be positive")
    # SIGTERM ends the run as Ctrl-C does: through the ExitStack that stops every process.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("Stopped by SIGTERM"))
    try:
        figures = run(arguments)
    except (BenchFailed, AssertionError) as failure:  # AssertionError: tests.support.wait_until timed out
        sys.exit(f"Failed: {failure}")
    except KeyboardInterrupt:  # every process is stopped by now
        sys.exit("Interrupted")
    figures_print(figures)


def run(arguments) -> dict:
    shutil.rmtree(WORK, ignore_errors=True)
    (WORK / "logs").mkdir(parents=True)
    broker_url = REDIS_URL if port_answers(6379) else f"sqla+sqlite:///{WORK / 'celery-broker.sqlite3'}"
    database_url = arguments.database_url or f"sqlite:///{WORK / 'db.sqlite3'}"
    poll_seconds = arguments.poll_ms / 1000
    config_samples, ping_samples = Samples(), Samples()
    with ExitStack() as stack:
        api, kit_id, logs = product_start(stack, database_url=database_url, broker_url=broker_url)

        warmup_config, _ = configuration_round(api, kit_id, 0, poll_seconds=poll_seconds, logs=logs)
        warmup_ping, _ = ping_round(api, kit_id, poll_seconds=poll_seconds, logs=logs)
        print(
            f"Kit online. Warm-up, not counted: configuration {warmup_config:.0f} ms, ping {warmup_ping:.0f} ms",
            flush=True,
        )
        for number in range(1, arguments.repeats + 1):
            total, marks = configuration_round(api, kit_id, number, poll_seconds=poll_seconds, logs=logs)
            config_samples.add(total, marks)
            print(f"configuration {number:2}/{arguments.repeats}: applied after {total:5.0f} ms", flush=True)
        for number in range(1, arguments.repeats + 1):
            total, marks = ping_round(api, kit_id, poll_seconds=poll_seconds, logs=logs)
            ping_samples.add(total, marks)
            print(f"ping          {number:2}/{arguments.repeats}: succeeded after {total:5.0f} ms", flush=True)
        print("Stopping every process...", flush=True)

    figures = {
        "repeats": arguments.repeats,
        "poll_ms": arguments.poll_ms,
        "database": database_url.split(":", 1)[0],
        "celery_broker": broker_url.split(":", 1)[0],
    }
    figures.update(report(figures, config_samples, ping_samples))
    figures.update({"warmup_config_ms": warmup_config, "warmup_ping_ms": warmup_ping})
    return figures


def product_start(stack: ExitStack, *, database_url: str, broker_url: str) -> tuple[Api, str, list[Path]]:
    """Start every part, each stopped by `stack` when it closes, and wait until the kit is online;
    returns the API signed in as its owner, the kit's id and the processes' logs."""
    run_id = secrets.token_hex(3)
    print("Starting moto_server and preparing the database...", flush=True)
    moto = stack.enter_context(MotoServer())
    django_prepare(moto=moto, database_url=database_url, broker_url=broker_url)
    from kits.certificates import project_authority
    from kits.models import Kit, ProvisioningStatus
    from localdev.mosquitto import BACKEND_CLIENT, MosquittoBroker
    from tests.support import ProcessGroup, unpack_bundle, wait_until

    broker = stack.enter_context(MosquittoBroker(authority=project_authority(), directory=WORK / "mosquitto"))
    backend = broker.client_credentials(BACKEND_CLIENT)
    os.environ.update(
        IOT_MQTT_ENDPOINT="localhost",  # where the kit's bundle says to connect
        IOT_MQTT_PORT=str(broker.port),
        BACKEND_MQTT_HOST="localhost",
        BACKEND_MQTT_PORT=str(broker.port),
        BACKEND_MQTT_CLIENT_ID=BACKEND_CLIENT,
        BACKEND_MQTT_CERTIFICATE_FILE=str(backend.certificate),
        BACKEND_MQTT_PRIVATE_KEY_FILE=str(backend.private_key),
        BACKEND_MQTT_ROOT_CA_FILE=str(backend.root_ca),
    )
    print(f"mosquitto with mutual TLS on 127.0.0.1:{broker.port}", flush=True)
    processes = ProcessGroup(WORK / "logs", dict(os.environ))
    stack.callback(processes.stop_all)
    logs: list[Path] = []

    def started(name: str, command: list[str], env: dict | None = None):
        process = processes.start(name, command, env)
        logs.append(process.log_path)
        return process

    def wait(condition, what: str) -> None:
        wait_until(condition, what=what, logs=tuple(logs), timeout=STARTUP_TIMEOUT_SECONDS)

    print(f"Starting the Celery worker on {broker_url}...", flush=True)
    celery_queue_purge()
    worker = started(
        "worker",
        [sys.executable, "-m", "celery", "-A", "astroplant_site", "worker", "--pool=solo", "--loglevel=INFO"]
        + ["--without-gossip", "--without-mingle", "-n", f"two-way-bench-{run_id}@%h"],
    )
    wait(lambda: " ready." in worker.log_path.read_text(), "the worker to be ready")

    print("Registering the kit; the worker provisions it...", flush=True)
    kit, username, password = kit_and_owner_prepare(run_id)
    wait(lambda: Kit.objects.get(pk=kit.id).provisioning_status == ProvisioningStatus.ACTIVE, "the kit to be active")
    kit.refresh_from_db()
    unpack_bundle(kit, WORK / "kit")

    print("Starting the ingest bridge and gunicorn...", flush=True)
    bridge = started("ingest", [sys.executable, "manage.py", "ingest"], bridge_environment(broker))
    port = free_port()
    started(
        "gunicorn",
        [sys.executable, "-m", "gunicorn", "astroplant_site.wsgi:application", "-b", f"127.0.0.1:{port}"]
        + ["--workers", "1", "--worker-class", "sync"],
    )
    wait(lambda: "subscribed to" in bridge.log_path.read_text(), "the bridge to subscribe")
    wait(lambda: port_answers(port), "gunicorn to answer")
    api = Api(f"http://127.0.0.1:{port}")
    api.sign_in(username, password)

    print(f"Starting the kit agent of {kit.id}...", flush=True)
    agent = started("agent", [sys.executable, "-m", "device", "run", "--config", str(WORK / "kit" / "kit.toml")])
    wait(lambda: "Listening for configurations and commands" in agent.log_path.read_text(), "the agent to subscribe")
    wait(lambda: api.expect(200, "GET", f"/kits/{kit.id}")["last_seen"], "the kit's first status through the bridge")
    return api, kit.id, logs


MARKS = ("published", "kit")


def report(run: dict, config_samples: Samples, ping_samples: Samples) -> dict:
    """Prints the report of a run (`run`: its settings); returns its figures."""
    print()
    print(
        f"{run['repeats']} of each, one at a time, kit online; the API polled every {run['poll_ms']:.0f} ms; "
        f"database {run['database']}, Celery on {run['celery_broker']}; {os.cpu_count()} cores for everything"
    )
    print(f"{'':30} {'p50 ms':>7} {'p90 ms':>7} {'max ms':>7} {'min ms':>7}   medians, ms after the request")
    figures = {}
    for label, name, samples in (
        ("PUT configuration -> applied", "config", config_samples),
        ("POST ping -> succeeded", "ping", ping_samples),
    ):
        summary = samples.summary()
        marks = {mark: samples.mark_median(mark) for mark in MARKS}
        shown = ", ".join(f"{mark} {ms:.0f}" for mark, ms in marks.items() if ms is not None)
        print(f"{label:30} " + " ".join(f"{summary[key]:7.0f}" for key in ("p50", "p90", "max", "min")) + f"   {shown}")
        outcome = "applied" if name == "config" else "succeeded"
        figures.update({f"{name}_{outcome}_{key}_ms": value for key, value in summary.items()})
        figures.update({f"{name}_{mark}_p50_ms": ms for mark, ms in marks.items()})
    return figures


if __name__ == "__main__":
    main()
