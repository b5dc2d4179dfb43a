"""Actuator levels in telemetry: a measurement's `actuators` map is checked like its readings, and
the levels are stored and served under the actuators' keys like sensor values, by GET
/kits/{id}/data and its CSV (against the real local DynamoDB)."""

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device.payloads import measurement_payload, utc_timestamp
from kits.registry import ActuatorSpec, SensorSpec, kit_update
from telemetry.messages import InvalidMessage, Measurement, message_parse
from telemetry.services import Reading, readings_write

NOW = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
TOPIC = "astroplant/kits/astroplant-k-7f3a-c21e/measurements"


def parse(payload):
    if isinstance(payload, dict):
        payload = json.dumps(payload)
    return message_parse(
        topic=TOPIC, payload=payload.encode(), now=NOW, max_age=timedelta(days=30), max_ahead=timedelta(minutes=5)
    )


def good(**changes):
    body = {
        "schema_version": 1,
        "kit_id": "k-7f3a-c21e",
        "timestamp": "2026-11-28T09:59:00.000Z",
        "sequence": 7,
        "readings": {"temperature": 21.5},
        "actuators": {"led": 80, "fan": 0},
    }
    body.update(changes)
    return body


# --- the message ---------------------------------------------------------------------------------


def test_the_kit_agents_measurement_with_actuator_levels_is_accepted_and_stored_side_by_side():
    payload = measurement_payload(
        kit_id="k-7f3a-c21e",
        sequence=7,
        readings={"temperature": 21.5},
        actuators={"led": 80, "fan": 0, "pump": 12.5},
        timestamp=utc_timestamp(NOW),
    )

    measurement = parse(payload)

    assert measurement == Measurement(
        kit_id="k-7f3a-c21e",
        timestamp=NOW,
        sequence=7,
        readings={"temperature": 21.5},
        actuators={"led": 80.0, "fan": 0.0, "pump": 12.5},
    )
    assert measurement.values == {"temperature": 21.5, "led": 80.0, "fan": 0.0, "pump": 12.5}


def test_a_measurement_without_actuators_has_none():
    body = good()
    del body["actuators"]

    assert parse(body).actuators == {}
    assert parse(good(actuators={})).values == {"temperature": 21.5}


@pytest.mark.parametrize(
    ("actuators", "reason"),
    [
        ([80], "must be an object of actuator key -> level"),
        ("led=80", "must be an object"),
        (None, "must be an object"),
        ({"LED": 80}, "'LED' is not an actuator key"),
        ({"l" * 41: 80}, "is not an actuator key"),
        ({"": 80}, "is not an actuator key"),
        ({"temperature": 50}, "temperature is both a reading and an actuator"),
        ({"led": "80"}, "Actuator led's level '80' is not a number"),
        ({"led": None}, "is not a number"),
        ({"led": True}, "is not a number"),
        ({"led": {"level": 80}}, "is not a number"),
        ({"led": -0.5}, "Actuator led's level -0.5 is outside 0 to 100"),
        ({"led": 100.01}, "outside 0 to 100"),
        ({"led": 10**400}, "outside 0 to 100"),  # an integer no float holds: refused, not a crash
        ({f"a{i}": 1 for i in range(64)}, "1 readings and 64 actuator levels in one message; at most 64"),
    ],
)
def test_bad_actuator_levels_are_refused_with_the_reason(actuators, reason):
    with pytest.raises(InvalidMessage) as refused:
        parse(good(actuators=actuators))

    assert reason in refused.value.reason


def test_a_level_of_infinity_is_refused_as_json_refuses_it():
    text = json.dumps(good(actuators={"led": 33.25})).replace("33.25", "1e400")  # read as inf by Python

    with pytest.raises(InvalidMessage, match="outside 0 to 100"):
        parse(text)


@given(
    actuators=st.dictionaries(
        st.text(max_size=12),
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5) | st.lists(st.integers()),
        max_size=5,
    )
)
def test_arbitrary_actuator_maps_are_either_levels_0_to_100_or_refused_with_a_reason(actuators):
    try:
        measurement = parse(json.dumps(good(actuators=actuators)))
    except InvalidMessage as refused:
        assert refused.reason
    else:
        assert all(0 <= level <= 100 and isinstance(level, float) for level in measurement.actuators.values())
        assert not set(measurement.actuators) & set(measurement.readings)


