"""The MQTT contract, server side: what a kit may send, checked before anything is stored.

The kit agent (device/payloads.py) writes these messages; DESIGN.md ("MQTT contract") is the
agreement between the two. Every check failure raises InvalidMessage with a reason an admin can
act on; the ingest bridge keeps such a message as a dead letter.
"""

import json
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address

# One contract for both sides: the kit writes its messages with this module.
from device.payloads import (
    COMMAND_RESULT_STATUSES,
    CONFIG_STATUSES,
    KIT_ID,
    KIT_PUBLISHES,
    MAX_PAYLOAD_BYTES,
    MAX_READINGS_PER_MESSAGE,
    MAX_REASON_LENGTH,
    SCHEMA_VERSION,
    SENSOR_KEY_PATTERN,
    THING_NAME_PREFIX,
    TOPIC_ROOT,
)

TOPIC_PATTERN = re.compile(
    f"^{re.escape(TOPIC_ROOT)}/{re.escape(THING_NAME_PREFIX)}(?P<kit_id>{KIT_ID})"
    f"/(?P<channel>{'|'.join(KIT_PUBLISHES)})$"
)
SENSOR_KEY = re.compile(SENSOR_KEY_PATTERN)
COMMAND_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
COMMAND_RESULT_FIELDS = {"schema_version", "kit_id", "id", "status", "result", "reason", "timestamp"}


class InvalidMessage(Exception):
    """A kit message that breaks the contract. `reason` says how, in one sentence."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Measurement:
    kit_id: str
    timestamp: datetime
    sequence: int
    readings: dict[str, float]
    # Each actuator's level (0-100) at that instant, under the actuator's key.
    actuators: dict[str, float] = field(default_factory=dict)

    @property
    def values(self) -> dict[str, float]:
        """What is stored of the message: readings and actuator levels side by side, each under
        its key (the two never share one), so an actuator's history is kept and served like a
        sensor's."""
        return {**self.readings, **self.actuators}


@dataclass(frozen=True)
class ConfigReport:
    version: int
    status: str  # applied | rejected
    reason: str | None


@dataclass(frozen=True)
class Status:
    kit_id: str
    timestamp: datetime
    ip: str | None
    software_version: str
    uptime_seconds: int
    # What the kit said of a configuration it was sent, when the status carries that.
    config_report: ConfigReport | None = None


@dataclass(frozen=True)
class CommandResult:
    """A kit's answer to one of its commands (topic command-results)."""

    kit_id: str
    timestamp: datetime
    command_id: str
    status: str  # succeeded | failed
    result: dict | None
    reason: str | None


def topic_parse(topic: str) -> tuple[str, str]:
    """(kit id, channel) of a kit topic, such as ('k-7f3a-c21e', 'measurements')."""
    match = TOPIC_PATTERN.match(topic)
    if not match:
        raise InvalidMessage(f"The topic {topic!r} is not a kit's measurements, status or command-results topic.")
    return match["kit_id"], match["channel"]


def message_parse(
    *,
    topic: str,
    payload: bytes,
    now: datetime,
    max_age: timedelta,
    max_ahead: timedelta,
) -> Measurement | Status | CommandResult:
    """Check one kit message against the contract and return what it says."""
    topic_kit_id, channel = topic_parse(topic)
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise InvalidMessage(f"The payload is {len(payload)} bytes; at most {MAX_PAYLOAD_BYTES} are allowed.")
    try:
        body = json.loads(payload.decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError) as error:
        raise InvalidMessage(f"The payload is not JSON: {error}.") from None
    except RecursionError:
        raise InvalidMessage("The payload nests too deeply to be a kit message.") from None
    if not isinstance(body, dict):
        raise InvalidMessage("The payload must be a JSON object.")
    if body.get("schema_version") != SCHEMA_VERSION:
        raise InvalidMessage(f"schema_version is {body.get('schema_version')!r}; this backend reads {SCHEMA_VERSION}.")
    kit_id = body.get("kit_id")
    if kit_id != topic_kit_id:
        raise InvalidMessage(f"The payload speaks for kit {kit_id!r} on kit {topic_kit_id!r}'s topic.")
    timestamp = _timestamp(body.get("timestamp"), now=now, max_age=max_age, max_ahead=max_ahead)
    if channel == "measurements":
        readings = _readings(body)
        return Measurement(
            kit_id=kit_id,
            timestamp=timestamp,
            sequence=_sequence(body.get("sequence")),
            readings=readings,
            actuators=_actuator_levels(body, readings),
        )
    if channel == "command-results":
        return _command_result(body, kit_id=kit_id, timestamp=timestamp)
    return Status(
        kit_id=kit_id,
        timestamp=timestamp,
        ip=_ip(body.get("ip")),
        software_version=_text(body.get("software_version"), "software_version", 64),
        uptime_seconds=_whole_number(body.get("uptime_seconds"), "uptime_seconds"),
        config_report=_config_report(body),
    )


def _config_report(body: dict) -> ConfigReport | None:
    """A status's optional report on a configuration: config_version, config_status and reason
    go together (device.payloads.status_payload)."""
    if body.get("config_version") is None:
        if body.get("config_status") is not None:
            raise InvalidMessage("config_status is given without the config_version it is about.")
        return None
    version = _whole_number(body["config_version"], "config_version")
    if version >= 2**31:
        raise InvalidMessage(f"config_version {version} is not a configuration version.")
    status = body.get("config_status")
    if status not in CONFIG_STATUSES:
        raise InvalidMessage(f"config_status must be one of {', '.join(CONFIG_STATUSES)}, not {status!r}.")
    return ConfigReport(version=version, status=status, reason=_reason(body.get("reason")))


