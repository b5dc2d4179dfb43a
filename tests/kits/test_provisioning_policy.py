"""A kit's allowed topics are exactly its own: in the AWS IoT policy document, and on a real
mosquitto with mutual TLS, connecting with the bundles the provisioning produced."""

import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from kits import provisioning, registry
from kits.iot_policy import THING_NAME_VARIABLE, kit_policy_document
from tests.support import unpack_bundle, wait_until

pytestmark = [pytest.mark.integration]


def test_the_policy_lets_a_kit_connect_as_itself_and_use_only_its_own_topics():
    document = kit_policy_document(region="eu-central-1", account_id="123456789012")
    grants = {}
    for statement in document["Statement"]:
        assert statement["Effect"] == "Allow"
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        grants[statement["Action"]] = resources
    own = "astroplant/kits/${iot:Connection.Thing.ThingName}"
    prefix = "arn:aws:iot:eu-central-1:123456789012"
    assert grants == {
        "iot:Connect": [f"{prefix}:client/${{iot:Connection.Thing.ThingName}}"],
        "iot:Publish": [
            f"{prefix}:topic/{own}/measurements",
            f"{prefix}:topic/{own}/status",
            f"{prefix}:topic/{own}/command-results",
        ],
        "iot:Subscribe": [f"{prefix}:topicfilter/{own}/config", f"{prefix}:topicfilter/{own}/commands"],
        "iot:Receive": [f"{prefix}:topic/{own}/config", f"{prefix}:topic/{own}/commands"],
    }
    connect = next(s for s in document["Statement"] if s["Action"] == "iot:Connect")
    assert connect["Condition"] == {"Bool": {"iot:Connection.Thing.IsAttached": "true"}}
    # No wildcard anywhere: the seed's iot:* on * must never ship
    assert "*" not in str(document) and THING_NAME_VARIABLE in str(document)