# --- the data API and its CSV --------------------------------------------------------------------


def iso(moment) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def lit_history(telemetry_tables, private_kit, two_days_ago):
    """The private kit with a temperature sensor, a LED panel and a fan, and 90 one-minute
    messages from two days ago: the LED at 0 for the first half hour, then at 75; the fan on
    every other minute."""
    kit_update(
        kit=private_kit,
        sensors=[SensorSpec("temperature", "temperature", "°C", -10, 50)],
        actuators=[ActuatorSpec("led", "light", True), ActuatorSpec("fan", "fan", False)],
    )
    readings = [
        Reading(
            "private-kit",
            two_days_ago + timedelta(minutes=i),
            {"temperature": 20.0 + i / 10, "led": 0.0 if i < 30 else 75.0, "fan": 100.0 * (i % 2)},
        )
        for i in range(90)
    ]
    readings_write(readings=readings)
    return readings


@pytest.mark.integration
def test_the_latest_data_holds_each_actuators_level_under_its_key(make_client, users, lit_history):
    response = make_client(users["viewer"]).get("/kits/private-kit/data")

    assert response.status_code == 200
    newest = lit_history[-1]
    assert response.json() == {
        "fan": [{"timestamp": iso(newest.timestamp), "value": 100.0}],
        "led": [{"timestamp": iso(newest.timestamp), "value": 75.0}],
        "temperature": [{"timestamp": iso(newest.timestamp), "value": 28.9}],
    }


@pytest.mark.integration
def test_an_actuators_history_is_served_like_a_sensors(make_client, users, lit_history, two_days_ago):
    client = make_client(users["viewer"])
    window = f"from={iso(two_days_ago)}&to={iso(two_days_ago + timedelta(hours=2))}"

    raw = client.get(f"/kits/private-kit/data?{window}&resolution=raw&sensor=led")
    hourly = client.get(f"/kits/private-kit/data?{window}&resolution=1h&sensor=led,fan")

    assert raw.status_code == 200
    assert list(raw.json()) == ["led"]
    assert [point["value"] for point in raw.json()["led"]] == [0.0] * 30 + [75.0] * 60
    assert hourly.status_code == 200
    first, second = hourly.json()["led"]
    assert (first["min"], first["max"], first["mean"], first["count"]) == (0.0, 75.0, 37.5, 60)
    assert (second["min"], second["max"], second["count"]) == (75.0, 75.0, 30)
    assert [point["mean"] for point in hourly.json()["fan"]] == [50.0, 50.0]


@pytest.mark.integration
def test_the_csv_holds_actuator_levels_with_the_unit_percent(make_client, users, lit_history, two_days_ago):
    url = f"/kits/private-kit/data?from={iso(two_days_ago)}&to={iso(two_days_ago + timedelta(minutes=31))}"

    response = make_client(users["viewer"]).get(url + "&resolution=raw&format=csv")

    assert response.status_code == 200
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == ["timestamp", "sensor", "value", "unit"]
    assert rows[1:4] == [
        [iso(two_days_ago), "fan", "0.0", "%"],
        [iso(two_days_ago), "led", "0.0", "%"],
        [iso(two_days_ago), "temperature", "20.0", "°C"],
    ]
    assert [iso(two_days_ago + timedelta(minutes=30)), "led", "75.0", "%"] in rows
    assert len(rows) == 1 + 31 * 3


@pytest.mark.integration
def test_a_key_the_kit_has_neither_as_sensor_nor_actuator_is_a_400_naming_both_kinds(make_client, users, lit_history):
    response = make_client(users["viewer"]).get("/kits/private-kit/data?sensor=led,heater")

    assert response.status_code == 400
    assert response.json()["errors"]["sensor"] == [
        "This kit has no sensor or actuator heater; it has: fan, led, temperature."
    ]
