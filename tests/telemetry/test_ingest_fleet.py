"""The ingest bridge as a fleet meets it: real `manage.py ingest` processes, mosquitto with mutual
TLS, DynamoDB on moto_server and the test database; kits publish with paho-mqtt, each with its
own certificate.

A kit that keeps sending messages DynamoDB can never store must not hold back the other kits,
and two bridges in one shared subscription split the kits' messages, one of them killed and
started again without a reading lost or counted twice (raw or in the hourly rollups)."""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from kits import registry
from kits.models import Kit
from telemetry.dead_letters import DeadLetter
from telemetry.dynamodb import as_plain_dict, rollup_periods_get
from telemetry.kit_state import RollupMark
from telemetry.selectors import readings_range_rows
from telemetry.services import rollups_refresh_all
from telemetry.timebuckets import HOUR_MS, Resolution, period_of, slot_start, slots_decode, to_ms
from tests.conftest import _database_url_of
from tests.support import ProcessGroup, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
FIRST_BRIDGE, SECOND_BRIDGE = "astroplant.ingest", "astroplant.ingest.2"
PROGRESS = re.compile(r"(\d+) messages: (\d+) readings stored, \d+ statuses, (\d+) dead letters")


# --- Bridges and kits ------------------------------------------------------------------------


class Bridges:
    """`manage.py ingest` processes of one test, each with its client id's own certificate (the
    same one again when a client id is started again); stopped when the test ends."""

    def __init__(self, env: dict, broker, tmp_path: Path):
        self.env = env
        self.broker = broker
        self.credentials = {}
        self.processes = ProcessGroup(tmp_path)

    def start(self, client_id: str, name: str) -> subprocess.Popen:
        if client_id not in self.credentials:
            self.credentials[client_id] = self.broker.client_credentials(client_id)
        credentials = self.credentials[client_id]
        env = {
            **self.env,
            "INGEST_CLIENT_ID": client_id,
            "INGEST_CERTIFICATE_FILE": str(credentials.certificate),
            "INGEST_PRIVATE_KEY_FILE": str(credentials.private_key),
            "INGEST_ROOT_CA_FILE": str(credentials.root_ca),
        }
        command = [sys.executable, "manage.py", "ingest", "--report-every", "1"]
        process = self.processes.start(name, command, env)
        wait_until(
            lambda: "subscribed to" in process.log_path.read_text() or process.poll() is not None,
            timeout=60,
            what=f"{name} to subscribe",
            logs=(process.log_path,),
        )
        assert process.poll() is None, f"{name} ended:\n{process.log_path.read_text()}"
        return process

    def stop(self, process: subprocess.Popen) -> int:
        code = self.processes.stop(process)
        assert code is not None, f"The bridge did not stop within 30 s of SIGTERM:\n{process.log_path.read_text()}"
        return code

    def stop_all(self) -> None:
        self.processes.stop_all()


@pytest.fixture
def bridges(transactional_db, moto_server, mosquitto_broker, telemetry_tables, tmp_path):
    from django.db import connection

    env = {
        **os.environ,
        **moto_server.client_env(),
        "DYNAMODB_TABLE_PREFIX": telemetry_tables,
        "DJANGO_SETTINGS_MODULE": "astroplant_site.settings.test",
        "DATABASE_URL": _database_url_of(connection.settings_dict),
        "INGEST_MQTT_HOST": "localhost",
        "INGEST_MQTT_PORT": str(mosquitto_broker.port),
        # The bridges' refresher brings rollups up to date a second after the readings.
        "TELEMETRY_ROLLUP_DELAY_SECONDS": "1",
        "PYTHONUNBUFFERED": "1",
    }
    started = Bridges(env, mosquitto_broker, tmp_path)
    yield started
    started.stop_all()


class KitPublisher:
    """A kit's MQTT client, connected with its own certificate; publishes with QoS 1."""

    def __init__(self, broker, kit_id: str):
        credentials = broker.client_credentials(f"astroplant-{kit_id}")
        self.kit_id = kit_id
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"astroplant-{kit_id}")
        self.client.tls_set(str(credentials.root_ca), str(credentials.certificate), str(credentials.private_key))
        self.client.connect("localhost", broker.port)
        self.client.loop_start()
        self.topic = f"astroplant/kits/astroplant-{kit_id}/measurements"

    def publish(self, payload: bytes) -> None:
        info = self.client.publish(self.topic, payload, qos=1)
        info.wait_for_publish(timeout=10)
        assert info.is_published(), f"the broker did not take {self.kit_id}'s message"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def publishers(mosquitto_broker):
    """`publishers(kit ids)`: a connected KitPublisher per kit, closed when the test ends."""
    made: list[KitPublisher] = []

    def connect(kit_ids):
        new = [KitPublisher(mosquitto_broker, kit_id) for kit_id in kit_ids]
        made.extend(new)
        wait_until(lambda: all(p.client.is_connected() for p in new), what="the kits to connect")
        return new

    yield connect
    for publisher in made:
        publisher.close()