class MqttClient:
    """A paho MQTT v5 client over mutual TLS that remembers what the broker answered."""

    def __init__(self, *, client_id: str, certificate: Path, private_key: Path, root_ca: Path, host: str, port: int):
        self.received: list[tuple[str, bytes]] = []
        self.publish_results: dict[int, str] = {}
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.client.tls_set(ca_certs=str(root_ca), certfile=str(certificate), keyfile=str(private_key))
        self.client.on_connect = lambda *args: self.connected.set()
        self.client.on_disconnect = lambda *args: self.disconnected.set()
        self.client.on_message = lambda client, userdata, message: self.received.append(
            (message.topic, message.payload)
        )
        self.client.on_publish = lambda client, userdata, mid, reason, properties: self.publish_results.__setitem__(
            mid, str(reason)
        )
        self.client.connect(host, port)
        self.client.loop_start()
        assert self.connected.wait(10), f"{client_id} could not connect"

    def publish(self, topic: str, payload: bytes = b'{"temperature": 21.5}') -> str:
        """Publish with QoS 1 and return the broker's answer: 'Success' or 'Not authorized'."""
        info = self.client.publish(topic, payload, qos=1)
        deadline = time.monotonic() + 10
        while info.mid not in self.publish_results and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.publish_results[info.mid]

    def subscribe(self, topic: str) -> None:
        done = threading.Event()
        self.client.on_subscribe = lambda *args: done.set()
        self.client.subscribe(topic, qos=1)
        assert done.wait(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def connect_as_kit(folder: Path, config: dict, client_id: str | None = None) -> MqttClient:
    mqtt_config = config["mqtt"]
    return MqttClient(
        client_id=client_id or mqtt_config["client_id"],
        certificate=folder / mqtt_config["certificate"],
        private_key=folder / mqtt_config["private_key"],
        root_ca=folder / mqtt_config["root_ca"],
        host=mqtt_config["endpoint"],
        port=mqtt_config["port"],
    )


SENTINEL = b'{"sentinel": 1}'


def received(client: MqttClient, topic: str, payload: bytes | None = None) -> bool:
    return any(t == topic and (payload is None or p == payload) for t, p in client.received)


@pytest.fixture
def two_kits_on_the_broker(db, moto_server, mosquitto_broker, settings, unique_kit_id, tmp_path):
    """Kits A and B provisioned against moto with the broker's port in their kit.toml, their
    bundles unpacked, and an observer that may read every topic."""
    settings.IOT_MQTT_ENDPOINT = "localhost"
    settings.IOT_MQTT_PORT = mosquitto_broker.port
    kits = {}
    for name in ("a", "b"):
        kit = registry.kit_register(id=unique_kit_id(name), name=f"Kit {name}")
        provisioning.kit_provision(kit_id=kit.id)
        kit.refresh_from_db()
        folder = tmp_path / name
        kits[name] = (kit, folder, unpack_bundle(kit, folder))
    observer_credentials = mosquitto_broker.client_credentials("observer")
    observer = MqttClient(
        client_id="observer",
        certificate=observer_credentials.certificate,
        private_key=observer_credentials.private_key,
        root_ca=observer_credentials.root_ca,
        host="localhost",
        port=mosquitto_broker.port,
    )
    observer.subscribe("astroplant/#")
    yield kits, observer
    observer.close()


def test_a_kit_publishes_only_on_its_own_topics(two_kits_on_the_broker):
    kits, observer = two_kits_on_the_broker
    (_, folder_a, config_a), (_, _, config_b) = kits["a"], kits["b"]
    # Given kit A connected with its bundle exactly as provisioned
    client = connect_as_kit(folder_a, config_a)

    # When it publishes on its own topics and on kit B's
    answers = {topic: client.publish(topic) for topic in (*config_a["topics"].values(), *config_b["topics"].values())}
    # and then once more on its own topic: the broker keeps one client's messages in order, so
    # once the observer has this one, it has had every other the broker passed on
    client.publish(config_a["topics"]["measurements"], SENTINEL)
    wait_until(lambda: received(observer, config_a["topics"]["measurements"], SENTINEL), what="the last message")
    client.close()

    # Then the broker accepts exactly its own measurements, status and command results, and
    # refuses the rest
    own = ("measurements", "status", "command-results")
    assert answers == {
        **{config_a["topics"][channel]: "Success" for channel in own},
        config_a["topics"]["config"]: "Not authorized",  # the cloud's to send
        config_a["topics"]["commands"]: "Not authorized",  # the cloud's to send
        **{topic: "Not authorized" for topic in config_b["topics"].values()},
    }
    assert sorted(topic for topic, payload in observer.received if payload != SENTINEL) == sorted(
        config_a["topics"][channel] for channel in own
    )


def test_a_kit_receives_only_its_own_config_and_commands(two_kits_on_the_broker, mosquitto_broker):
    from localdev.mosquitto import BACKEND_CLIENT

    kits, _ = two_kits_on_the_broker
    (_, folder_a, config_a), (_, _, config_b) = kits["a"], kits["b"]
    channels = ("config", "commands")
    # Given kit A subscribed to its own config and commands and, trying its luck, to kit B's and
    # to everything
    kit_a = connect_as_kit(folder_a, config_a)
    for topic in (
        *(config_a["topics"][c] for c in channels),
        *(config_b["topics"][c] for c in channels),
        "astroplant/#",
    ):
        kit_a.subscribe(topic)
    # When the cloud (the backend's identity) sends both kits their config and a command
    credentials = mosquitto_broker.client_credentials(BACKEND_CLIENT)
    cloud = MqttClient(
        client_id=BACKEND_CLIENT,
        certificate=credentials.certificate,
        private_key=credentials.private_key,
        root_ca=credentials.root_ca,
        host="localhost",
        port=mosquitto_broker.port,
    )
    for topic in (*(config_b["topics"][c] for c in channels), *(config_a["topics"][c] for c in channels)):
        assert cloud.publish(topic) == "Success"
    # kit B's went first, from the same client: once kit A has its last, B's had their chance
    wait_until(lambda: received(kit_a, config_a["topics"]["commands"]), what="kit A's command")
    cloud.close()
    kit_a.close()

    # Then kit A received its own (once per matching subscription) and nothing of kit B's
    assert {topic for topic, _ in kit_a.received} == {config_a["topics"][c] for c in channels}


def test_the_backend_writes_only_config_and_commands_and_the_ingest_only_reads(
    two_kits_on_the_broker, mosquitto_broker
):
    from localdev.mosquitto import BACKEND_CLIENT, INGEST_CLIENT

    kits, observer = two_kits_on_the_broker
    topics = kits["a"][2]["topics"]
    clients = {}
    for name in (BACKEND_CLIENT, INGEST_CLIENT):
        credentials = mosquitto_broker.client_credentials(name)
        clients[name] = MqttClient(
            client_id=name,
            certificate=credentials.certificate,
            private_key=credentials.private_key,
            root_ca=credentials.root_ca,
            host="localhost",
            port=mosquitto_broker.port,
        )

    # When each publishes on every topic of kit A
    answers = {
        (name, channel): client.publish(topic) for name, client in clients.items() for channel, topic in topics.items()
    }
    for client in clients.values():
        client.close()

    # Then the backend may send a kit its config and commands, and speak for it in nothing else;
    # the ingest bridge may send nothing at all (it only reads what kits say)
    assert answers == {
        **{(BACKEND_CLIENT, channel): "Not authorized" for channel in topics},
        (BACKEND_CLIENT, "config"): "Success",
        (BACKEND_CLIENT, "commands"): "Success",
        **{(INGEST_CLIENT, channel): "Not authorized" for channel in topics},
    }


def test_a_kit_cannot_take_over_another_kits_session(two_kits_on_the_broker):
    kits, _ = two_kits_on_the_broker
    (_, folder_a, config_a), (_, folder_b, config_b) = kits["a"], kits["b"]
    # Given kit B connected
    kit_b = connect_as_kit(folder_b, config_b)

    # When kit A connects claiming kit B's client id
    impostor = connect_as_kit(folder_a, config_a, client_id=config_b["mqtt"]["client_id"])

    # Then A still cannot speak on B's topics, and kit B stays connected (the broker gave A its
    # own certificate's name): B's publication goes through on its first connection, answered
    # after the broker dealt with A's
    assert impostor.publish(config_b["topics"]["measurements"]) == "Not authorized"
    assert kit_b.publish(config_b["topics"]["measurements"]) == "Success"
    assert not kit_b.disconnected.is_set()
    impostor.close()
    kit_b.close()


def test_the_kit_agents_sdk_connects_with_the_bundle_and_checks_the_brokers_name(two_kits_on_the_broker):
    from AWSIoTPythonSDK.MQTTLib import AWSIoTMQTTClient

    kits, observer = two_kits_on_the_broker
    _, folder, config = kits["a"]
    # Given AWSIoTPythonSDK, as the kit agent uses it, configured from kit.toml
    client = AWSIoTMQTTClient(config["mqtt"]["client_id"])
    client.configureEndpoint(config["mqtt"]["endpoint"], config["mqtt"]["port"])
    client.configureCredentials(
        str(folder / config["mqtt"]["root_ca"]),
        str(folder / config["mqtt"]["private_key"]),
        str(folder / config["mqtt"]["certificate"]),
    )
    client.configureConnectDisconnectTimeout(10)
    client.configureMQTTOperationTimeout(5)

    # When it connects (verifying the broker's certificate and host name) and publishes
    assert client.connect(keepAliveIntervalSecond=30)
    assert client.publish(config["topics"]["measurements"], '{"temperature": 21.5}', 1)

    # Then its reading went through the broker
    wait_until(
        lambda: received(observer, config["topics"]["measurements"], b'{"temperature": 21.5}'),
        what="the reading at the observer",
    )
    client.disconnect()
