"""The MQTT contract, kit side (DESIGN.md, "MQTT contract"). The ingest bridge validates the same
shapes on the server side; this module is the kit's half of that agreement.

measurements (kit -> cloud), topic astroplant/kits/<thing name>/measurements:
    {"schema_version": 1, "kit_id": "k-7f3a-c21e", "timestamp": "2026-11-28T10:00:00Z",
     "sequence": 42, "readings": {"temperature": 21.5, "humidity": 55.0}}
status (kit -> cloud), topic astroplant/kits/<thing name>/status:
    {"schema_version": 1, "kit_id": "...", "timestamp": "...Z", "ip": "192.0.2.7",
     "software_version": "1.0.0", "uptime_seconds": 3600}
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

SCHEMA_VERSION = 1
MAX_PAYLOAD_BYTES = 128 * 1024  # AWS IoT's limit


def utc_timestamp(moment: datetime | None = None) -> str:
    """ISO 8601 in UTC with a `Z`, to the millisecond."""
    moment = (moment or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def measurement_payload(*, kit_id: str, sequence: int, readings: dict[str, float], timestamp: str) -> str:
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
