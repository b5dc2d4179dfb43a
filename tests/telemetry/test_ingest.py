"""The ingest bridge against real processes: mosquitto with mutual TLS, DynamoDB on moto_server,
and the test database. Kits publish with paho-mqtt as the kit agent would."""

import json
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import paho.mqtt.client as mqtt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kits import registry
from kits.models import Kit
from telemetry.dead_letters import DeadLetter
from telemetry.selectors import readings_range_rows, rollups_range
from telemetry.services import rollups_refresh_all
from telemetry.timebuckets import Resolution, to_ms
from tests.support import ingest_bridge_running, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

KIT = "ingest-kit"
OTHER_KIT = "ingest-other"


def measurement(kit_id=KIT, *, sequence=1, at=None, readings=None, **changes):
    at = at or datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=10)
    body = {
        "schema_version": 1,
        "kit_id": kit_id,
        "timestamp": at.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "sequence": sequence,
        "readings": readings or {"temperature": 20.0 + sequence, "humidity": 50.0},
    }
    body.update(changes)
    return json.dumps(body).encode()


class KitPublisher:
    """A kit's MQTT client, connected with its own certificate."""

    def __init__(self, broker, kit_id):
        credentials = broker.client_credentials(f"astroplant-{kit_id}")
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"astroplant-{kit_id}")
        self.client.tls_set(str(credentials.root_ca), str(credentials.certificate), str(credentials.private_key))
        self.client.connect("localhost", broker.port)
        self.client.loop_start()
        self.topic = f"astroplant/kits/astroplant-{kit_id}"

    def publish(self, payload, channel="measurements", topic=None):
        info = self.client.publish(topic or f"{self.topic}/{channel}", payload, qos=1)
        info.wait_for_publish(timeout=10)
        return info

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def kits(db):
    return [registry.kit_register(id=kit_id, name=kit_id) for kit_id in (KIT, OTHER_KIT)]


@pytest.fixture
def bridge(mosquitto_broker, telemetry_tables, kits):
    with ingest_bridge_running(mosquitto_broker) as bridge:
        yield bridge


@pytest.fixture
def kit(mosquitto_broker):
    publisher = KitPublisher(mosquitto_broker, KIT)
    yield publisher
    publisher.close()


def recent_range():
    now = datetime.now(UTC)
    return {"start_ms": to_ms(now - timedelta(days=2)), "end_ms": to_ms(now + timedelta(hours=1))}


def stored_rows(kit_id=KIT):
    kit = Kit.objects.get(pk=kit_id)
    now = datetime.now(UTC)
    return list(
        readings_range_rows(
            kit=kit,
            start_ms=to_ms(now - timedelta(days=2)),
            end_ms=to_ms(now + timedelta(hours=1)),
            resolution=Resolution.RAW,
        )
    )


def test_a_kits_readings_are_stored_and_its_last_seen_moves(bridge, kit):
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=5)

    kit.publish(measurement(at=at, readings={"temperature": 21.5, "humidity": 55.0}))

    wait_until(lambda: len(stored_rows()) == 2, what="the readings in DynamoDB")
    assert sorted((sensor, value) for _, sensor, value in stored_rows()) == [("humidity", 55.0), ("temperature", 21.5)]
    wait_until(lambda: Kit.objects.get(pk=KIT).last_seen == at, what="last_seen")


def test_a_status_updates_the_ip_address_and_last_seen(bridge, kit):
    at = datetime.now(UTC).replace(microsecond=0)
    status = {
        "schema_version": 1,
        "kit_id": KIT,
        "timestamp": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "ip": "192.0.2.44",
        "software_version": "1.0.0",
        "uptime_seconds": 10,
    }

    kit.publish(json.dumps(status).encode(), channel="status")

    wait_until(lambda: Kit.objects.get(pk=KIT).ip_address == "192.0.2.44", what="the IP address")
    assert Kit.objects.get(pk=KIT).last_seen == at


