"""Readings flow end to end with real processes: a provisioned kit's agent (`python -m device
run` with its bundle) publishes through mosquitto with mutual TLS; the ingest bridge (`manage.py
ingest`) stores them in DynamoDB on moto_server; `GET /kits/{id}/data` serves them."""

import os
import sqlite3
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kits import memberships, provisioning, registry
from kits.models import Kit
from localdev.tcp_proxy import TcpProxy
from telemetry.kit_state import RollupMark
from telemetry.selectors import readings_range_rows, rollups_range
from telemetry.services import rollups_refresh_all
from telemetry.timebuckets import Resolution, to_ms
from tests.conftest import _database_url_of
from tests.support import ProcessGroup, unpack_bundle, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parent.parent


def stored_times(kit_id: str) -> list[int]:
    now = datetime.now(UTC)
    rows = readings_range_rows(
        kit=Kit.objects.get(pk=kit_id),
        start_ms=to_ms(now - timedelta(days=1)),
        end_ms=to_ms(now + timedelta(hours=1)),
        resolution=Resolution.RAW,
        sensors=["temperature"],
    )
    return [timestamp for timestamp, _, _ in rows]


@pytest.fixture
def processes(tmp_path):
    started = ProcessGroup(tmp_path)
    yield started
    started.stop_all()


@pytest.fixture
def stack(moto_server, mosquitto_broker, telemetry_tables, settings, tmp_path, processes):
    """A provisioned kit with its bundle unpacked, and the ingest bridge running as a process,
    reaching DynamoDB through a proxy the test may cut."""
    from django.db import connection

    settings.IOT_MQTT_ENDPOINT = "localhost"
    settings.IOT_MQTT_PORT = mosquitto_broker.port
    kit = registry.kit_register(
        id="e2e-kit", name="End to end", sensors=[registry.SensorSpec("temperature", "temperature", "°C")]
    )
    provisioning.kit_provision(kit_id=kit.id)
    kit.refresh_from_db()
    bundle = tmp_path / "bundle"
    unpack_bundle(kit, bundle)
    with (bundle / "kit.toml").open("a") as config:
        config.write("\n[agent]\ninterval_seconds = 0.5\n")

    dynamodb = TcpProxy(moto_server.port)
    bridge_credentials = mosquitto_broker.client_credentials("astroplant.ingest")
    env = {
        **os.environ,
        **moto_server.client_env(),
        "AWS_ENDPOINT_URL_DYNAMODB": dynamodb.url,
        "DYNAMODB_TABLE_PREFIX": telemetry_tables,
        "DJANGO_SETTINGS_MODULE": "astroplant_site.settings.test",
        "DATABASE_URL": _database_url_of(connection.settings_dict),
        "INGEST_MQTT_HOST": "localhost",
        "INGEST_MQTT_PORT": str(mosquitto_broker.port),
        "INGEST_CERTIFICATE_FILE": str(bridge_credentials.certificate),
        "INGEST_PRIVATE_KEY_FILE": str(bridge_credentials.private_key),
        "INGEST_ROOT_CA_FILE": str(bridge_credentials.root_ca),
        "PYTHONUNBUFFERED": "1",
    }
    bridge = processes.start("ingest", [sys.executable, "manage.py", "ingest", "--report-every", "1"], env)
    wait_until(lambda: "subscribed to" in bridge.log_path.read_text(), what="the bridge to subscribe")
    yield {"kit": kit, "bundle": bundle, "dynamodb": dynamodb, "bridge": bridge}
    dynamodb.close()


def start_agent(processes, bundle):
    return processes.start(
        "agent",
        [sys.executable, "-m", "device", "run", "--config", str(bundle / "kit.toml")],
        {**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def agent_sequence(bundle) -> tuple[int, int]:
    """(last sequence number the agent gave out, messages still waiting in its outbox)."""
    with sqlite3.connect(bundle / "unsent.sqlite3") as db:
        (sequence,) = db.execute("SELECT value FROM counters WHERE name = 'sequence'").fetchone()
        (waiting,) = db.execute("SELECT COUNT(*) FROM messages").fetchone()
    return sequence, waiting


def test_a_provisioned_kits_readings_reach_the_api(stack, processes, make_client, users):
    memberships.membership_add(kit=stack["kit"], username="owner", role="owner")
    agent = start_agent(processes, stack["bundle"])

    wait_until(lambda: len(stored_times("e2e-kit")) >= 3, timeout=60, what="readings in DynamoDB")
    response = make_client(users["owner"]).get("/kits/e2e-kit/data")

    assert response.status_code == 200
    latest = response.json()["temperature"][0]
    assert 10 < latest["value"] < 35  # a simulated greenhouse temperature
    assert processes.stop(agent) == 0
    assert Kit.objects.get(pk="e2e-kit").last_seen is not None


def test_dynamodb_cut_off_during_ingest_loses_no_reading(stack, processes):
    agent = start_agent(processes, stack["bundle"])
    wait_until(lambda: len(stored_times("e2e-kit")) >= 2, timeout=60, what="the first readings")

    logs = (stack["bridge"].log_path, agent.log_path)
    stack["dynamodb"].cut()
    wait_until(
        lambda: "Cannot store now" in stack["bridge"].log_path.read_text(),
        timeout=60,
        what="the bridge to notice",
        logs=logs,
    )
    stack["dynamodb"].restore()
    wait_until(
        lambda: len(stored_times("e2e-kit")) >= 12, timeout=60, what="readings after DynamoDB returned", logs=logs
    )
    assert processes.stop(agent) == 0

    sequence, waiting = agent_sequence(stack["bundle"])
    assert waiting == 0
    wait_until(lambda: len(stored_times("e2e-kit")) == sequence, timeout=30, what=f"all {sequence} readings")


def test_a_broker_outage_of_30_seconds_loses_no_reading_and_doubles_none(stack, processes, mosquitto_broker):
    agent = start_agent(processes, stack["bundle"])
    wait_until(lambda: len(stored_times("e2e-kit")) >= 2, timeout=60, what="the first readings")

    mosquitto_broker.stop()
    before_outage = len(stored_times("e2e-kit"))
    time.sleep(30)  # the outage the issue names; the agent measures every 0.5 s meanwhile
    assert agent_sequence(stack["bundle"])[1] >= 50  # queued on the kit's disk
    mosquitto_broker.start()  # the same port, CA and persistent sessions

    wait_until(lambda: agent_sequence(stack["bundle"])[1] == 0, timeout=120, what="the outbox to drain")
    assert processes.stop(agent) == 0
    sequence, waiting = agent_sequence(stack["bundle"])
    wait_until(lambda: len(stored_times("e2e-kit")) == sequence, timeout=30, what=f"all {sequence} readings")
    assert sequence > before_outage + 50

    # and every reading, whether the broker delivered it once or again after the outage, is
    # counted once in the hourly rollups the bridge keeps (brought up to date now)
    rollups_refresh_all()
    assert not RollupMark.objects.exists()
    now = datetime.now(UTC)
    hours = rollups_range(
        kit=Kit.objects.get(pk="e2e-kit"),
        start_ms=to_ms(now - timedelta(days=1)),
        end_ms=to_ms(now + timedelta(hours=1)),
        resolution=Resolution.HOUR,
    )
    assert sum(point.count for point in hours["temperature"]) == sequence
