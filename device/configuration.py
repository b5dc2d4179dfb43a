"""A kit's configuration as the cloud sets it (`desired`): one schema for both sides.

The server checks what a configurer asks for with it (a 400 per field), and the kit checks what
arrives on its `config` topic with it before applying anything, so the two cannot disagree about
what is valid. It imports nothing from the server: it runs on the Pi (Python 3.9 or newer).

    {"interval_seconds": 60,
     "sensors": {"temperature": {"enabled": true, "offset": 0.0, "scale": 1.0}},
     "actuators": {"led": {"mode": "schedule", "periods": [{"from": "06:00", "to": "22:00", "level": 80}]},
                   "fan": {"mode": "thermostat", "sensor": "temperature", "on_above": 26.0, "off_below": 25.0},
                   "heater": {"mode": "thermostat", "sensor": "temperature", "on_below": 18.0, "off_above": 19.0},
                   "pump": {"mode": "on", "level": 100}, "other": {"mode": "off"}}}

Every sensor and actuator of the kit has an entry once checked: missing ones get the defaults
(enabled, no calibration; off). Schedules are in the kit's local time zone; a period may run over
midnight (22:00 to 06:00); outside every period the actuator is off. A thermostat with
`on_above`/`off_below` cools (a fan, a cooler), one with `on_below`/`off_above` heats.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

INTERVAL_SECONDS_MIN = 2
INTERVAL_SECONDS_MAX = 3600
LEVEL_MIN, LEVEL_MAX = 0, 100
MAX_PERIODS = 24
ACTUATOR_KINDS = ("light", "fan", "heater", "cooler", "pump", "other")
ACTUATOR_MODES = ("off", "on", "schedule", "thermostat")
SENSOR_DEFAULT = {"enabled": True, "offset": 0.0, "scale": 1.0}
ACTUATOR_DEFAULT = {"mode": "off"}

_TIME = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")
_COOLING = ("on_above", "off_below")
_HEATING = ("on_below", "off_above")
_MODE_FIELDS = {
    "off": {"mode"},
    "on": {"mode", "level"},
    "schedule": {"mode", "periods"},
    "thermostat": {"mode", "sensor", "level", *_COOLING, *_HEATING},
}


class ConfigurationInvalid(ValueError):
    """`problems` maps each offending field (a dotted path such as `actuators.led.periods.0.from`)
    to what is wrong with it, in plain words."""

    def __init__(self, problems: dict[str, list[str]]):
        self.problems = problems
        super().__init__("; ".join(f"{field}: {' '.join(messages)}" for field, messages in problems.items()))


def desired_default(*, interval_seconds: float, sensor_keys: Iterable[str], actuator_keys: Iterable[str]) -> dict:
    """What a kit never configured runs: its interval, every sensor on without calibration,
    every actuator off."""
    interval = int(round(min(max(float(interval_seconds), INTERVAL_SECONDS_MIN), INTERVAL_SECONDS_MAX)))
    return {
        "interval_seconds": interval,
        "sensors": {key: dict(SENSOR_DEFAULT) for key in sorted(sensor_keys)},
        "actuators": {key: dict(ACTUATOR_DEFAULT) for key in sorted(actuator_keys)},
    }


def desired_checked(desired: Any, *, sensor_keys: Iterable[str], actuators: Mapping[str, Mapping[str, Any]]) -> dict:
    """`desired` completed with the defaults, if a kit with these sensors and `actuators` (key ->
    {"kind", "dimmable"}) can run it; ConfigurationInvalid naming every problem otherwise."""
    sensor_keys = set(sensor_keys)
    problems: dict[str, list[str]] = {}

    def problem(field: str, message: str) -> None:
        problems.setdefault(field, []).append(message)

    if not isinstance(desired, dict):
        raise ConfigurationInvalid({"desired": ["An object with interval_seconds, sensors and actuators is required."]})
    for key in sorted(set(desired) - {"interval_seconds", "sensors", "actuators"}):
        problem(key, "Not a part of a configuration (interval_seconds, sensors, actuators).")

    checked: dict[str, Any] = {}
    interval = desired.get("interval_seconds")
    bounds = f"{INTERVAL_SECONDS_MIN} to {INTERVAL_SECONDS_MAX}"
    if not _is_number(interval) or interval != int(interval):
        problem("interval_seconds", f"A whole number of seconds from {bounds} is required.")
    elif not INTERVAL_SECONDS_MIN <= interval <= INTERVAL_SECONDS_MAX:
        problem("interval_seconds", f"Seconds between measurements are {bounds}, not {interval}.")
    else:
        checked["interval_seconds"] = int(interval)

    checked["sensors"] = {}
    sensors = desired.get("sensors", {})
    if not isinstance(sensors, dict):
        problem("sensors", "An object of sensor key -> {enabled, offset, scale} is required.")
        sensors = {}
    for key in sorted(sensor_keys | set(sensors)):
        field = f"sensors.{key}"
        if key not in sensor_keys:
            problem(field, "The kit has no sensor with this key.")
            continue
        checked["sensors"][key] = _sensor_checked(sensors.get(key, {}), field, problem)

    checked["actuators"] = {}
    rules = desired.get("actuators", {})
    if not isinstance(rules, dict):
        problem("actuators", "An object of actuator key -> rule is required.")
        rules = {}
    for key in sorted(set(actuators) | set(rules)):
        field = f"actuators.{key}"
        if key not in actuators:
            problem(field, "The kit has no actuator with this key.")
            continue
        rule = rules.get(key, ACTUATOR_DEFAULT)
        checked["actuators"][key] = _rule_checked(rule, field, actuators[key], sensor_keys, problem)

    if problems:
        raise ConfigurationInvalid(problems)
    return checked


def _sensor_checked(entry: Any, field: str, problem) -> dict:
    if not isinstance(entry, dict):
        problem(field, "An object {enabled, offset, scale} is required.")
        return dict(SENSOR_DEFAULT)
    for key in sorted(set(entry) - set(SENSOR_DEFAULT)):
        problem(f"{field}.{key}", "Not a part of a sensor's configuration (enabled, offset, scale).")
    enabled = entry.get("enabled", True)
    if not isinstance(enabled, bool):
        problem(f"{field}.enabled", "true or false is required.")
    offset, scale = entry.get("offset", 0.0), entry.get("scale", 1.0)
    if not _is_number(offset):
        problem(f"{field}.offset", "A finite number is required.")
    if not _is_number(scale):
        problem(f"{field}.scale", "A finite number is required.")
    elif scale == 0:
        problem(f"{field}.scale", "A scale of 0 would turn every reading into the offset.")
    return {"enabled": enabled, "offset": _float(offset), "scale": _float(scale)}


def _rule_checked(rule: Any, field: str, actuator: Mapping[str, Any], sensor_keys: set, problem) -> dict:
    if not isinstance(rule, dict) or rule.get("mode") not in ACTUATOR_MODES:
        problem(f"{field}.mode", f"A rule is an object whose mode is one of {', '.join(ACTUATOR_MODES)}.")
        return dict(ACTUATOR_DEFAULT)
    mode = rule["mode"]
    for key in sorted(set(rule) - _MODE_FIELDS[mode]):
        problem(f"{field}.{key}", f"Not a part of an '{mode}' rule ({', '.join(sorted(_MODE_FIELDS[mode]))}).")
    dimmable = bool(actuator.get("dimmable"))
    if mode == "off":
        return {"mode": "off"}
    if mode == "on":
        level = _level_checked(rule.get("level", LEVEL_MAX), f"{field}.level", dimmable, problem)
        return {"mode": "on", "level": level}
    if mode == "schedule":
        periods = _periods_checked(rule.get("periods"), f"{field}.periods", dimmable, problem)
        return {"mode": "schedule", "periods": periods}
    return _thermostat_checked(rule, field, dimmable, sensor_keys, problem)


def _level_checked(level: Any, field: str, dimmable: bool, problem) -> float:
    if not _is_number(level) or not LEVEL_MIN <= level <= LEVEL_MAX:
        problem(field, f"A level is a number from {LEVEL_MIN} to {LEVEL_MAX}.")
        return 0
    if not dimmable and level not in (LEVEL_MIN, LEVEL_MAX):
        problem(field, f"This actuator is on/off: its level is {LEVEL_MIN} or {LEVEL_MAX}.")
    return level


def _periods_checked(periods: Any, field: str, dimmable: bool, problem) -> list[dict]:
    if not isinstance(periods, list) or not 1 <= len(periods) <= MAX_PERIODS:
        problem(field, f"A schedule is a list of 1 to {MAX_PERIODS} periods {{from, to, level}}.")
        return []
    checked, spans = [], []
    for index, period in enumerate(periods):
        here = f"{field}.{index}"
        if not isinstance(period, dict):
            problem(here, "A period is an object {from, to, level}.")
            continue
        for key in sorted(set(period) - {"from", "to", "level"}):
            problem(f"{here}.{key}", "Not a part of a period (from, to, level).")
        start, end = minute_of_day(period.get("from")), minute_of_day(period.get("to"))
        if start is None:
            problem(f"{here}.from", "A time of day as HH:MM (00:00 to 23:59) is required.")
        if end is None:
            problem(f"{here}.to", "A time of day as HH:MM (00:00 to 23:59) is required.")
        if start is not None and start == end:
            problem(f"{here}.to", "A period must end at another time than it starts.")
        level = _level_checked(period.get("level", LEVEL_MAX), f"{here}.level", dimmable, problem)
        checked.append({"from": period.get("from"), "to": period.get("to"), "level": level})
        if start is not None and end is not None and start != end:
            for other_index, other in spans:
                if _minutes(start, end) & _minutes(*other):
                    earlier = periods[other_index]
                    problem(here, f"Overlaps period {other_index} ({earlier['from']}-{earlier['to']}).")
            spans.append((index, (start, end)))
    return checked


def _thermostat_checked(rule: dict, field: str, dimmable: bool, sensor_keys: set, problem) -> dict:
    sensor = rule.get("sensor")
    if sensor not in sensor_keys:
        problem(f"{field}.sensor", "The kit has no sensor with this key." if sensor else "A sensor key is required.")
    cooling = [key for key in _COOLING if key in rule]
    heating = [key for key in _HEATING if key in rule]
    checked = {"mode": "thermostat", "sensor": sensor}
    if len(cooling) == 2 and not heating:
        on, off = rule["on_above"], rule["off_below"]
        pair, ordered = ("on_above", "off_below"), lambda: off < on
        message = "off_below must be below on_above, or the actuator would never settle."
    elif len(heating) == 2 and not cooling:
        on, off = rule["on_below"], rule["off_above"]
        pair, ordered = ("on_below", "off_above"), lambda: off > on
        message = "off_above must be above on_below, or the actuator would never settle."
    else:
        problem(field, "A thermostat has either on_above and off_below (cooling) or on_below and off_above (heating).")
        return checked
    for key in pair:
        if not _is_number(rule[key]):
            problem(f"{field}.{key}", "A finite number is required.")
    if _is_number(on) and _is_number(off) and not ordered():
        problem(f"{field}.{pair[1]}", message)
    checked.update({pair[0]: _float(on), pair[1]: _float(off)})
    checked["level"] = _level_checked(rule.get("level", LEVEL_MAX), f"{field}.level", dimmable, problem)
    return checked


def actuator_level(rule: Mapping[str, Any], *, minute: int, readings: Mapping[str, float], current: float) -> float:
    """The level a checked `rule` asks for at `minute` of the local day (0-1439), given the
    latest `readings` and the actuator's `current` level (a thermostat between its two
    thresholds keeps what it has; with no reading of its sensor it turns off, the safe side)."""
    mode = rule["mode"]
    if mode == "on":
        return rule["level"]
    if mode == "schedule":
        for period in rule["periods"]:
            if minute in _minutes(minute_of_day(period["from"]), minute_of_day(period["to"])):
                return period["level"]
        return LEVEL_MIN
    if mode == "thermostat":
        value = readings.get(rule["sensor"])
        if value is None:
            return LEVEL_MIN
        if "on_above" in rule:
            turn_on, turn_off = value > rule["on_above"], value < rule["off_below"]
        else:
            turn_on, turn_off = value < rule["on_below"], value > rule["off_above"]
        if turn_on:
            return rule["level"]
        if turn_off:
            return LEVEL_MIN
        return current
    return LEVEL_MIN


def minute_of_day(text: Any) -> int | None:
    """Minutes since midnight of "HH:MM", or None if it is not such a time."""
    match = _TIME.match(text) if isinstance(text, str) else None
    return int(match.group(1)) * 60 + int(match.group(2)) if match else None


def _minutes(start: int, end: int) -> set[int]:
    # The minutes a period covers; one that runs over midnight wraps around.
    return set(range(start, end)) if start < end else set(range(start, 1440)) | set(range(0, end))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _float(value: Any) -> Any:
    return float(value) if _is_number(value) else value
