"""Commands as the agent takes them from its `commands` topic: answered once, through the outbox;
an expired one never run and never answered."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from device import __version__
from device.agent import Agent
from device.commands import timestamp_parsed
from device.config import load_config
from device.payloads import command_payload, utc_timestamp


@pytest.fixture
def agent(actuated_kit_toml):
    """The real agent over the kit's configuration, not connected: what it answers waits in its
    outbox, as it would while offline."""
    made = Agent(load_config(actuated_kit_toml))
    made.controller.evaluate()
    yield made
    made.outbox.close()


def command(name, arguments=None, *, id="c-1", expires_in=60.0, kit_id="k-7f3a-c21e"):
    now = datetime.now(UTC)
    return command_payload(
        kit_id=kit_id,
        id=id,
        name=name,
        arguments=arguments or {},
        expires_at=utc_timestamp(now + timedelta(seconds=expires_in)),
        timestamp=utc_timestamp(now),
    ).encode()


def answers(agent):
    return [
        json.loads(message.payload)
        for message in agent.outbox.oldest(1000)
        if message.topic == agent.config.topics["command-results"]
    ]


def measurements(agent):
    return [
        json.loads(message.payload)
        for message in agent.outbox.oldest(1000)
        if message.topic == agent.config.topics["measurements"]
    ]


def test_ping_answers_with_uptime_and_version(agent):
    agent.handle_command(command("ping"))

    (answer,) = answers(agent)
    assert answer["id"] == "c-1" and answer["status"] == "succeeded" and answer["reason"] is None
    assert answer["result"]["software_version"] == __version__
    assert answer["result"]["uptime_seconds"] >= 0


def test_set_actuator_overrides_the_rule_and_measurements_carry_the_level(agent):
    agent.handle_command(command("set_actuator", {"actuator": "led", "level": 35, "minutes": 5}))
    agent.measure()

    (answer,) = answers(agent)
    assert answer["status"] == "succeeded"
    assert answer["result"]["actuator"] == "led" and answer["result"]["level"] == 35
    assert answer["result"]["until"].endswith("Z")
    assert measurements(agent)[-1]["actuators"] == {"led": 35, "fan": 0}


def test_measure_now_queues_a_measurement_at_once(agent):
    agent.handle_command(command("measure_now"))

    (answer,) = answers(agent)
    (measurement,) = measurements(agent)
    assert answer["status"] == "succeeded"
    assert answer["result"] == {"sequence": measurement["sequence"]}


@pytest.mark.parametrize(
    ("name", "arguments", "reason"),
    [
        ("capture_photo", {}, "no camera"),
        ("reboot", {}, "Unknown command 'reboot'"),
        ("ping", {"loud": True}, "ping takes no arguments"),
        ("set_actuator", {"actuator": "pump", "level": 1}, "no actuator 'pump' (it has: fan, heater, led)"),
        ("set_actuator", {"actuator": "led", "level": 101}, "level: a number from 0 to 100"),
        ("set_actuator", {"actuator": "fan", "level": 50}, "actuator 'fan' is on/off"),
        ("set_actuator", {"actuator": "led", "level": 5, "minutes": -1}, "minutes: a number above 0"),
        ("set_actuator", {"actuator": "led", "level": 5, "colour": "red"}, "not colour"),
        ("set_actuator", {"actuator": "heater", "level": 100}, "gpio_relay"),
    ],
)
def test_unknown_commands_and_bad_arguments_fail_with_a_reason(agent, name, arguments, reason):
    agent.handle_command(command(name, arguments))

    (answer,) = answers(agent)
    assert answer["status"] == "failed" and answer["result"] is None
    assert reason in answer["reason"]
    assert agent.controller.overrides == {}


def test_a_command_delivered_twice_is_run_and_answered_once_even_across_a_restart(agent, actuated_kit_toml):
    agent.handle_command(command("measure_now", id="twice"))
    agent.handle_command(command("measure_now", id="twice"))
    agent.outbox.close()
    restarted = Agent(load_config(actuated_kit_toml))

    restarted.handle_command(command("measure_now", id="twice"))

    assert len(answers(restarted)) == 1
    assert len(measurements(restarted)) == 1
    restarted.outbox.close()


def test_an_expired_command_is_never_run_nor_answered(agent):
    agent.handle_command(command("set_actuator", {"actuator": "led", "level": 100}, id="late", expires_in=-1))

    assert answers(agent) == []
    assert agent.actuators.levels["led"] == 0
    assert agent.controller.overrides == {}
    # nor later, when the broker delivers it again
    agent.handle_command(command("set_actuator", {"actuator": "led", "level": 100}, id="late", expires_in=60))
    assert answers(agent) == [] and agent.actuators.levels["led"] == 0


def test_a_command_without_a_readable_expiry_is_refused_not_run(agent):
    payload = json.loads(command("measure_now"))
    payload["expires_at"] = "tomorrow"

    agent.handle_command(json.dumps(payload).encode())

    (answer,) = answers(agent)
    assert answer["status"] == "failed" and "expires_at 'tomorrow'" in answer["reason"]
    assert measurements(agent) == []


def test_a_command_without_an_id_cannot_be_answered_and_is_dropped(agent):
    agent.handle_command(b'{"schema_version": 1, "name": "ping"}')
    agent.handle_command(b"not json")

    assert agent.outbox.oldest() == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-01T10:00:00Z", datetime(2026, 12, 1, 10, tzinfo=UTC)),
        ("2026-12-01T10:00:00.5Z", datetime(2026, 12, 1, 10, 0, 0, 500000, tzinfo=UTC)),
        ("2026-12-01T10:00:00.123456789+01:00", datetime(2026, 12, 1, 9, 0, 0, 123456, tzinfo=UTC)),
        ("2026-12-01T10:00:00", None),  # no zone: ambiguous
        ("2026-13-01T10:00:00Z", None),
        (1764583200, None),
    ],
)
def test_expiry_times_are_read_as_the_server_writes_them_on_python_3_9_too(text, expected):
    assert timestamp_parsed(text) == expected
