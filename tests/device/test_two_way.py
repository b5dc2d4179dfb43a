"""Two-way with real processes: the kit agent (`python -m device run` with a provisioned kit's
bundle) against mosquitto with mutual TLS, and a test client in the cloud's place that publishes
configurations (retained) and commands and reads what the kit answers."""

import json
import os
import sqlite3
import sys
import threading
import tomllib
import uuid
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as mqtt
import pytest
import tomli_w
from paho.mqtt.enums import CallbackAPIVersion

from device import __version__
from device.commands import timestamp_parsed
from device.payloads import command_payload, config_payload, utc_timestamp
from kits import provisioning, registry
from localdev.tcp_proxy import TcpProxy
from tests.support import ProcessGroup, unpack_bundle, wait_until

pytestmark = [pytest.mark.integration]

# The cloud's rights in this test: send configurations and commands, read what kits send. (The
# backend's own identity, with the same rights, is the server side's.)
CLOUD = "test.cloud"
CLOUD_ACL = (
    f"user {CLOUD}\n"
    "topic write astroplant/kits/+/config\n"
    "topic write astroplant/kits/+/commands\n"
    "topic read astroplant/kits/#\n"
)


class Cloud:
    """A paho client with mutual TLS in the cloud's place; keeps what kits send, by channel."""

    def __init__(self, broker):
        credentials = broker.client_credentials(CLOUD)
        self.received: dict[str, list[dict]] = {"measurements": [], "status": [], "command-results": []}
        self._lock = threading.Lock()
        connected = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=CLOUD, protocol=mqtt.MQTTv311)
        self.client.tls_set(
            ca_certs=str(credentials.root_ca),
            certfile=str(credentials.certificate),
            keyfile=str(credentials.private_key),
        )
        self.client.on_connect = lambda *args: connected.set()
        self.client.on_message = self._on_message
        self.client.connect("localhost", broker.port)
        self.client.loop_start()
        assert connected.wait(10), "the cloud client could not connect"
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *args: subscribed.set()
        self.client.subscribe("astroplant/kits/#", qos=1)
        assert subscribed.wait(10)

    def _on_message(self, client, userdata, message):
        channel = message.topic.rsplit("/", 1)[-1]
        if channel in self.received:
            with self._lock:
                self.received[channel].append(json.loads(message.payload))

    def messages(self, channel: str) -> list[dict]:
        with self._lock:
            return list(self.received[channel])

    def publish(self, topic: str, payload: str, *, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(10)
        assert info.is_published()

    def configure(self, kit, version: int, desired: dict, *, time_zone: str = "UTC") -> None:
        payload = config_payload(
            kit_id=kit["id"], version=version, desired=desired, time_zone=time_zone, timestamp=utc_timestamp()
        )
        self.publish(kit["topics"]["config"], payload, retain=True)

    def command(self, kit, name: str, arguments: dict | None = None, *, expires_in: float = 60) -> str:
        command_id = str(uuid.uuid4())
        now = datetime.now(UTC)
        payload = command_payload(
            kit_id=kit["id"],
            id=command_id,
            name=name,
            arguments=arguments or {},
            expires_at=utc_timestamp(now + timedelta(seconds=expires_in)),
            timestamp=utc_timestamp(now),
        )
        self.publish(kit["topics"]["commands"], payload)
        return command_id

    def status_of(self, version: int) -> dict | None:
        return next((s for s in self.messages("status") if s.get("config_version") == version), None)

    def result_of(self, command_id: str) -> dict | None:
        return next((r for r in self.messages("command-results") if r["id"] == command_id), None)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def broker(tmp_path):
    from kits.certificates import project_authority
    from localdev.mosquitto import MosquittoBroker

    with MosquittoBroker(
        authority=project_authority(), directory=tmp_path / "mosquitto", extra_acl=CLOUD_ACL
    ) as started:
        yield started


@pytest.fixture
def kit(db, moto_server, broker, settings, unique_kit_id, tmp_path):
    """A provisioned kit's bundle, unpacked as on the Pi, reaching the broker through a proxy the
    test may cut; with a dimmable LED panel, a fan, and a heater on a GPIO relay it cannot drive
    (no gpiozero, no Raspberry Pi here). It measures every 30 s until configured."""
    proxy = TcpProxy(broker.port)
    settings.IOT_MQTT_ENDPOINT = "localhost"
    settings.IOT_MQTT_PORT = proxy.port
    registered = registry.kit_register(
        id=unique_kit_id("two-way"),
        name="Two-way",
        sensors=[
            registry.SensorSpec("temperature", "temperature", "°C"),
            registry.SensorSpec("light", "light", "lux"),
        ],
    )
    provisioning.kit_provision(kit_id=registered.id)
    registered.refresh_from_db()
    folder = tmp_path / "bundle"
    unpack_bundle(registered, folder)
    config_file = folder / "kit.toml"
    document = tomllib.loads(config_file.read_text())
    document["agent"] = {"interval_seconds": 30, "rules_interval_seconds": 1}
    document["actuators"] = [
        {"key": "led", "kind": "light", "dimmable": True},
        {"key": "fan", "kind": "fan"},
        {"key": "heater", "kind": "heater", "driver": "gpio_relay", "options": {"pin": 17}},
    ]
    config_file.write_text(tomli_w.dumps(document))
    yield {"id": registered.id, "topics": document["topics"], "config": config_file, "proxy": proxy}
    proxy.close()


@pytest.fixture
def cloud(broker):
    client = Cloud(broker)
    yield client
    client.close()


@pytest.fixture
def processes(tmp_path):
    started = ProcessGroup(tmp_path)
    yield started
    started.stop_all()


def start_agent(processes, kit):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return processes.start("agent", [sys.executable, "-m", "device", "run", "--config", str(kit["config"])], env)


def gaps(measurements: list[dict]) -> list[float]:
    times = [timestamp_parsed(m["timestamp"]) for m in measurements]
    return [(later - earlier).total_seconds() for earlier, later in zip(times[:-1], times[1:], strict=True)]


def measurements_after(cloud, sequence: int) -> list[dict]:
    return sorted((m for m in cloud.messages("measurements") if m["sequence"] > sequence), key=lambda m: m["sequence"])


def latest_sequence(cloud, logs) -> int:
    """The sequence number of the latest measurement the cloud has (after waiting for one)."""
    wait_until(lambda: cloud.messages("measurements"), timeout=30, what="a measurement", logs=logs)
    return max(m["sequence"] for m in cloud.messages("measurements"))


def sequence_given_out(kit) -> int:
    with sqlite3.connect(kit["config"].parent / "unsent.sqlite3") as db:
        return db.execute("SELECT value FROM counters WHERE name = 'sequence'").fetchone()[0]


def queued_measurements(kit) -> int:
    with sqlite3.connect(kit["config"].parent / "unsent.sqlite3") as db:
        return db.execute("SELECT COUNT(*) FROM messages WHERE topic LIKE '%/measurements'").fetchone()[0]


LED_AT_60 = {"interval_seconds": 2, "actuators": {"led": {"mode": "on", "level": 60}}}


def test_a_configuration_is_applied_and_measurements_follow_it_and_one_it_cannot_run_is_rejected(kit, cloud, processes):
    agent = start_agent(processes, kit)
    logs = (agent.log_path,)
    wait_until(lambda: cloud.messages("measurements"), timeout=30, what="the kit's first measurement", logs=logs)

    # When the cloud sets an interval of 2 s and the LED panel at 60
    cloud.configure(kit, 1, LED_AT_60)

    # Then the kit says it applied version 1, and its measurements come every 2 s with the levels
    wait_until(lambda: cloud.status_of(1), timeout=30, what="the status of version 1", logs=logs)
    status = cloud.status_of(1)
    assert (status["config_status"], status["reason"]) == ("applied", None)
    first = latest_sequence(cloud, logs)
    wait_until(lambda: len(measurements_after(cloud, first)) >= 4, timeout=30, what="4 measurements", logs=logs)
    following = measurements_after(cloud, first)
    assert all(1.5 <= gap <= 2.6 for gap in gaps(following)), gaps(following)
    # the heater has no working driver, so it reports no level
    assert all(m["actuators"] == {"led": 60, "fan": 0} for m in following)

    # When the cloud asks for something the kit cannot run: the heater on
    cloud.configure(kit, 2, {"interval_seconds": 5, "actuators": {"heater": {"mode": "on"}, "fan": {"mode": "on"}}})

    # Then it is rejected with the kit's reason, and nothing of it is applied
    wait_until(lambda: cloud.status_of(2), timeout=30, what="the status of version 2", logs=logs)
    rejected = cloud.status_of(2)
    assert rejected["config_status"] == "rejected"
    assert "actuators.heater" in rejected["reason"] and "gpio_relay" in rejected["reason"]
    last = latest_sequence(cloud, logs)
    wait_until(lambda: len(measurements_after(cloud, last)) >= 2, timeout=30, what="2 more measurements", logs=logs)
    after = measurements_after(cloud, last)
    assert all(m["actuators"] == {"led": 60, "fan": 0} for m in after)
    assert all(1.5 <= gap <= 2.6 for gap in gaps(after))
    assert processes.stop(agent) == 0


def test_a_ping_is_answered_and_an_expired_command_is_never_acted_on(kit, cloud, processes):
    agent = start_agent(processes, kit)
    logs = (agent.log_path,)
    cloud.configure(kit, 1, LED_AT_60)
    wait_until(lambda: cloud.status_of(1), timeout=30, what="the kit to be configured", logs=logs)

    # When the cloud pings the kit
    ping = cloud.command(kit, "ping")

    # Then it answers with its uptime and version
    wait_until(lambda: cloud.result_of(ping), timeout=30, what="the ping's answer", logs=logs)
    answer = cloud.result_of(ping)
    assert answer["status"] == "succeeded" and answer["reason"] is None
    assert answer["result"]["software_version"] == __version__ and answer["result"]["uptime_seconds"] >= 0

    # When a command arrives that expired before it was delivered, then another
    expired = cloud.command(kit, "set_actuator", {"actuator": "led", "level": 100}, expires_in=-5)
    fan_on = cloud.command(kit, "set_actuator", {"actuator": "fan", "level": 100})

    # Then the kit answers the second (it handles them in order) and never the expired one,
    # nor does it act on it: the LED stays at its rule's 60 while the fan runs
    wait_until(lambda: cloud.result_of(fan_on), timeout=30, what="the second command's answer", logs=logs)
    assert cloud.result_of(fan_on)["status"] == "succeeded"
    assert cloud.result_of(expired) is None
    assert f"Command {expired} (set_actuator) expired" in agent.log_path.read_text()
    seen = latest_sequence(cloud, logs)
    wait_until(lambda: measurements_after(cloud, seen), timeout=30, what="a measurement", logs=logs)
    assert measurements_after(cloud, seen)[0]["actuators"] == {"led": 60, "fan": 100}
    assert cloud.result_of(expired) is None
    assert processes.stop(agent) == 0


def test_a_kit_offline_during_the_change_applies_it_when_it_connects(kit, cloud, processes):
    # Given a configuration published while the kit is off
    cloud.configure(kit, 7, LED_AT_60, time_zone="Europe/Amsterdam")

    # When the kit starts
    agent = start_agent(processes, kit)

    # Then it receives the retained configuration, applies it and reports that
    wait_until(lambda: cloud.status_of(7), timeout=30, what="the status of version 7", logs=(agent.log_path,))
    assert cloud.status_of(7)["config_status"] == "applied"
    wait_until(lambda: len(cloud.messages("measurements")) >= 3, timeout=30, what="measurements")
    assert cloud.messages("measurements")[-1]["actuators"] == {"led": 60, "fan": 0}
    assert processes.stop(agent) == 0


def test_a_kit_restarted_without_the_broker_runs_its_last_configuration(kit, cloud, processes):
    # Given a kit that applied an interval of 2 s and stopped
    agent = start_agent(processes, kit)
    cloud.configure(kit, 1, LED_AT_60)
    wait_until(lambda: cloud.status_of(1), timeout=30, what="the status of version 1", logs=(agent.log_path,))
    assert processes.stop(agent) == 0
    before = sequence_given_out(kit)  # what the first run measured, sent or not

    # When it starts again while the broker cannot be reached
    kit["proxy"].cut()
    agent = start_agent(processes, kit)
    logs = (agent.log_path,)

    # Then it runs the configuration it kept (measurements queue on its disk meanwhile)...
    wait_until(lambda: queued_measurements(kit) >= 3, timeout=30, what="measurements queued offline", logs=logs)
    assert "Running configuration version 1, kept from before" in agent.log_path.read_text()
    assert "Cannot connect" in agent.log_path.read_text()

    # ...and once the broker is back, its measurements show the interval and the LED of that configuration
    kit["proxy"].restore()
    wait_until(
        lambda: len(measurements_after(cloud, before)) >= 3, timeout=90, what="the queued measurements", logs=logs
    )
    sent_later = measurements_after(cloud, before)
    assert all(1.5 <= gap <= 2.6 for gap in gaps(sent_later)), gaps(sent_later)
    assert all(m["actuators"] == {"led": 60, "fan": 0} for m in sent_later)
    assert processes.stop(agent) == 0


def test_a_kit_whose_connection_drops_gets_the_change_made_meanwhile_when_it_reconnects(kit, cloud, processes):
    # Given a running, configured kit
    agent = start_agent(processes, kit)
    logs = (agent.log_path,)
    cloud.configure(kit, 1, LED_AT_60)
    wait_until(lambda: cloud.status_of(1), timeout=30, what="the status of version 1", logs=logs)

    # When its connection drops, the configuration changes meanwhile, and the network returns
    kit["proxy"].cut()
    wait_until(lambda: "Broker link is down" in agent.log_path.read_text(), timeout=60, what="the kit to notice")
    cloud.configure(kit, 2, {"interval_seconds": 2, "actuators": {"led": {"mode": "on", "level": 20}}})
    kit["proxy"].restore()

    # Then the SDK's reconnection renews the subscriptions, and the kit applies the change
    wait_until(lambda: cloud.status_of(2), timeout=90, what="the status of version 2", logs=logs)
    assert cloud.status_of(2)["config_status"] == "applied"
    seen = latest_sequence(cloud, logs)
    wait_until(lambda: measurements_after(cloud, seen), timeout=30, what="a measurement", logs=logs)
    assert measurements_after(cloud, seen)[-1]["actuators"] == {"led": 20, "fan": 0}
    assert processes.stop(agent) == 0
