"""Actuator drivers: simulated ones act on the world the simulated sensors read; real ones say
plainly why they cannot run, and the kit goes on without them."""

from datetime import UTC, datetime

import pytest

from device.actuators import ActuatorSet
from device.config import ActuatorConfig, SensorConfig
from device.sensors import SimulatedDriver
from device.simulation import SimulatedWorld

MIDNIGHT = datetime(2026, 6, 1, 0, 0, tzinfo=UTC)


class ManualClock:
    def __init__(self):
        self.seconds = 1000.0

    def __call__(self):
        return self.seconds


@pytest.fixture
def world():
    clock = ManualClock()
    return SimulatedWorld(lag_seconds=60, clock=clock), clock


def test_the_simulated_light_sensor_sees_the_simulated_led_panel(world):
    world, _ = world
    light = SimulatedDriver(SensorConfig("light", "light", "lux"), clock=lambda: MIDNIGHT, seed=3, world=world)
    actuators = ActuatorSet([ActuatorConfig("led", "light", dimmable=True)], world=world)
    dark = light.read()

    actuators.set("led", 50)

    assert dark < 1  # night
    assert 7_000 < light.read() < 8_000  # half of the panel's 15,000 lux
    assert actuators.levels == {"led": 50}


@pytest.mark.parametrize(("kind", "warmer"), [("fan", False), ("cooler", False), ("heater", True)])
def test_fans_and_coolers_cool_the_simulated_air_and_heaters_warm_it(world, kind, warmer):
    world, clock = world
    temperature = SimulatedDriver(
        SensorConfig("temperature", "temperature", "°C"), clock=lambda: MIDNIGHT, seed=3, world=world
    )
    actuators = ActuatorSet([ActuatorConfig("thing", kind)], world=world)
    before = temperature.read()

    actuators.set("thing", 100)
    clock.seconds += 120  # two lags: most of the way there

    change = temperature.read() - before
    assert (change > 3) if warmer else (change < -3)
    actuators.set("thing", 0)
    clock.seconds += 600
    assert abs(temperature.read() - before) < 1  # and the air returns once it is off


def test_a_gpio_driver_without_gpiozero_says_what_to_install_and_the_rest_go_on(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "gpiozero", None)  # as on a Pi without it
    actuators = ActuatorSet(
        [ActuatorConfig("heater", "heater", driver="gpio_relay", options={"pin": 17}), ActuatorConfig("fan", "fan")]
    )

    assert not actuators.working("heater")
    assert "needs the Python package 'gpiozero': pip install gpiozero" in actuators.failures["heater"]
    assert actuators.set("heater", 100) is False
    assert actuators.set("fan", 100) is True
    assert actuators.levels == {"fan": 100}


@pytest.mark.parametrize(
    ("actuator", "message"),
    [
        (ActuatorConfig("led", "light", dimmable=True, driver="gpio_relay", options={"pin": 4}), "use gpio_pwm"),
        (ActuatorConfig("pump", "pump", driver="gpio_pwm"), "needs options.pin"),
    ],
)
def test_a_gpio_driver_configured_wrongly_says_how(actuator, message):
    actuators = ActuatorSet([actuator])

    assert message in actuators.failures[actuator.key]


def test_an_actuator_that_fails_when_set_is_not_claimed_to_be_at_that_level():
    class Stuck:
        def set_level(self, level):
            raise OSError("relay board not answering")

        def close(self):
            pass

    actuators = ActuatorSet([ActuatorConfig("pump", "pump")], make_driver=lambda actuator: Stuck())

    assert actuators.set("pump", 100) is False
    assert "pump" not in actuators.levels
    assert "relay board not answering" in actuators.failures["pump"]


def test_the_kit_check_lists_each_actuator_and_its_driver(actuated_kit_toml, monkeypatch):
    from device.check import check_actuators
    from device.config import load_config

    monkeypatch.setitem(__import__("sys").modules, "gpiozero", None)

    results = check_actuators(load_config(actuated_kit_toml))

    assert results == [
        (True, "Actuator led (light, dimmable) has a working simulated driver"),
        (True, "Actuator fan (fan, on/off) has a working simulated driver"),
        (
            False,
            "Actuator heater (heater, on/off): Actuator 'heater' uses the gpio_relay driver, which needs the Python "
            "package 'gpiozero': pip install gpiozero",
        ),
    ]
