"""Actuator levels through the ingest bridge, against real processes (mosquitto with mutual TLS,
DynamoDB on moto_server, the test database): a kit's measurement with an `actuators` map is
stored like readings, under the actuators' keys, in the raw readings, the rollups, the latest
values and GET /kits/{id}/data; a bad map is a dead letter with its reason."""

from datetime import UTC, datetime, timedelta

import pytest

from kits.models import Kit
from kits.registry import ActuatorSpec, SensorSpec, kit_update
from telemetry.dead_letters import DeadLetter
from telemetry.kit_state import LatestValue
from telemetry.selectors import rollups_range
from telemetry.services import rollups_refresh_all
from telemetry.timebuckets import Resolution
from tests.support import wait_until

from . import test_ingest
from .test_ingest import KIT, measurement, recent_range, stored_rows

# The bridge, the kits and the kit's MQTT client, as the ingest tests set them up.
bridge, kit, kits = test_ingest.bridge, test_ingest.kit, test_ingest.kits

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_kits_actuator_levels_are_stored_under_their_keys_like_readings(bridge, kit, make_client, users):
    # Given a kit with a temperature sensor, a LED panel and a fan, and a member who looks at it
    kit_update(
        kit=Kit.objects.get(pk=KIT),
        sensors=[SensorSpec("temperature", "temperature", "°C")],
        actuators=[ActuatorSpec("led", "light", True), ActuatorSpec("fan", "fan")],
    )
    first = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=20)
    second = first + timedelta(seconds=10)

    # When it publishes two measurements with its actuators' levels
    kit.publish(measurement(at=first, sequence=1, readings={"temperature": 24.0}, actuators={"led": 80, "fan": 0}))
    kit.publish(measurement(at=second, sequence=2, readings={"temperature": 26.5}, actuators={"led": 60, "fan": 100}))

    # Then the raw readings hold each level under its actuator's key, beside the sensor's value
    wait_until(lambda: len(stored_rows()) == 6, what="both messages in DynamoDB")
    assert sorted((sensor, value) for _, sensor, value in stored_rows()) == [
        ("fan", 0.0),
        ("fan", 100.0),
        ("led", 60.0),
        ("led", 80.0),
        ("temperature", 24.0),
        ("temperature", 26.5),
    ]
    # and the latest values and the rollups count them as they count readings
    latest = dict(LatestValue.objects.filter(kit_id=KIT).values_list("sensor", "value"))
    assert latest == {"temperature": 26.5, "led": 60.0, "fan": 100.0}
    rollups_refresh_all()
    hours = rollups_range(kit=Kit.objects.get(pk=KIT), **recent_range(), resolution=Resolution.HOUR)
    led = [(p.count, p.minimum, p.maximum) for p in hours["led"]]
    assert sum(count for count, _, _ in led) == 2
    assert (min(low for _, low, _ in led), max(high for _, _, high in led)) == (60.0, 80.0)
    # and the data API serves the actuator's history as a sensor's
    response = make_client(users["staff"]).get(f"/kits/{KIT}/data?last=2&sensor=led")
    assert response.status_code == 200
    assert [point["value"] for point in response.json()["led"]] == [80.0, 60.0]


@pytest.mark.parametrize(
    ("actuators", "reason"),
    [
        ({"led": 120}, "Actuator led's level 120 is outside 0 to 100"),
        ({"led": "on"}, "Actuator led's level 'on' is not a number"),
        ({"temperature": 50}, "temperature is both a reading and an actuator"),
        ({"Led!": 50}, "'Led!' is not an actuator key"),
        ([50], "actuators must be an object"),
    ],
)
def test_a_measurement_with_bad_actuator_levels_is_a_dead_letter_and_the_rest_is_stored(bridge, kit, actuators, reason):
    bad = measurement(sequence=1, readings={"temperature": 24.0}, actuators=actuators)

    kit.publish(bad)
    kit.publish(measurement(sequence=2, actuators={"led": 40}))

    wait_until(lambda: bridge.counts.messages == 2, what="both messages")
    letter = DeadLetter.objects.get()
    assert reason in letter.reason
    assert bytes(letter.payload) == bad
    assert sorted(sensor for _, sensor, _ in stored_rows()) == ["humidity", "led", "temperature"]
