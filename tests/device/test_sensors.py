from datetime import UTC, datetime

import pytest

from device.config import SensorConfig
from device.sensors import SensorError, SensorSet, SimulatedDriver, driver_for

NOON = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
MIDNIGHT = datetime(2026, 6, 1, 0, 0, tzinfo=UTC)


def _sensor(key, quantity, **kwargs):
    return SensorConfig(key=key, quantity=quantity, unit="u", **kwargs)


@pytest.mark.parametrize(
    ("quantity", "night_range", "day_range"),
    [
        ("temperature", (15, 19), (23, 27)),
        ("humidity", (64, 76), (44, 56)),
        ("co2", (600, 700), (380, 460)),
        ("light", (0, 1), (18_000, 22_000)),
    ],
)
def test_simulated_sensors_follow_day_and_night(quantity, night_range, day_range):
    night = SimulatedDriver(_sensor("s", quantity), clock=lambda: MIDNIGHT, seed=1)
    day = SimulatedDriver(_sensor("s", quantity), clock=lambda: NOON, seed=1)

    assert night_range[0] <= night.read() <= night_range[1]
    assert day_range[0] <= day.read() <= day_range[1]


def test_simulated_readings_stay_within_the_plausible_range():
    driver = SimulatedDriver(_sensor("light", "light", min_value=0, max_value=100), clock=lambda: NOON, seed=1)

    assert driver.read() == 100


def test_a_failing_sensor_is_reported_and_skipped_while_the_others_go_on():
    class Broken:
        def read(self):
            raise OSError("I2C bus error")

    def make(sensor):
        return Broken() if sensor.key == "broken" else SimulatedDriver(sensor, clock=lambda: NOON)

    sensors = SensorSet([_sensor("broken", "temperature"), _sensor("light", "light")], make_driver=make)

    readings = sensors.read_all()

    assert list(readings) == ["light"]
    assert "I2C bus error" in sensors.failures["broken"]


def test_a_real_driver_without_its_library_says_what_to_install():
    sensors = SensorSet([_sensor("co2", "co2", driver="mhz19"), _sensor("t", "temperature")])

    assert "pip install pyserial" in sensors.failures["co2"]
    assert list(sensors.read_all()) == ["t"]


def test_an_unknown_driver_is_named():
    with pytest.raises(SensorError, match="known drivers: simulated, bme280"):
        driver_for(_sensor("x", "temperature", driver="bme680"))
