"""The MQTT contract (DESIGN.md, "MQTT contract"): one module for both sides. The kit writes its
messages with it; the server imports its names and limits (kits/iot_policy.py for topics and
rights, telemetry/messages.py to check what arrives), so the two cannot drift apart. It imports
nothing from the server: it runs on the Pi.

measurements (kit -> cloud), topic astroplant/kits/<thing name>/measurements:
    {"schema_version": 1, "kit_id": "k-7f3a-c21e", "timestamp": "2026-11-28T10:00:00Z",
     "sequence": 42, "readings": {"temperature": 21.5, "humidity": 55.0}}
    An optional "actuators" map gives each actuator's level (0-100) at that moment, such as
    {"led": 80, "fan": 0}; the server stores it like readings, under the actuator's key.
status (kit -> cloud), topic astroplant/kits/<thing name>/status:
    {"schema_version": 1, "kit_id": "...", "timestamp": "...Z", "ip": "192.0.2.7",
     "software_version": "1.0.0", "uptime_seconds": 3600}
    After the kit applied or refused a configuration, the status also carries
    "config_version": 7, "config_status": "applied" | "rejected", "reason": "..." (or null).
config (cloud -> kit, retained, QoS 1), topic astroplant/kits/<thing name>/config:
    {"schema_version": 1, "kit_id": "...", "version": 7, "time_zone": "Europe/Amsterdam",
     "desired": {...device.configuration...}, "timestamp": "...Z"}
commands (cloud -> kit, QoS 1, not retained), topic astroplant/kits/<thing name>/commands:
    {"schema_version": 1, "kit_id": "...", "id": "<uuid>", "name": "ping", "arguments": {},
     "expires_at": "...Z", "timestamp": "...Z"}
    A kit never acts on a command whose expires_at has passed.
command-results (kit -> cloud), topic astroplant/kits/<thing name>/command-results:
    {"schema_version": 1, "kit_id": "...", "id": "<uuid>", "status": "succeeded" | "failed",
     "result": {...} or null, "reason": "..." or null, "timestamp": "...Z"}
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone

SCHEMA_VERSION = 1
MAX_PAYLOAD_BYTES = 128 * 1024  # AWS IoT's limit
MAX_READINGS_PER_MESSAGE = 64

# Names: a kit's thing name is the prefix and its id; its topics are under TOPIC_ROOT/<thing name>/.
THING_NAME_PREFIX = "astroplant-"
TOPIC_ROOT = "astroplant/kits"
KIT_ID = r"[a-z0-9](?:[a-z0-9-]{0,46}[a-z0-9])?"  # in URLs, thing names and topics
KIT_ID_PATTERN = f"^{KIT_ID}$"
SENSOR_KEY_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"
# The kit publishes on these channels...
KIT_PUBLISHES = ("measurements", "status", "command-results")
# ...and subscribes to (and receives on) these.
KIT_SUBSCRIBES = ("config", "commands")

# Two-way: what a configuration's status and a command's answer may be, and the commands a kit knows.
CONFIG_STATUSES = ("applied", "rejected")
COMMAND_NAMES = ("ping", "set_actuator", "measure_now", "capture_photo")
COMMAND_RESULT_STATUSES = ("succeeded", "failed")
MAX_REASON_LENGTH = 500

_SENSOR_KEY = re.compile(SENSOR_KEY_PATTERN)


def utc_timestamp(moment: datetime | None = None) -> str:
    """ISO 8601 in UTC with a `Z`, to the millisecond."""
    moment = (moment or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def measurement_payload(
    *,
    kit_id: str,
    sequence: int,
    readings: dict[str, float],
    timestamp: str,
    actuators: dict[str, float] | None = None,
) -> str:
    """A measurement as the server takes it. ValueError for readings it would refuse: better
    said on the kit, where the sensor's configuration can be fixed, than in a dead letter."""
    if not readings or len(readings) > MAX_READINGS_PER_MESSAGE:
        raise ValueError(f"A measurement carries 1 to {MAX_READINGS_PER_MESSAGE} readings, not {len(readings)}.")
    for key in readings:
        if not _SENSOR_KEY.match(key):
            raise ValueError(f"{key!r} is not a sensor key (lower-case letters, digits, underscores; 40 at most).")
    message = {
        "schema_version": SCHEMA_VERSION,
        "kit_id": kit_id,
        "timestamp": timestamp,
        "sequence": sequence,
        "readings": readings,
    }
    if actuators:
        if len(readings) + len(actuators) > MAX_READINGS_PER_MESSAGE:
            raise ValueError(
                f"{len(readings)} readings and {len(actuators)} actuator levels: "
                f"a measurement carries at most {MAX_READINGS_PER_MESSAGE} values in all."
            )
        clash = sorted(set(actuators) & set(readings))
        if clash:
            raise ValueError(f"{', '.join(clash)}: a key is either a sensor's or an actuator's, not both.")
        for key, level in actuators.items():
            if not _SENSOR_KEY.match(key):
                raise ValueError(f"{key!r} is not an actuator key (lower-case letters, digits, underscores).")
            if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 <= level <= 100:
                raise ValueError(f"Actuator {key!r} reports level {level}; levels are 0 to 100.")
        message["actuators"] = actuators
    return _encode(message)


