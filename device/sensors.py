"""Sensor drivers behind one small interface: `read()` returns the sensor's current value.

Simulated drivers make plausible day/night curves with noise, so a kit (or `make run`) works with
no hardware. Real drivers cover common kit peripherals; their hardware libraries are imported only
when such a sensor is configured, so a kit needs only the libraries of the sensors it has.
"""

from __future__ import annotations

import importlib
import logging
import math
import random
import time
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Callable

from .config import SensorConfig
from .simulation import SimulatedWorld

log = logging.getLogger(__name__)


class SensorError(Exception):
    """A sensor could not be set up or read; the message says which and why."""


class SensorDriver:
    def read(self) -> float:
        raise NotImplementedError


def _import(module: str, sensor: SensorConfig, package: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        raise SensorError(
            f"Sensor '{sensor.key}' uses the {sensor.driver} driver, which needs the Python package "
            f"'{package}': pip install {package}"
        ) from None


# --- simulated ------------------------------------------------------------------------------

# quantity -> (night value, day value, noise): daylight moves a reading from the first to the second.
SIMULATED_CURVES: dict[str, tuple[float, float, float]] = {
    "temperature": (17.0, 25.0, 0.2),
    "water_temperature": (18.0, 21.0, 0.1),
    "humidity": (70.0, 50.0, 1.0),
    "co2": (650.0, 420.0, 8.0),  # plants take CO2 up by day and give it off at night
    "light": (0.0, 20_000.0, 0.015),  # noise relative to the value: darkness is dark
    "pressure": (1013.0, 1011.0, 0.3),
    "soil_moisture": (42.0, 38.0, 0.3),
    "ph": (6.2, 6.3, 0.02),
    "ec": (1.4, 1.5, 0.02),
}


RELATIVE_NOISE = {"light"}


def daylight(moment: datetime) -> float:
    """0 at night, rising to 1 at noon UTC and back, over a 06:00-18:00 day."""
    hours = moment.hour + moment.minute / 60 + moment.second / 3600
    return max(0.0, math.sin(math.pi * (hours - 6) / 12))


class SimulatedDriver(SensorDriver):
    """A day/night curve with noise, plus what the simulated actuators of `world` do to it: the
    light sensor sees the lamps, the temperature follows heaters, fans and coolers."""

    def __init__(
        self,
        sensor: SensorConfig,
        *,
        clock: Callable[[], datetime] = None,
        seed: int | None = None,
        world: SimulatedWorld | None = None,
    ):
        self.quantity = sensor.quantity
        self.world = world
        self.night, self.day, self.noise = SIMULATED_CURVES.get(sensor.quantity, (10.0, 20.0, 0.5))
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.random = random.Random(seed)
        self.relative_noise = sensor.quantity in RELATIVE_NOISE
        self.low, self.high = sensor.min_value, sensor.max_value

    def read(self) -> float:
        value = self.night + (self.day - self.night) * daylight(self.clock())
        if self.world is not None and self.quantity == "light":
            value += self.world.light_lux()
        if self.world is not None and self.quantity in ("temperature", "water_temperature"):
            value += self.world.warming() * (0.3 if self.quantity == "water_temperature" else 1.0)
        if self.relative_noise:
            value *= 1 + self.random.gauss(0, self.noise)
        else:
            value += self.random.gauss(0, self.noise)
        if self.low is not None:
            value = max(self.low, value)
        if self.high is not None:
            value = min(self.high, value)
        return round(value, 2)


# --- real hardware --------------------------------------------------------------------------


class BME280Driver(SensorDriver):
    """Bosch BME280 on I2C: temperature (°C), humidity (%) or pressure (hPa).
    Options: bus (default 1), address (default 0x76). Needs `smbus2` and `RPi.bme280`."""

    FIELDS = {"temperature": "temperature", "humidity": "humidity", "pressure": "pressure"}

    def __init__(self, sensor: SensorConfig):
        if sensor.quantity not in self.FIELDS:
            raise SensorError(
                f"Sensor '{sensor.key}': a BME280 measures {', '.join(self.FIELDS)}, not {sensor.quantity}."
            )
        self.smbus2 = _import("smbus2", sensor, "smbus2")
        self.bme280 = _import("bme280", sensor, "RPi.bme280")
        self.bus = self.smbus2.SMBus(int(sensor.options.get("bus", 1)))
        self.address = int(sensor.options.get("address", 0x76))
        self.calibration = self.bme280.load_calibration_params(self.bus, self.address)
        self.field = self.FIELDS[sensor.quantity]

    def read(self) -> float:
        sample = self.bme280.sample(self.bus, self.address, self.calibration)
        return round(float(getattr(sample, self.field)), 2)


class DHT22Driver(SensorDriver):
    """DHT22 (AM2302) on a GPIO pin: temperature or humidity. Option: pin (default "D4").
    Needs `adafruit-circuitpython-dht`."""

    def __init__(self, sensor: SensorConfig):
        if sensor.quantity not in ("temperature", "humidity"):
            raise SensorError(f"Sensor '{sensor.key}': a DHT22 measures temperature or humidity.")
        adafruit_dht = _import("adafruit_dht", sensor, "adafruit-circuitpython-dht")
        board = _import("board", sensor, "adafruit-blinka")
        self.device = adafruit_dht.DHT22(getattr(board, sensor.options.get("pin", "D4")))
        self.quantity = sensor.quantity

    def read(self) -> float:
        # The DHT22 often misses a read; it is fine to try again after its 2-second minimum.
        for attempt in range(3):
            try:
                value = self.device.temperature if self.quantity == "temperature" else self.device.humidity
                if value is not None:
                    return round(float(value), 2)
            except RuntimeError:
                if attempt == 2:
                    raise
            time.sleep(2)
        raise SensorError("DHT22 returned no value three times in a row.")


class BH1750Driver(SensorDriver):
    """BH1750 light sensor on I2C, in lux. Options: bus (default 1), address (default 0x23).
    Needs `smbus2`."""

    ONE_TIME_HIGH_RESOLUTION = 0x20

    def __init__(self, sensor: SensorConfig):
        smbus2 = _import("smbus2", sensor, "smbus2")
        self.bus = smbus2.SMBus(int(sensor.options.get("bus", 1)))
        self.address = int(sensor.options.get("address", 0x23))

    def read(self) -> float:
        high, low = self.bus.read_i2c_block_data(self.address, self.ONE_TIME_HIGH_RESOLUTION, 2)
        return round(((high << 8) | low) / 1.2, 1)  # the datasheet's counts-to-lux factor


class MHZ19Driver(SensorDriver):
    """Winsen MH-Z19 CO2 sensor on a serial port, in ppm. Option: port (default /dev/serial0).
    Needs `pyserial`."""

    READ_CO2 = bytes([0xFF, 0x01, 0x86, 0x00, 0x00, 0x00, 0x00, 0x00, 0x79])

    def __init__(self, sensor: SensorConfig):
        serial = _import("serial", sensor, "pyserial")
        self.port = serial.Serial(sensor.options.get("port", "/dev/serial0"), baudrate=9600, timeout=2)

    def read(self) -> float:
        self.port.reset_input_buffer()
        self.port.write(self.READ_CO2)
        answer = self.port.read(9)
        if len(answer) != 9 or answer[0] != 0xFF or answer[1] != 0x86:
            raise SensorError(f"MH-Z19 gave an unexpected answer: {answer.hex() or 'nothing'}")
        if (0xFF - (sum(answer[1:8]) & 0xFF) + 1) & 0xFF != answer[8]:
            raise SensorError("MH-Z19 answer failed its checksum.")
        return float(answer[2] * 256 + answer[3])


DRIVERS: dict[str, Callable[[SensorConfig], SensorDriver]] = {
    "simulated": SimulatedDriver,
    "bme280": BME280Driver,
    "dht22": DHT22Driver,
    "bh1750": BH1750Driver,
    "mhz19": MHZ19Driver,
}


def driver_for(sensor: SensorConfig, *, world: SimulatedWorld | None = None) -> SensorDriver:
    """The sensor's driver; a simulated one lives in `world` (shared with simulated actuators)."""
    if sensor.driver == "simulated":
        return SimulatedDriver(sensor, world=world)
    try:
        make = DRIVERS[sensor.driver]
    except KeyError:
        raise SensorError(
            f"Sensor '{sensor.key}' asks for driver '{sensor.driver}'; known drivers: {', '.join(DRIVERS)}."
        ) from None
    return make(sensor)


class SensorSet:
    """The kit's sensors. A sensor that cannot be set up or read is reported and skipped; the
    others go on. `failures` holds the latest problem of each failing sensor."""

    def __init__(
        self,
        sensors: list[SensorConfig],
        *,
        make_driver: Callable[[SensorConfig], SensorDriver] | None = None,
        world: SimulatedWorld | None = None,
    ):
        make_driver = make_driver or (lambda sensor: driver_for(sensor, world=world))
        self.drivers: dict[str, SensorDriver] = {}
        self.failures: dict[str, str] = {}
        for sensor in sensors:
            try:
                self.drivers[sensor.key] = make_driver(sensor)
            except Exception as error:  # a broken sensor must not stop the kit
                self._fail(sensor.key, f"cannot be set up: {error}")

    def read_all(self, keys: Iterable[str] | None = None) -> dict[str, float]:
        """A reading of every sensor (or of those in `keys`) that gives one."""
        readings: dict[str, float] = {}
        wanted = None if keys is None else set(keys)
        for key, driver in self.drivers.items():
            if wanted is not None and key not in wanted:
                continue
            try:
                value = float(driver.read())
                if math.isnan(value) or math.isinf(value):
                    raise SensorError(f"read {value}, which is not a number")
            except Exception as error:  # a broken sensor must not stop the kit
                self._fail(key, f"cannot be read: {error}")
                continue
            readings[key] = value
            self.failures.pop(key, None)
        return readings

    def _fail(self, key: str, problem: str) -> None:
        if self.failures.get(key) != problem:
            log.warning("Sensor %s %s", key, problem)
        self.failures[key] = problem