def kits_register(kit_ids) -> None:
    for kit_id in kit_ids:
        registry.kit_register(id=kit_id, name=kit_id)


# --- Messages --------------------------------------------------------------------------------


def message(kit_id: str, sequence: int, timestamp: str, readings: dict) -> bytes:
    body = {"schema_version": 1, "kit_id": kit_id, "timestamp": timestamp, "sequence": sequence, "readings": readings}
    return json.dumps(body).encode()


def wire_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def normal_message(kit_id: str, sequence: int, base: datetime) -> bytes:
    """The kit's message number `sequence`, taken `sequence` seconds after `base`; the sequence
    is a reading too, so the stored readings say which messages arrived."""
    readings = {"temperature": 20.0 + sequence % 7 / 2, "humidity": 55.0, "seq": float(sequence)}
    return message(kit_id, sequence, wire_time(base + timedelta(seconds=sequence)), readings)


def poison_message(kit_id: str, number: int, base: datetime) -> tuple[bytes, str]:
    """A message no bridge can ever store, and the part of the reason its dead letter must give:
    mostly a value DynamoDB refuses (under 1E-130), once a JSON integer too large for a float,
    once a timestamp with both Z and an offset."""
    at = wire_time(base + timedelta(seconds=number))
    if number == 2:
        # Written literally: 401 digits, no float holds it.
        return message(kit_id, number, at, {"temperature": 10**400}), "too large to store"
    if number == 3:
        return message(kit_id, number, "2026-11-30T10:00:00+02:00Z", {"temperature": 21.0}), "not an ISO 8601"
    return message(kit_id, number, at, {"temperature": 1e-200}), "too close to zero"


# --- What was stored -------------------------------------------------------------------------


def raw_rows(kit_id: str, sensors: list[str] | None = None) -> list[tuple[int, str, float]]:
    now = datetime.now(UTC)
    return list(
        readings_range_rows(
            kit=Kit.objects.get(pk=kit_id),
            start_ms=to_ms(now - timedelta(days=1)),
            end_ms=to_ms(now + timedelta(hours=1)),
            resolution=Resolution.RAW,
            sensors=sensors,
        )
    )


def stored_sequences(kit_id: str) -> list[int]:
    """The sequence numbers of the kit's stored readings, in time order (one row per reading)."""
    return [int(value) for _, _, value in raw_rows(kit_id, ["seq"])]


def all_stored(kit_ids, count: int) -> bool:
    expected = list(range(1, count + 1))
    return all(stored_sequences(kit_id) == expected for kit_id in kit_ids)


def every(seconds: float, condition):
    """`condition`, checked at most once every `seconds` (each check reads DynamoDB): False between."""
    last = [0.0]

    def check() -> bool:
        if time.monotonic() - last[0] < seconds:
            return False
        last[0] = time.monotonic()
        return condition()

    return check


def readings_stored_in(log_path: Path) -> int:
    """The most readings a bridge said it stored, in its progress lines."""
    return max((int(match[2]) for match in PROGRESS.finditer(log_path.read_text())), default=0)


def pace(start: float, tick: int, interval: float) -> None:
    time.sleep(max(0.0, start + tick * interval - time.monotonic()))


# --- Tests -----------------------------------------------------------------------------------


def test_a_kit_sending_poison_never_holds_back_the_other_kits(bridges, publishers):
    normal = [f"fleet-{number}" for number in range(1, 5)]
    poisoner = "fleet-poison"
    kits_register([*normal, poisoner])
    bridge = bridges.start(FIRST_BRIDGE, "ingest")
    kits = publishers(normal)
    (poison_kit,) = publishers([poisoner])
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=20)
    messages, interval = 30, 0.4  # 12 s of 10 messages a second from the four normal kits
    poison_sent: dict[bytes, str] = {}

    start = time.monotonic()
    for tick in range(messages):
        for kit in kits:
            kit.publish(normal_message(kit.kit_id, tick + 1, base))
        if tick % 5 == 0:  # every 2 s
            payload, reason = poison_message(poisoner, len(poison_sent) + 1, base)
            poison_kit.publish(payload)
            poison_sent[payload] = reason
        pace(start, tick + 1, interval)
    published_at = time.monotonic()

    logs = (bridge.log_path,)
    wait_until(every(0.5, lambda: all_stored(normal, messages)), timeout=60, what="every normal reading", logs=logs)
    stored_after = time.monotonic() - published_at
    wait_until(
        lambda: DeadLetter.objects.filter(kit_id=poisoner).count() >= len(poison_sent),
        timeout=30,
        what="every poison message's dead letter",
        logs=logs,
    )
    letters = list(DeadLetter.objects.filter(kit_id=poisoner).order_by("id"))
    print(f"All {len(normal) * messages} normal readings stored {stored_after:.1f} s after the last publish.")
    for letter in letters:
        print(f"Dead letter: {bytes(letter.payload)[:120]!r}... -> {letter.reason}")

    for kit_id in normal:
        assert stored_sequences(kit_id) == list(range(1, messages + 1)), kit_id
    assert raw_rows(poisoner) == []
    assert Counter(bytes(letter.payload) for letter in letters) == Counter(list(poison_sent))
    for letter in letters:
        assert letter.reason
        assert poison_sent[bytes(letter.payload)] in letter.reason
        assert letter.topic == f"astroplant/kits/astroplant-{poisoner}/measurements"
    assert not DeadLetter.objects.exclude(kit_id=poisoner).exists()
    assert bridge.poll() is None, bridge.log_path.read_text()
    assert "Unexpected error" not in bridge.log_path.read_text()


