"""The server's half of the MQTT contract: what the kit agent sends is accepted; anything else is
refused with a reason an admin can act on."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device.payloads import measurement_payload, status_payload, utc_timestamp
from telemetry.messages import InvalidMessage, Measurement, Status, message_parse

NOW = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
TOPIC = "astroplant/kits/astroplant-k-7f3a-c21e/measurements"
STATUS_TOPIC = "astroplant/kits/astroplant-k-7f3a-c21e/status"


def parse(topic, payload):
    if isinstance(payload, dict):
        payload = json.dumps(payload)
    if isinstance(payload, str):
        payload = payload.encode()
    return message_parse(
        topic=topic, payload=payload, now=NOW, max_age=timedelta(days=30), max_ahead=timedelta(minutes=5)
    )


def good(**changes):
    body = {
        "schema_version": 1,
        "kit_id": "k-7f3a-c21e",
        "timestamp": "2026-11-28T09:59:00.000Z",
        "sequence": 7,
        "readings": {"temperature": 21.5, "humidity": 55},
    }
    body.update(changes)
    return body


def test_what_the_kit_agent_sends_is_accepted():
    payload = measurement_payload(
        kit_id="k-7f3a-c21e", sequence=7, readings={"temperature": 21.5}, timestamp=utc_timestamp(NOW)
    )

    assert parse(TOPIC, payload) == Measurement(
        kit_id="k-7f3a-c21e", timestamp=NOW, sequence=7, readings={"temperature": 21.5}
    )


def test_a_status_from_the_kit_agent_is_accepted():
    payload = status_payload(
        kit_id="k-7f3a-c21e", ip="192.0.2.7", software_version="1.0.0", uptime_seconds=60, timestamp=utc_timestamp(NOW)
    )

    assert parse(STATUS_TOPIC, payload) == Status(
        kit_id="k-7f3a-c21e", timestamp=NOW, ip="192.0.2.7", software_version="1.0.0", uptime_seconds=60
    )


@pytest.mark.parametrize(
    ("timestamp", "meant"),
    [
        ("2026-11-28T09:59:00Z", datetime(2026, 11, 28, 9, 59, tzinfo=UTC)),
        ("2026-11-28T09:59:00.250Z", datetime(2026, 11, 28, 9, 59, 0, 250_000, tzinfo=UTC)),
        ("2026-11-28T11:59:00+02:00", datetime(2026, 11, 28, 9, 59, tzinfo=UTC)),
        ("2026-11-28T04:29:00-05:30", datetime(2026, 11, 28, 9, 59, tzinfo=UTC)),
        ("2026-11-28T09:59:00+00:00", datetime(2026, 11, 28, 9, 59, tzinfo=UTC)),
    ],
)
def test_a_timestamp_with_an_offset_is_read_as_iso_8601_says(timestamp, meant):
    assert parse(TOPIC, good(timestamp=timestamp)).timestamp == meant


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("astroplant/kits/other/measurements", good(), "not a kit's"),
        ("astroplant/kits/astroplant-k-7f3a-c21e/config", good(), "not a kit's"),
        ("astroplant/kits/astroplant-someone-else/measurements", good(), "speaks for kit 'k-7f3a-c21e'"),
        (TOPIC, b"\xff\xfe", "not JSON"),
        (TOPIC, "{", "not JSON"),
        (TOPIC, "[1]", "JSON object"),
        (TOPIC, "[" * 100_000, "nests too deeply"),
        (TOPIC, b"x" * (128 * 1024 + 1), "at most 131072"),
        (TOPIC, good(schema_version=2), "schema_version is 2"),
        (TOPIC, good(timestamp="2026-11-28 09:59"), "has no offset"),
        (TOPIC, good(timestamp="2026-11-28T09:59:00"), "has no offset"),
        (TOPIC, good(timestamp="2026-11-28T09:59:00+02:00Z"), "not both"),
        (TOPIC, good(timestamp="2026-11-28T09:59:00Z+02:00"), "not an ISO 8601"),
        (TOPIC, good(timestamp=1764323940), "must be an ISO 8601"),
        (TOPIC, good(timestamp="yesterdayZ"), "not an ISO 8601"),
        (TOPIC, good(timestamp="2026-11-28T11:00:00Z"), "in the future"),
        (TOPIC, good(timestamp="2025-01-01T00:00:00Z"), "older than 30 days"),
        (TOPIC, good(sequence="7"), "sequence must be a whole number"),
        (TOPIC, good(sequence=0), "1 or more"),
        (TOPIC, good(sequence=True), "whole number"),
        (TOPIC, good(readings={}), "non-empty"),
        (TOPIC, good(readings=[21.5]), "non-empty object"),
        (TOPIC, good(readings={"Temp!": 1}), "not a sensor key"),
        (TOPIC, good(readings={"temperature": "21"}), "not a finite number"),
        (TOPIC, good(readings={"temperature": None}), "not a finite number"),
        (
            TOPIC,
            '{"schema_version": 1, "kit_id": "k-7f3a-c21e", "timestamp": "2026-11-28T09:59:00Z", '
            '"sequence": 1, "readings": {"t": NaN}}',
            "not a number JSON allows",
        ),
        (TOPIC, json.dumps(good(readings={"t": 1.5})).replace("1.5", "1e400"), "not a finite number"),
        # JSON integers have no size limit; float() of this one would raise, not refuse
        (TOPIC, json.dumps(good(readings={"t": 1.5})).replace("1.5", "1" + "0" * 400), "too large to store"),
        (TOPIC, json.dumps(good(readings={"t": 1.5})).replace("1.5", "-" + "9" * 4000), "too large to store"),
        (TOPIC, good(readings={f"s{i}": 1 for i in range(65)}), "at most 64"),
    ],
)
def test_a_bad_message_is_refused_with_its_reason(topic, payload, reason):
    with pytest.raises(InvalidMessage) as refused:
        parse(topic, payload)

    assert reason in refused.value.reason


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"ip": "not-an-ip"}, "not an IP"),
        ({"uptime_seconds": -1}, "whole number"),
        ({"software_version": ""}, "1 to 64"),
    ],
)
def test_a_bad_status_is_refused_with_its_reason(changes, reason):
    body = {
        "schema_version": 1,
        "kit_id": "k-7f3a-c21e",
        "timestamp": "2026-11-28T09:59:00Z",
        "ip": "192.0.2.7",
        "software_version": "1.0.0",
        "uptime_seconds": 5,
        **changes,
    }

    with pytest.raises(InvalidMessage, match=reason):
        parse(STATUS_TOPIC, body)


@given(topic=st.sampled_from([TOPIC, STATUS_TOPIC, "astroplant/kits/x/y", ""]), payload=st.binary(max_size=512))
def test_arbitrary_bytes_never_crash_the_parser(topic, payload):
    try:
        parse(topic, payload)
    except InvalidMessage as refused:
        assert refused.reason


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)


@given(changes=st.dictionaries(st.sampled_from(list(good()) + ["ip", "extra"]), json_values, max_size=4))
def test_arbitrary_json_fields_are_either_valid_or_refused_with_a_reason(changes):
    try:
        result = parse(TOPIC, json.dumps(good(**changes)))
    except InvalidMessage as refused:
        assert refused.reason
    else:
        assert result.kit_id == "k-7f3a-c21e"


@pytest.mark.parametrize(
    "readings",
    [{}, {"Temp!": 1.0}, {"t" * 41: 1.0}, {f"s{i}": 1.0 for i in range(65)}],
)
def test_the_kit_never_writes_a_measurement_the_server_refuses(readings):
    # one contract module for both sides: what the server refuses, the kit will not write
    with pytest.raises(InvalidMessage):
        parse(TOPIC, good(readings=readings))
    with pytest.raises(ValueError, match="reading|sensor key"):
        measurement_payload(kit_id="k-7f3a-c21e", sequence=1, readings=readings, timestamp=utc_timestamp(NOW))
