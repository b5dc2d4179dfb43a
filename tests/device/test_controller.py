"""What the kit runs: configurations from the cloud decided as a whole, kept on disk and loaded
at start; calibration; actuator rules, overrides and their end."""

import json
from datetime import UTC, datetime

import pytest

from device.actuators import ActuatorSet
from device.config import load_config
from device.controller import Decision, KitController
from device.payloads import config_payload
from device.sensors import SensorSet
from device.simulation import SimulatedWorld

# 04:30 UTC is 06:30 in Amsterdam (summer time)
EARLY_MORNING_UTC = datetime(2026, 6, 1, 4, 30, tzinfo=UTC)


class Dial:
    """A sensor whose reading the test turns, as a hand on a real thermometer would."""

    def __init__(self, value):
        self.value = value

    def read(self):
        return self.value


class Clocks:
    def __init__(self):
        self.seconds = 5000.0
        self.utc = EARLY_MORNING_UTC

    def monotonic(self):
        return self.seconds

    def now(self):
        return self.utc


@pytest.fixture
def kit(actuated_kit_toml):
    """A controller over the kit's real configuration, simulated actuators and dials as sensors."""
    config = load_config(actuated_kit_toml)
    clocks = Clocks()
    dials = {"temperature": Dial(22.0), "light": Dial(100.0)}

    def make(config=config):
        sensors = SensorSet(config.sensors, make_driver=lambda sensor: dials[sensor.key])
        actuators = ActuatorSet(config.actuators, world=SimulatedWorld())
        return KitController(config, sensors=sensors, actuators=actuators, monotonic=clocks.monotonic, now=clocks.now)

    controller = make()
    controller.evaluate()
    return controller, clocks, dials, make


def message(version, desired, *, time_zone="UTC", kit_id="k-7f3a-c21e"):
    text = config_payload(kit_id=kit_id, version=version, desired=desired, time_zone=time_zone, timestamp="x")
    return json.loads(text)


LED_DAYTIME = {"mode": "schedule", "periods": [{"from": "06:00", "to": "22:00", "level": 80}]}
FAN_THERMOSTAT = {"mode": "thermostat", "sensor": "temperature", "on_above": 26.0, "off_below": 25.0}


def test_an_unconfigured_kit_runs_kit_toml_with_every_actuator_off(kit):
    controller, *_ = kit

    assert controller.running.version == 0
    assert controller.running.interval_seconds == 0.2
    assert controller.actuators.levels == {"led": 0, "fan": 0}  # the heater has no working driver


def test_a_schedule_runs_on_the_time_zone_the_cloud_sends(kit):
    controller, *_ = kit
    desired = {"interval_seconds": 2, "actuators": {"led": LED_DAYTIME}}

    assert controller.offer(message(1, desired, time_zone="Europe/Amsterdam")) == Decision(1, "applied")
    assert controller.actuators.levels["led"] == 80  # 06:30 in Amsterdam

    controller.offer(message(2, desired, time_zone="UTC"))
    assert controller.actuators.levels["led"] == 0  # 04:30 in UTC: still night


def test_a_thermostat_follows_its_calibrated_sensor_with_hysteresis(kit):
    controller, _, dials, _ = kit
    desired = {
        "interval_seconds": 60,
        "sensors": {"temperature": {"offset": 3.0}},
        "actuators": {"fan": FAN_THERMOSTAT},
    }
    controller.offer(message(1, desired))
    levels = []
    for raw in (22.0, 24.0, 22.5, 21.9, 22.5):  # calibrated: 25, 27, 25.5, 24.9, 25.5
        dials["temperature"].value = raw
        controller.evaluate()
        levels.append(controller.actuators.levels["fan"])

    assert levels == [0, 100, 100, 0, 0]


def test_calibration_and_disabled_sensors_shape_what_a_measurement_reports(kit):
    controller, *_ = kit
    desired = {
        "interval_seconds": 60,
        "sensors": {"temperature": {"offset": -0.5, "scale": 1.1}, "light": {"enabled": False}},
    }
    controller.offer(message(1, desired))

    assert controller.reported({"temperature": 20.0, "light": 500.0}) == {"temperature": 21.5}


def test_an_override_holds_for_its_minutes_and_then_the_rule_returns(kit):
    controller, clocks, _, _ = kit

    override = controller.override("fan", 100, 10)

    assert controller.actuators.levels["fan"] == 100
    assert override.until_utc == datetime(2026, 6, 1, 4, 40, tzinfo=UTC)
    clocks.seconds += 599
    controller.evaluate()
    assert controller.actuators.levels["fan"] == 100
    clocks.seconds += 2
    controller.evaluate()
    assert controller.actuators.levels["fan"] == 0