def status_payload(
    *,
    kit_id: str,
    ip: str | None,
    software_version: str,
    uptime_seconds: int,
    timestamp: str,
    config_version: int | None = None,
    config_status: str | None = None,
    reason: str | None = None,
) -> str:
    message = {
        "schema_version": SCHEMA_VERSION,
        "kit_id": kit_id,
        "timestamp": timestamp,
        "ip": ip,
        "software_version": software_version,
        "uptime_seconds": uptime_seconds,
    }
    if config_version is not None:
        if config_status not in CONFIG_STATUSES:
            raise ValueError(f"config_status is one of {CONFIG_STATUSES}, not {config_status!r}.")
        message.update(config_version=config_version, config_status=config_status, reason=_reason(reason))
    return _encode(message)


def config_payload(*, kit_id: str, version: int, desired: dict, time_zone: str, timestamp: str) -> str:
    """The whole desired configuration (device.configuration), as the cloud publishes it."""
    return _encode(
        {
            "schema_version": SCHEMA_VERSION,
            "kit_id": kit_id,
            "version": version,
            "time_zone": time_zone,
            "desired": desired,
            "timestamp": timestamp,
        }
    )


def command_payload(*, kit_id: str, id: str, name: str, arguments: dict, expires_at: str, timestamp: str) -> str:
    return _encode(
        {
            "schema_version": SCHEMA_VERSION,
            "kit_id": kit_id,
            "id": id,
            "name": name,
            "arguments": arguments,
            "expires_at": expires_at,
            "timestamp": timestamp,
        }
    )


def command_result_payload(
    *, kit_id: str, id: str, status: str, result: dict | None, reason: str | None, timestamp: str
) -> str:
    if status not in COMMAND_RESULT_STATUSES:
        raise ValueError(f"A command's status is one of {COMMAND_RESULT_STATUSES}, not {status!r}.")
    return _encode(
        {
            "schema_version": SCHEMA_VERSION,
            "kit_id": kit_id,
            "id": id,
            "status": status,
            "result": result,
            "reason": _reason(reason),
            "timestamp": timestamp,
        }
    )


def _reason(reason: str | None) -> str | None:
    # A reason is for people; a long one is cut rather than refused, so the answer still arrives.
    return None if reason is None else str(reason)[:MAX_REASON_LENGTH]


def _encode(message: dict) -> str:
    text = json.dumps(message, separators=(",", ":"), allow_nan=False)
    if len(text.encode()) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"A message of {len(text)} bytes is over the broker's {MAX_PAYLOAD_BYTES}-byte limit.")
    return text