def test_a_redelivered_message_changes_nothing(bridge, kit):
    payload = measurement(sequence=3)

    kit.publish(payload)
    wait_until(lambda: bridge.counts.messages == 1, what="the first delivery")
    kit.publish(payload)

    wait_until(lambda: bridge.counts.messages == 2, what="the second delivery")
    assert len(stored_rows()) == 2  # one reading of two sensors, as after the first delivery
    rollups_refresh_all()
    hours = rollups_range(kit=Kit.objects.get(pk=KIT), **recent_range(), resolution=Resolution.HOUR)
    assert [point.count for point in hours["temperature"]] == [1]  # counted once


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"not json", "not JSON"),
        (measurement(kit_id=OTHER_KIT), "speaks for kit 'ingest-other' on kit 'ingest-kit'"),
        (measurement(readings={"temperature": "warm"}), "not a finite number"),
        (measurement(at=datetime.now(UTC) + timedelta(hours=2)), "in the future"),
        (measurement(schema_version=7), "schema_version is 7"),
    ],
)
def test_a_bad_message_becomes_a_dead_letter_and_the_bridge_goes_on(bridge, kit, payload, reason):
    kit.publish(payload)
    kit.publish(measurement(sequence=9))

    wait_until(lambda: bridge.counts.messages == 2, what="both messages")
    letter = DeadLetter.objects.get()
    assert reason in letter.reason
    assert (letter.kit_id, bytes(letter.payload)) == (KIT, payload)
    assert len(stored_rows()) == 2  # the good message after it was stored


def test_an_unregistered_kit_is_a_dead_letter(bridge, mosquitto_broker):
    stranger = KitPublisher(mosquitto_broker, "never-registered")
    try:
        stranger.publish(measurement(kit_id="never-registered"))
        wait_until(lambda: DeadLetter.objects.exists(), what="the dead letter")
    finally:
        stranger.close()

    assert "No kit 'never-registered' is registered" in DeadLetter.objects.get().reason


def test_a_kit_cannot_publish_on_another_kits_topic(bridge, kit):
    kit.publish(measurement(kit_id=OTHER_KIT), topic=f"astroplant/kits/astroplant-{OTHER_KIT}/measurements")
    kit.publish(measurement(sequence=2))  # a good one, to know the first had its chance

    wait_until(lambda: bridge.counts.messages >= 1, what="the good message")

    # the broker keeps one publisher's messages in order: had it passed the forged one on, the
    # bridge would have had it before the good one
    assert stored_rows(OTHER_KIT) == []
    assert bridge.counts.messages == 1


malformed_payloads = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=200).map(str.encode),
    st.dictionaries(
        st.sampled_from(["schema_version", "kit_id", "timestamp", "sequence", "readings", "extra"]),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
            max_leaves=8,
        ),
        max_size=6,
    ).map(lambda body: json.dumps(body).encode()),
)


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=malformed_payloads)
def test_fuzzed_messages_never_stop_the_bridge_and_each_is_a_dead_letter(bridge, kit, payload):
    before = (bridge.counts.messages, DeadLetter.objects.count())

    kit.publish(payload)

    wait_until(lambda: bridge.counts.messages == before[0] + 1, what="the bridge to handle the message")
    letters = DeadLetter.objects.order_by("-id")
    assert letters.count() == before[1] + 1
    assert letters[0].reason and bytes(letters[0].payload) == payload


DYNAMODB_SMALLEST = Decimal("1E-130")
DYNAMODB_LARGEST = Decimal("9.9999999999999999999999999999999999999E+125")


def dynamodb_takes(value) -> bool:
    """DynamoDB's documented rule for numbers, written out here rather than taken from the code
    under test: zero, or a magnitude from 1E-130 to 9.99...E+125 (a float has 17 digits at most)."""
    try:
        number = Decimal(repr(float(value)))
    except OverflowError:
        return False
    return number == 0 or DYNAMODB_SMALLEST <= abs(number) <= DYNAMODB_LARGEST


