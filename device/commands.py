"""Commands from the cloud (device.payloads: `commands` in, `command-results` out): reading them,
and checking their arguments. The agent runs them (device.agent).

A command is answered at most once and never acted on after its `expires_at` by the kit's clock.
An expired command gets no answer at all: the cloud marks a command `expired` itself when no
answer came in time, and an answer sent after that moment could only contradict it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from .config import ActuatorConfig
from .payloads import COMMAND_NAMES, SCHEMA_VERSION

SET_ACTUATOR_MINUTES_MAX = 7 * 24 * 60
_TIMESTAMP = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$")


class CommandUnanswerable(Exception):
    """Not a command this kit can answer (no id to answer to): logged and dropped."""


class CommandRefused(Exception):
    """A command this kit will not run; answered `failed` with this reason."""


@dataclass(frozen=True)
class Command:
    id: str
    name: str
    arguments: dict
    expires_at: datetime | None  # None: no readable expiry (refused, never acted on)
    problem: str | None = None  # why it will be refused, if it will


def command_read(payload: bytes | str, *, kit_id: str) -> Command:
    """The command in `payload`. CommandUnanswerable when it has no id; a command with any other
    problem comes back with `problem` set, so that it can be answered `failed`."""
    try:
        message = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as error:
        raise CommandUnanswerable(f"not JSON ({error})") from None
    if not isinstance(message, dict):
        raise CommandUnanswerable("not a JSON object")
    command_id = message.get("id")
    if not isinstance(command_id, str) or not command_id or len(command_id) > 200:
        raise CommandUnanswerable(f"no usable id ({command_id!r})")
    expires_at = timestamp_parsed(message.get("expires_at"))
    name, arguments = message.get("name"), message.get("arguments", {})
    problem = None
    if message.get("schema_version") != SCHEMA_VERSION:
        problem = f"schema_version {message.get('schema_version')!r} is not one this kit reads ({SCHEMA_VERSION})."
    elif message.get("kit_id") != kit_id:
        problem = f"It is for kit {message.get('kit_id')!r}; this is {kit_id!r}."
    elif expires_at is None:
        problem = f"expires_at {message.get('expires_at')!r} is not an ISO 8601 time: not run, as it might be stale."
    elif name not in COMMAND_NAMES:
        problem = f"Unknown command {name!r}; this kit knows {', '.join(COMMAND_NAMES)}."
    elif not isinstance(arguments, dict):
        problem = "arguments must be an object."
    return Command(command_id, name if isinstance(name, str) else repr(name), arguments or {}, expires_at, problem)


def timestamp_parsed(text: Any) -> datetime | None:
    """An aware UTC datetime from ISO 8601 with `Z` or an offset (Python 3.9's fromisoformat
    takes neither `Z` nor every fraction length), or None."""
    match = _TIMESTAMP.match(text) if isinstance(text, str) else None
    if not match:
        return None
    whole, fraction, zone = match.groups()
    try:
        moment = datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return None
    microseconds = int((fraction or "0").ljust(6, "0")[:6])
    offset = timedelta(0) if zone == "Z" else _offset(zone)
    return (moment.replace(microsecond=microseconds, tzinfo=timezone(offset))).astimezone(timezone.utc)


def _offset(zone: str) -> timedelta:
    sign = -1 if zone[0] == "-" else 1
    hours, minutes = int(zone[1:3]), int(zone[4:6])
    return sign * timedelta(hours=hours, minutes=minutes)


def no_arguments(command: Command) -> None:
    if command.arguments:
        raise CommandRefused(f"{command.name} takes no arguments, not {', '.join(sorted(command.arguments))}.")


@dataclass(frozen=True)
class SetActuator:
    actuator: str
    level: float
    minutes: float | None


def set_actuator_arguments(arguments: dict, actuators: dict[str, ActuatorConfig]) -> SetActuator:
    """`{"actuator", "level", "minutes"?}` checked against the kit's actuators."""
    unknown = sorted(set(arguments) - {"actuator", "level", "minutes"})
    if unknown:
        raise CommandRefused(f"set_actuator takes actuator, level and minutes, not {', '.join(unknown)}.")
    key = arguments.get("actuator")
    if key not in actuators:
        known = ", ".join(sorted(actuators)) or "none"
        raise CommandRefused(f"actuator: the kit has no actuator {key!r} (it has: {known}).")
    level = arguments.get("level")
    if not _number(level) or not 0 <= level <= 100:
        raise CommandRefused(f"level: a number from 0 to 100 is required, not {level!r}.")
    if not actuators[key].dimmable and level not in (0, 100):
        raise CommandRefused(f"level: actuator '{key}' is on/off: its level is 0 or 100, not {level}.")
    minutes = arguments.get("minutes")
    if minutes is not None and (not _number(minutes) or not 0 < minutes <= SET_ACTUATOR_MINUTES_MAX):
        raise CommandRefused(f"minutes: a number above 0 and at most {SET_ACTUATOR_MINUTES_MAX} (a week) is required.")
    return SetActuator(key, level, minutes)


def _number(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and value == value
        and abs(value) != float("inf")
    )
