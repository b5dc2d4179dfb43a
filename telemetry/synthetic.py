"""Plausible synthetic readings for demos, tests and benchmarks: day/night curves per quantity,
with slow drift and noise. Pure: the same seed gives the same history."""

import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from .services import Reading

DAY_SECONDS = 86_400


@dataclass(frozen=True)
class SyntheticSensor:
    key: str
    quantity: str
    low: float | None = None  # the sensor's plausible range, if known: values are kept inside
    high: float | None = None


DEMO_SENSORS = [
    SyntheticSensor("temperature", "temperature", -10, 50),
    SyntheticSensor("humidity", "humidity", 0, 100),
    SyntheticSensor("co2", "co2", 200, 5000),
    SyntheticSensor("light", "light", 0, 100000),
]


def _daylight(moment: datetime) -> float:
    """0 at night, rising to 1 at 13:00 UTC, like a window sill in Europe."""
    hour = moment.hour + moment.minute / 60 + moment.second / 3600
    return max(0.0, math.sin(math.pi * (hour - 6) / 14)) if 6 <= hour <= 20 else 0.0


def _value(quantity: str, moment: datetime, rng: random.Random, drift: float) -> float:
    daylight = _daylight(moment)
    days = moment.timestamp() / DAY_SECONDS
    if quantity == "temperature":
        return 18.5 + 6.0 * daylight + drift + rng.gauss(0, 0.15)
    if quantity == "humidity":
        return 68.0 - 18.0 * daylight - 2 * drift + rng.gauss(0, 0.8)
    if quantity == "co2":  # plants take up CO2 in the light and breathe it out at night
        return 620.0 - 180.0 * daylight + rng.gauss(0, 12)
    if quantity == "light":
        clouds = 0.75 + 0.25 * math.sin(days * 2.1)
        return 24000.0 * daylight * clouds * (1 + rng.gauss(0, 0.03))
    if quantity == "pressure":
        return 1013.0 + 6.0 * math.sin(days / 3) + rng.gauss(0, 0.3)
    if quantity == "soil_moisture":  # watered every other day, drying in between
        return 70.0 - 25.0 * ((days % 2) / 2) + rng.gauss(0, 0.5)
    if quantity == "water_temperature":
        return 19.0 + 2.0 * daylight + rng.gauss(0, 0.1)
    if quantity == "ph":
        return 6.2 + 0.05 * math.sin(days) + rng.gauss(0, 0.02)
    if quantity == "ec":
        return 1.6 - 0.1 * ((days % 7) / 7) + rng.gauss(0, 0.01)
    return 50.0 + 10.0 * daylight + rng.gauss(0, 1)


def synthetic_readings(
    *,
    kit_id: str,
    sensors: Sequence[SyntheticSensor],
    start: datetime,
    end: datetime,
    interval: timedelta,
    seed: int = 0,
) -> Iterator[Reading]:
    """One reading per `interval` in [start, end), all sensors at each instant."""
    rng = random.Random(f"{kit_id}:{seed}")  # noqa: S311 (plausible data, not secrets)
    drift = 0.0
    moment = start
    while moment < end:
        drift = max(-2.0, min(2.0, drift + rng.gauss(0, 0.02)))
        values = {}
        for sensor in sensors:
            value = _value(sensor.quantity, moment, rng, drift)
            if sensor.low is not None:
                value = max(sensor.low, value)
            if sensor.high is not None:
                value = min(sensor.high, value)
            values[sensor.key] = round(value, 2)
        yield Reading(kit_id, moment, values)
        moment += interval