dynamodb_edge_values = st.one_of(
    st.sampled_from([0.0, -0.0, 1e-130, -1e-130, 1e-131, 9.9e125, 1e126, -1e126, 5e-324, 1.7976931348623157e308]),
    st.floats(allow_nan=False, allow_infinity=False),  # every magnitude a float has
    st.floats(min_value=1e-135, max_value=1e-125),  # around the smallest DynamoDB stores
    st.floats(min_value=1e124, max_value=1e128),  # around the largest
    st.integers(min_value=-(2**1100), max_value=2**1100),  # JSON integers beyond any float too
)
_fuzz_clock = iter(range(3600))
FUZZ_START = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(values=st.dictionaries(st.sampled_from(["temperature", "humidity", "co2"]), dynamodb_edge_values, min_size=1))
def test_numbers_at_and_beyond_dynamodbs_limits_are_stored_exactly_or_dead_lettered(bridge, kit, values):
    # given a message whose numbers are at or past what DynamoDB stores, and a good one after it
    # each example at a second of its own (messages carry whole seconds here)
    at = FUZZ_START + timedelta(seconds=next(_fuzz_clock))
    before = (bridge.counts.messages, DeadLetter.objects.count())
    payload = measurement(at=at, readings=values)

    # when the kit publishes them
    kit.publish(payload)
    kit.publish(measurement(at=at - timedelta(hours=1), readings={"temperature": 20.0}))

    # then the bridge handled both, and the first is stored exactly as sent, or refused with a
    # reason, never anything in between, and the good one is stored either way
    wait_until(lambda: bridge.counts.messages == before[0] + 2, what="the bridge to handle both messages")
    at_ms = to_ms(at)
    rows = {sensor: value for ms, sensor, value in stored_rows() if ms == at_ms}
    if all(dynamodb_takes(value) for value in values.values()):
        assert rows == {sensor: float(value) for sensor, value in values.items()}
        assert DeadLetter.objects.count() == before[1]
    else:
        assert rows == {}
        letter = DeadLetter.objects.order_by("-id").first()
        assert DeadLetter.objects.count() == before[1] + 1 and bytes(letter.payload) == payload
        assert "too close to zero" in letter.reason or "too large" in letter.reason
    assert to_ms(at - timedelta(hours=1)) in {ms for ms, _, _ in stored_rows()}


def test_a_message_dynamodb_refuses_for_an_unforeseen_reason_is_dead_lettered_alone(bridge, kit, monkeypatch):
    # given our own check of DynamoDB's limits misses something (here: switched off), so DynamoDB
    # itself refuses a message in the middle of a batch
    from telemetry import dynamodb

    monkeypatch.setattr(dynamodb, "raw_item_problem", lambda reading: None)
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=20)
    bridge.batch_wait_seconds = 1.0
    bridge.subscriber.client.loop_stop()  # hold delivery, so the messages arrive as one batch
    poison = measurement(at=base + timedelta(seconds=5), readings={"temperature": 1e-200})
    try:
        for second in range(10):
            kit.publish(poison if second == 5 else measurement(at=base + timedelta(seconds=second)))
    finally:
        bridge.subscriber.client.loop_start()

    # when the bridge stores the batch
    wait_until(lambda: bridge.counts.messages == 10, what="the bridge to handle all ten")

    # then DynamoDB's refusal was narrowed down to the one message, dead-lettered with DynamoDB's
    # reason and acknowledged, and the nine others are stored
    letter = DeadLetter.objects.get()
    assert "ValidationException" in letter.reason and bytes(letter.payload) == poison
    stored = {ms for ms, _, _ in stored_rows()}
    assert stored == {to_ms(base + timedelta(seconds=second)) for second in range(10) if second != 5}


def test_an_acknowledgement_never_crosses_a_reconnect(bridge, kit, mosquitto_broker, monkeypatch):
    """Packet ids are reused once acknowledged, and a new connection may give an old id to
    another message: an acknowledgement is sent only on the connection that delivered it."""
    from telemetry import ingest

    # given the bridge storing a batch, held half-way
    holding, release = threading.Event(), threading.Event()
    real_write = ingest.services.readings_write

    def held_write(**kwargs):
        holding.set()
        release.wait(30)
        return real_write(**kwargs)

    monkeypatch.setattr(ingest.services, "readings_write", held_write)
    first = measurement(sequence=1, at=datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2))
    kit.publish(first)
    wait_until(holding.is_set, what="the bridge to start storing")

    # when the broker goes away and comes back before the batch is stored and acknowledged
    connection_before = bridge.subscriber.connection
    mosquitto_broker.stop()
    mosquitto_broker.start()
    wait_until(
        lambda: bridge.subscriber.connected and bridge.subscriber.connection >= connection_before + 2,
        what="the bridge to reconnect",
        timeout=90,  # paho backs off while the broker is down: up to 30 s between tries
    )
    release.set()

    # then the old connection's acknowledgement was not sent; the broker delivered the message
    # again on the new connection, where it was stored (once: the same reading) and acknowledged
    wait_until(lambda: bridge.counts.messages == 2, what="the redelivery to be stored")
    assert bridge.subscriber.acks_skipped == 1
    assert len(stored_rows()) == 2  # one reading of two sensors
    wait_until(lambda: kit.client.is_connected(), what="the kit to reconnect", timeout=90)
    later = measurement(sequence=2, at=datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1))
    kit.publish(later)
    wait_until(lambda: len(stored_rows()) == 4, what="the next message")
    assert bridge.counts.messages == 3  # the first was acknowledged: not delivered a third time
