"""The shapes of `GET /kits/{id}/data`: its query parameters and its points."""

import base64
import binascii
from datetime import datetime
from typing import NotRequired, TypedDict

from rest_framework import serializers

from astroplant_site.api import StrictInputSerializer

from .selectors import LAST_MAX, RAW_PAGE_SIZE_MAX
from .timebuckets import Resolution

RESOLUTIONS = [*Resolution, "auto"]
DATE_TIME_FORMATS = ["iso-8601", "%Y-%m-%d"]


def cursor_encode(after_ms: int) -> str:
    return base64.urlsafe_b64encode(f"after:{after_ms}".encode()).decode().rstrip("=")


def cursor_decode(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, after = text.partition(":")
        if kind != "after" or not after.isdigit():
            raise ValueError(text)
        return int(after)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise serializers.ValidationError("Not a cursor from this API: follow the Link header's URL.") from None


class DataQuerySerializer(StrictInputSerializer):
    """Latest mode: no `from`; `last` says how many points per sensor. Range mode: `from`
    (and `to`, default now), `resolution`, and for raw pages `page_size` and `cursor`."""

    last = serializers.IntegerField(min_value=1, max_value=LAST_MAX, required=False)
    from_ = serializers.DateTimeField(input_formats=DATE_TIME_FORMATS, required=False)
    to = serializers.DateTimeField(input_formats=DATE_TIME_FORMATS, required=False)
    sensor = serializers.CharField(
        max_length=2000, required=False, help_text="Comma-separated sensor or actuator keys."
    )
    resolution = serializers.ChoiceField(choices=RESOLUTIONS, required=False)
    page_size = serializers.IntegerField(min_value=1, max_value=RAW_PAGE_SIZE_MAX, required=False)
    cursor = serializers.CharField(max_length=100, required=False)
    format = serializers.ChoiceField(choices=["json", "csv"], required=False)

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")  # `from` is a Python keyword
        return fields

    def validate_sensor(self, text: str) -> list[str]:
        keys = [key.strip() for key in text.split(",") if key.strip()]
        if not keys:
            raise serializers.ValidationError("Name at least one sensor.")
        return sorted(set(keys))

    def validate_cursor(self, cursor: str) -> int:
        return cursor_decode(cursor)

    def validate(self, attrs):
        errors: dict[str, list[str]] = {}
        ranged = "from" in attrs
        if "last" in attrs and (ranged or "to" in attrs):
            errors["last"] = ["Use last for the latest points, or from and to for a range, not both."]
        for name in ("to", "resolution", "page_size", "cursor"):
            if name in attrs and not ranged:
                errors[name] = ["Needs from: it applies to a range."]
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class DataPoint(TypedDict):
    """One point: a reading (timestamp, value), or a rollup bucket (its start, its mean as value,
    and min, max, mean and count)."""

    timestamp: datetime
    value: float
    min: NotRequired[float]
    max: NotRequired[float]
    mean: NotRequired[float]
    count: NotRequired[int]


# Sensor (or actuator) key -> its points, oldest first: the seed's `data` shape.
KitData = dict[str, list[DataPoint]]
