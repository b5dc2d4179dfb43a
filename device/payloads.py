"""The MQTT contract (DESIGN.md, "MQTT contract"): one module for both sides. The kit writes its
messages with it; the server imports its names and limits (kits/iot_policy.py for topics and
rights, telemetry/messages.py to check what arrives), so the two cannot drift apart. It imports
nothing from the server: it runs on the Pi.

measurements (kit -> cloud), topic astroplant/kits/<thing name>/measurements:
    {"schema_version": 1, "kit_id": "k-7f3a-c21e", "timestamp": "2026-11-28T10:00:00Z",
     "sequence": 42, "readings": {"temperature": 21.5, "humidity": 55.0}}
status (kit -> cloud), topic astroplant/kits/<thing name>/status:
    {"schema_version": 1, "kit_id": "...", "timestamp": "...Z", "ip": "192.0.2.7",
     "software_version": "1.0.0", "uptime_seconds": 3600}
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
KIT_PUBLISHES = ("measurements", "status")
# ...and subscribes to (and receives on) these.
KIT_SUBSCRIBES = ("config",)

_SENSOR_KEY = re.compile(SENSOR_KEY_PATTERN)


def utc_timestamp(moment: datetime | None = None) -> str:
    """ISO 8601 in UTC with a `Z`, to the millisecond."""
    moment = (moment or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def measurement_payload(*, kit_id: str, sequence: int, readings: dict[str, float], timestamp: str) -> str:
    """A measurement as the server takes it. ValueError for readings it would refuse: better
    said on the kit, where the sensor's configuration can be fixed, than in a dead letter."""
    if not readings or len(readings) > MAX_READINGS_PER_MESSAGE:
        raise ValueError(f"A measurement carries 1 to {MAX_READINGS_PER_MESSAGE} readings, not {len(readings)}.")
    for key in readings:
        if not _SENSOR_KEY.match(key):
            raise ValueError(f"{key!r} is not a sensor key (lower-case letters, digits, underscores; 40 at most).")
    return _encode(
        {
            "schema_version": SCHEMA_VERSION,
            "kit_id": kit_id,
            "timestamp": timestamp,
            "sequence": sequence,
            "readings": readings,
        }
    )


def status_payload(*, kit_id: str, ip: str | None, software_version: str, uptime_seconds: int, timestamp: str) -> str:
    return _encode(
        {
            "schema_version": SCHEMA_VERSION,
            "kit_id": kit_id,
            "timestamp": timestamp,
            "ip": ip,
            "software_version": software_version,
            "uptime_seconds": uptime_seconds,
        }
    )


def _encode(message: dict) -> str:
    text = json.dumps(message, separators=(",", ":"), allow_nan=False)
    if len(text.encode()) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"A message of {len(text)} bytes is over the broker's {MAX_PAYLOAD_BYTES}-byte limit.")
    return text