def test_an_override_without_minutes_lasts_until_the_next_configuration_not_a_redelivery(kit):
    controller, *_ = kit
    controller.offer(message(1, {"interval_seconds": 60}))
    controller.override("led", 30, None)

    assert controller.offer(message(1, {"interval_seconds": 60})) == Decision(1, "applied")  # the retained copy
    assert controller.actuators.levels["led"] == 30

    controller.offer(message(2, {"interval_seconds": 60}))
    assert controller.actuators.levels["led"] == 0


def test_an_applied_configuration_is_kept_on_disk_and_runs_after_a_restart(kit):
    controller, _, _, make = kit
    desired = {"interval_seconds": 2, "actuators": {"led": {"mode": "on", "level": 40}}}

    controller.offer(message(3, desired, time_zone="Europe/Amsterdam"))

    folder = controller.path.parent
    assert sorted(path.name for path in folder.iterdir() if "configuration" in path.name) == [
        "applied-configuration.json"
    ]  # no temporary file left behind
    restarted = make()
    restarted.evaluate()
    assert (restarted.running.version, restarted.running.time_zone) == (3, "Europe/Amsterdam")
    assert restarted.running.interval_seconds == 2
    assert restarted.actuators.levels["led"] == 40
    assert restarted.offer(message(2, desired)) is None  # older than what it runs: a stale copy


def test_a_configuration_turning_on_an_actuator_without_a_working_driver_is_rejected_whole(kit):
    controller, _, _, make = kit
    controller.offer(message(1, {"interval_seconds": 30, "actuators": {"led": {"mode": "on", "level": 10}}}))
    before = controller.path.read_text()

    decision = controller.offer(
        message(2, {"interval_seconds": 2, "actuators": {"led": {"mode": "on", "level": 90}, "heater": {"mode": "on"}}})
    )

    assert decision.status == "rejected" and decision.version == 2
    assert "actuators.heater: the kit cannot drive it" in decision.reason
    assert "gpio_relay" in decision.reason
    # nothing of it was applied: not the interval, not the LED, not on disk
    assert controller.running.version == 1 and controller.running.interval_seconds == 30
    assert controller.actuators.levels["led"] == 10
    assert controller.path.read_text() == before
    # while a configuration that leaves the heater off is one the kit can run
    assert controller.offer(message(3, {"interval_seconds": 2, "actuators": {"heater": {"mode": "off"}}})).status == (
        "applied"
    )


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"kit_id": "another-kit"}, "It is for kit 'another-kit'; this is 'k-7f3a-c21e'."),
        ({"schema_version": 2}, "schema_version 2 is not one this kit reads"),
        ({"time_zone": "Mars/Olympus"}, "time_zone: 'Mars/Olympus' is not a time zone"),
        ({"desired": {"interval_seconds": 1}}, "interval_seconds: Seconds between measurements are 2 to 3600"),
        (
            {"desired": {"interval_seconds": 60, "actuators": {"pump": {"mode": "on"}}}},
            "actuators.pump: The kit has no",
        ),
    ],
)
def test_a_configuration_the_kit_cannot_take_is_rejected_with_the_reason(kit, changes, reason):
    controller, *_ = kit

    decision = controller.offer({**message(1, {"interval_seconds": 60}), **changes})

    assert decision.status == "rejected"
    assert reason in decision.reason
    assert controller.running.version == 0
    assert not controller.path.exists()


def test_a_message_without_a_version_gets_no_answer(kit):
    controller, *_ = kit

    assert controller.offer({"schema_version": 1, "kit_id": "k-7f3a-c21e", "desired": {}}) is None
    assert controller.offer(["not", "a", "configuration"]) is None


def test_a_kept_configuration_that_no_longer_fits_the_kit_gives_way_to_kit_toml(kit, actuated_kit_toml):
    controller, _, _, make = kit
    controller.offer(message(4, {"interval_seconds": 2, "actuators": {"fan": {"mode": "on"}}}))
    # the kit is rebuilt without its fan
    text = actuated_kit_toml.read_text(encoding="utf-8")
    actuated_kit_toml.write_text(text.replace('key = "fan"\nkind = "fan"', 'key = "pump"\nkind = "pump"'))

    restarted = make(load_config(actuated_kit_toml))

    assert restarted.running.version == 0  # so the retained configuration is decided afresh
    assert restarted.running.interval_seconds == 0.2
