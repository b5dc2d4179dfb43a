"""The backend publishes to the kits' broker: a real mosquitto with mutual TLS, a real Celery worker
(in this process, so it sees these tests' settings) on the test Redis, and kits listening with
their own certificates. A configuration is retained (a kit that connects later still gets it); a
command is not; a broker that is away delays a publication, never loses it."""

import json
import threading
import time

import paho.mqtt.client as mqtt
import pytest

from control import mqtt_publisher
from control.exceptions import BrokerUnavailable, PublishRefused
from control.models import Command, KitConfiguration
from tests.support import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


class Listener:
    """A kit (or any client the broker lets in) subscribed to one topic, keeping what arrives with
    its retain flag."""

    def __init__(self, broker, common_name: str, topic: str):
        credentials = broker.client_credentials(common_name)
        self.received: list[tuple[dict, bool]] = []
        subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=common_name, protocol=mqtt.MQTTv5)
        self.client.tls_set(str(credentials.root_ca), str(credentials.certificate), str(credentials.private_key))
        self.client.on_subscribe = lambda *args: subscribed.set()
        self.client.on_message = lambda client, userdata, message: self.received.append(
            (json.loads(message.payload), bool(message.retain))
        )
        self.client.connect("localhost", broker.port)
        self.client.loop_start()
        self.client.subscribe(topic, qos=1)
        assert subscribed.wait(10), f"{common_name} could not subscribe to {topic}"

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def kit_topic(kit_id: str, channel: str) -> str:
    return f"astroplant/kits/astroplant-{kit_id}/{channel}"


@pytest.fixture
def owner(make_client, users, actuated_kits):
    return make_client(users["owner"])


def test_a_change_is_published_retained_and_a_kit_connecting_later_gets_only_the_newest(
    owner, backend_on_broker, celery_worker_in_process
):
    # Given the kit listening to its config topic
    live = Listener(backend_on_broker, "astroplant-private-kit", kit_topic("private-kit", "config"))

    # When an owner changes its configuration twice
    owner.put("/kits/private-kit/configuration", {"desired": {"interval_seconds": 10}}, format="json")
    owner.put("/kits/private-kit/configuration", {"desired": {"interval_seconds": 2}}, format="json")

    # Then the worker published the newest after the change committed, and recorded it
    wait_until(lambda: any(m["version"] == 2 for m, _ in live.received), what="version 2 at the kit")
    live.close()
    message = next(m for m, _ in live.received if m["version"] == 2)
    assert message["kit_id"] == "private-kit"
    assert message["time_zone"] == "UTC"
    assert message["desired"]["interval_seconds"] == 2
    assert message["desired"]["actuators"] == {"fan": {"mode": "off"}, "led": {"mode": "off"}}
    wait_until(lambda: KitConfiguration.objects.get(kit_id="private-kit").published_version == 2, what="published")

    # and a kit that connects only now still receives it, retained, and nothing older
    late = Listener(backend_on_broker, "astroplant-private-kit", kit_topic("private-kit", "config"))
    wait_until(lambda: late.received, what="the retained configuration")
    time.sleep(0.3)  # the broker sends a topic's one retained message at once on subscribing
    late.close()
    assert (late.received[0][0]["version"], late.received[0][1]) == (2, True)
    # (the second change's task may publish version 2 again, harmlessly: never version 1)
    assert {m["version"] for m, _ in late.received} == {2}


def test_the_kits_time_zone_travels_with_its_configuration(owner, backend_on_broker, celery_worker_in_process):
    from kits.models import Kit

    Kit.objects.filter(pk="private-kit").update(time_zone="Europe/Amsterdam")

    owner.put("/kits/private-kit/configuration", {"desired": {"interval_seconds": 10}}, format="json")

    late = Listener(backend_on_broker, "astroplant-private-kit", kit_topic("private-kit", "config"))
    wait_until(lambda: late.received, what="the retained configuration")
    late.close()
    assert late.received[0][0]["time_zone"] == "Europe/Amsterdam"


def test_a_command_is_sent_once_not_retained(owner, backend_on_broker, celery_worker_in_process):
    live = Listener(backend_on_broker, "astroplant-private-kit", kit_topic("private-kit", "commands"))

    first = owner.post(
        "/kits/private-kit/commands",
        {"name": "set_actuator", "arguments": {"actuator": "led", "level": 40}},
        format="json",
    ).json()

    wait_until(lambda: live.received, what="the command at the kit")
    message, retained = live.received[0]
    assert not retained
    assert {key: message[key] for key in ("kit_id", "id", "name", "arguments")} == {
        "kit_id": "private-kit",
        "id": first["id"],
        "name": "set_actuator",
        "arguments": {"actuator": "led", "level": 40},
    }
    assert message["expires_at"] == first["expires_at"].replace("Z", "")[:23] + "Z"
    wait_until(lambda: Command.objects.get(pk=first["id"]).status == "sent", what="the command marked sent")
    assert owner.get(f"/kits/private-kit/commands/{first['id']}").json()["status"] == "sent"

    # A kit subscribing later gets no old command: only the next one
    late = Listener(backend_on_broker, "astroplant-private-kit", kit_topic("private-kit", "commands"))
    second = owner.post("/kits/private-kit/commands", {"name": "ping"}, format="json").json()
    wait_until(lambda: late.received, what="the second command at the late kit")
    live.close()
    late.close()
    assert [m["id"] for m, _ in late.received] == [second["id"]]