def test_two_bridges_share_the_load_and_survive_one_being_killed(bridges, publishers, mosquitto_broker):
    kit_ids = [f"shared-{number}" for number in range(1, 6)]
    kits_register(kit_ids)
    first = bridges.start(FIRST_BRIDGE, "ingest-1")
    second = bridges.start(SECOND_BRIDGE, "ingest-2")
    kits = publishers(kit_ids)
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    messages, interval = 20, 1.0  # each kit one message a second for 20 s
    errors: list[BaseException] = []

    def publish_all() -> None:
        start = time.monotonic()
        try:
            for tick in range(messages):
                for kit in kits:
                    kit.publish(normal_message(kit.kit_id, tick + 1, base))
                pace(start, tick + 1, interval)
        except BaseException as error:  # re-raised in the test's thread
            errors.append(error)

    publisher = threading.Thread(target=publish_all, name="kits")
    publisher.start()
    try:
        wait_until(
            lambda: readings_stored_in(first.log_path) > 0 and readings_stored_in(second.log_path) > 0,
            timeout=30,
            what="both bridges to store readings",
            logs=(first.log_path, second.log_path),
        )
        broker_log_before = len(mosquitto_broker.log_file.read_text())
        second.send_signal(signal.SIGKILL)
        second.wait(timeout=10)
        killed_at = time.monotonic()
        gone = (f"Client {SECOND_BRIDGE} closed its connection", f"Client {SECOND_BRIDGE} disconnected")
        wait_until(
            lambda: any(text in mosquitto_broker.log_file.read_text()[broker_log_before:] for text in gone),
            what="the broker to notice the killed bridge",
            logs=(mosquitto_broker.log_file,),
        )
        time.sleep(2)  # the killed bridge stays away a while; its session queues its share
        restarted = bridges.start(SECOND_BRIDGE, "ingest-2-restarted")
        print(f"The second bridge was away {time.monotonic() - killed_at:.1f} s.")
    finally:
        publisher.join(timeout=120)
    assert not publisher.is_alive()
    if errors:
        raise errors[0]

    logs = (first.log_path, second.log_path, restarted.log_path)
    wait_until(every(1.0, lambda: all_stored(kit_ids, messages)), timeout=60, what="every reading", logs=logs)
    assert bridges.stop(first) == 0
    assert bridges.stop(restarted) == 0
    refreshed = rollups_refresh_all()

    stored_by = {name: readings_stored_in(log) for name, log in zip(("1", "2", "2 restarted"), logs, strict=True)}
    print(f"Readings stored by each bridge: {stored_by}; refreshed at the end: {refreshed}")
    for kit_id in kit_ids:
        rows = raw_rows(kit_id, ["seq"])
        assert [int(value) for _, _, value in rows] == list(range(1, messages + 1)), kit_id
        assert [timestamp for timestamp, _, _ in rows] == [
            to_ms(base + timedelta(seconds=sequence)) for sequence in range(1, messages + 1)
        ]
    assert stored_by["1"] > 0
    assert stored_by["2"] + stored_by["2 restarted"] > 0
    assert stored_by["2 restarted"] > 0  # back in the group, it takes its share again
    for log in logs:
        assert "Unexpected error" not in log.read_text(), log.name

    assert RollupMark.objects.count() == 0, list(RollupMark.objects.values())
    for kit_id in kit_ids:
        raw: dict[tuple[str, int], list[float]] = defaultdict(list)
        for timestamp, sensor, value in raw_rows(kit_id):
            raw[(sensor, timestamp - timestamp % HOUR_MS)].append(value)
        periods = {period_of(Resolution.HOUR, hour)[0] for _, hour in raw}
        items = rollup_periods_get([(kit_id, period) for period in periods], consistent=True)
        assert set(items) == {(kit_id, period) for period in periods}, kit_id
        stored = {}
        for (_, period), item in items.items():
            for sensor, text in as_plain_dict(item.sensors).items():
                for slot, stats in slots_decode(text).items():
                    stored[(sensor, slot_start(period, slot))] = (stats.count, stats.minimum, stats.maximum)
        assert stored == {bucket: (len(values), min(values), max(values)) for bucket, values in raw.items()}, kit_id