def _command_result(body: dict, *, kit_id: str, timestamp: datetime) -> CommandResult:
    unknown = sorted(set(body) - COMMAND_RESULT_FIELDS)
    if unknown:
        raise InvalidMessage(f"A command result has no field {', '.join(map(repr, unknown))}.")
    command_id = body.get("id")
    if not isinstance(command_id, str) or not COMMAND_ID.match(command_id):
        raise InvalidMessage(f"id {command_id!r} is not a command id (a UUID such as the command carried).")
    status = body.get("status")
    if status not in COMMAND_RESULT_STATUSES:
        raise InvalidMessage(f"status must be one of {', '.join(COMMAND_RESULT_STATUSES)}, not {status!r}.")
    result = body.get("result")
    if result is not None and not isinstance(result, dict):
        raise InvalidMessage("result must be an object, or null.")
    return CommandResult(
        kit_id=kit_id,
        timestamp=timestamp,
        command_id=command_id,
        status=status,
        result=result,
        reason=_reason(body.get("reason")),
    )


def _reason(value) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_REASON_LENGTH:
        raise InvalidMessage(f"reason must be text of at most {MAX_REASON_LENGTH} characters, or null.")
    return value


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def _timestamp(value, *, now: datetime, max_age: timedelta, max_ahead: timedelta) -> datetime:
    """An ISO 8601 time with its offset: `Z` (as kits send it) or `+02:00`, read as ISO 8601 says
    (10:00+02:00 is 08:00Z). A time without an offset, or with two, is refused: never guessed."""
    if not isinstance(value, str) or len(value) > 64:
        raise InvalidMessage(f"timestamp {value!r} must be an ISO 8601 date and time with Z or an offset.")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidMessage(
            f"timestamp {value!r} is not an ISO 8601 date and time such as 2026-11-30T10:00:00Z "
            "(Z or an offset such as +02:00, not both)."
        ) from None
    if moment.tzinfo is None:
        raise InvalidMessage(f"timestamp {value!r} has no offset: end it with Z (UTC) or an offset such as +02:00.")
    moment = moment.astimezone(UTC)
    if moment > now + max_ahead:
        raise InvalidMessage(
            f"timestamp {value} is in the future (now is {now:%Y-%m-%dT%H:%M:%SZ}): is the kit's clock right?"
        )
    if moment < now - max_age:
        raise InvalidMessage(f"timestamp {value} is older than {max_age.days} days: too old to accept.")
    return moment


def _sequence(value) -> int:
    number = _whole_number(value, "sequence")
    if number < 1:
        raise InvalidMessage(f"sequence must be 1 or more, not {number}.")
    return number


def _whole_number(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise InvalidMessage(f"{name} must be a whole number from 0 to 2^63, not {value!r}.")
    return value


def _readings(body: dict) -> dict[str, float]:
    readings = body.get("readings")
    if not isinstance(readings, dict) or not readings:
        raise InvalidMessage("readings must be a non-empty object of sensor -> number.")
    if len(readings) > MAX_READINGS_PER_MESSAGE:
        raise InvalidMessage(f"{len(readings)} readings in one message; at most {MAX_READINGS_PER_MESSAGE}.")
    clean = {}
    for key, value in readings.items():
        if not SENSOR_KEY.match(key):
            raise InvalidMessage(f"{key!r} is not a sensor key (lower-case letters, digits, underscores).")
        clean[key] = _number(key, value)
    return clean


def _actuator_levels(body: dict, readings: dict[str, float]) -> dict[str, float]:
    """The optional `actuators` map: actuator key -> level, 0 to 100."""
    if "actuators" not in body:
        return {}
    levels = body["actuators"]
    if not isinstance(levels, dict):
        raise InvalidMessage("actuators must be an object of actuator key -> level (0 to 100).")
    if len(readings) + len(levels) > MAX_READINGS_PER_MESSAGE:
        raise InvalidMessage(
            f"{len(readings)} readings and {len(levels)} actuator levels in one message; "
            f"at most {MAX_READINGS_PER_MESSAGE} values in all."
        )
    clean = {}
    for key, value in levels.items():
        if not SENSOR_KEY.match(key):
            raise InvalidMessage(f"{key!r} is not an actuator key (lower-case letters, digits, underscores).")
        if key in readings:
            raise InvalidMessage(f"{key} is both a reading and an actuator: a key names a sensor or an actuator.")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidMessage(f"Actuator {key}'s level {value!r} is not a number from 0 to 100.")
        if not 0 <= value <= 100:  # compared as given: an integer too large for a float is just large
            raise InvalidMessage(f"Actuator {key}'s level {value!r} is outside 0 to 100.")
        clean[key] = float(value)
    return clean


def _number(key: str, value) -> float:
    """A sensor value as the float it is stored as. JSON integers can be of any size, and
    float() of a huge one raises OverflowError: refused here, not left to crash the bridge."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidMessage(f"Sensor {key}'s value {value!r} is not a finite number.")
    try:
        number = float(value)
    except OverflowError:
        bits = value.bit_length()
        raise InvalidMessage(f"Sensor {key}'s value is an integer of {bits} bits, too large to store.") from None
    if not math.isfinite(number):
        raise InvalidMessage(f"Sensor {key}'s value {value!r} is not a finite number.")
    return number


def _ip(value) -> str | None:
    if value is None:
        return None
    try:
        return str(ip_address(value))
    except (TypeError, ValueError):
        raise InvalidMessage(f"ip {value!r} is not an IP address.") from None


def _text(value, name: str, max_length: int) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= max_length:
        raise InvalidMessage(f"{name} must be text of 1 to {max_length} characters.")
    return value