def test_a_broker_that_is_away_delays_the_configuration_but_never_loses_it(
    owner, settings, celery_worker_in_process, tmp_path, retries
):
    from kits.certificates import project_authority
    from localdev.mosquitto import BACKEND_CLIENT, MosquittoBroker
    from localdev.ports import free_port

    # Given the broker is down: the backend's certificate is ready but nothing listens on its port
    broker = MosquittoBroker(authority=project_authority(), directory=tmp_path / "late-broker", port=free_port())
    credentials = broker.client_credentials(BACKEND_CLIENT)
    settings.BACKEND_MQTT_HOST, settings.BACKEND_MQTT_PORT = "localhost", broker.port
    settings.BACKEND_MQTT_CERTIFICATE_FILE = str(credentials.certificate)
    settings.BACKEND_MQTT_PRIVATE_KEY_FILE = str(credentials.private_key)
    settings.BACKEND_MQTT_ROOT_CA_FILE = str(credentials.root_ca)

    # When the configuration changes, and the worker's first attempts fail
    response = owner.put("/kits/private-kit/configuration", {"desired": {"interval_seconds": 15}}, format="json")
    assert response.status_code == 200  # the person is not kept waiting on the broker
    wait_until(lambda: "control.configuration_publish" in retries, timeout=30, what="a retry of the publication")
    assert KitConfiguration.objects.get(kit_id="private-kit").published_version is None

    # Then once the broker is back, a retry publishes it, and the kit finds it retained
    with broker:
        wait_until(
            lambda: KitConfiguration.objects.get(kit_id="private-kit").published_version == 1,
            timeout=30,
            what="the publication after the broker came back",
        )
        kit = Listener(broker, "astroplant-private-kit", kit_topic("private-kit", "config"))
        wait_until(lambda: kit.received, what="the retained configuration")
        kit.close()
    assert kit.received[0][0]["desired"]["interval_seconds"] == 15


@pytest.fixture
def retries():
    """The retries of Celery tasks from now on, by task name (the worker runs in this process)."""
    from celery.signals import task_retry

    seen: list[str] = []

    def record(sender=None, **kwargs):
        seen.append(sender.name)

    task_retry.connect(record, weak=False)
    yield seen
    task_retry.disconnect(record)


def test_the_adapter_tells_a_broker_away_from_a_refusal(backend_on_broker, settings, tmp_path):
    # A message the backend may send is confirmed
    mqtt_publisher.message_publish(topic=kit_topic("some-kit", "commands"), payload="{}", retain=False)

    # One on a kit's own channel is refused by the broker's policy: trying again cannot help
    with pytest.raises(PublishRefused, match="Not authorized"):
        mqtt_publisher.message_publish(topic=kit_topic("some-kit", "measurements"), payload="{}", retain=False)

    # A broker that does not answer may answer later
    settings.BACKEND_MQTT_PORT = 9
    with pytest.raises(BrokerUnavailable, match="Cannot reach the MQTT broker"):
        mqtt_publisher.message_publish(topic=kit_topic("some-kit", "commands"), payload="{}", retain=False)


def test_a_change_made_while_publishing_is_published_too(owner, users, backend_on_broker, monkeypatch):
    from control import services

    kit = users["owner"].kit_memberships.get(kit_id="private-kit").kit
    services.configuration_change(kit=kit, desired={"interval_seconds": 10}, user=users["owner"])
    real_publish = mqtt_publisher.message_publish
    calls = []

    def publish_while_someone_changes_it(**message):
        # Another person changes the configuration while this worker waits for the broker: as if
        # their worker's publication overtook this one
        calls.append(json.loads(message["payload"])["version"])
        real_publish(**message)
        if len(calls) == 1:
            services.configuration_change(kit=kit, desired={"interval_seconds": 20}, user=users["owner"])

    monkeypatch.setattr(mqtt_publisher, "message_publish", publish_while_someone_changes_it)

    assert services.configuration_publish(kit_id="private-kit") == 2

    assert calls == [1, 2]
    late = Listener(backend_on_broker, "astroplant-private-kit", kit_topic("private-kit", "config"))
    wait_until(lambda: late.received, what="the retained configuration")
    late.close()
    assert late.received[0][0]["version"] == 2
    assert KitConfiguration.objects.get(kit_id="private-kit").published_version == 2
