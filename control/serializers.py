"""The JSON shapes of the control API. A configuration's `desired` is checked by the MQTT contract's
own schema (device/configuration.py, in services.configuration_change), not here: these fields
only describe it to the OpenAPI schema."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from astroplant_site.api import JsonBodySerializer
from device.configuration import (
    ACTUATOR_MODES,
    INTERVAL_SECONDS_MAX,
    INTERVAL_SECONDS_MIN,
    LEVEL_MAX,
    LEVEL_MIN,
    MAX_PERIODS,
)

from .models import CommandName, CommandStatus
from .selectors import PENDING

LEVEL = {"type": "number", "minimum": LEVEL_MIN, "maximum": LEVEL_MAX}
TIME_OF_DAY = {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$", "example": "06:00"}
# The objects inside are closed here (additionalProperties: false), as desired_checked refuses
# unknown keys at every level; the schema hook closes only objects reached through `properties`.
DESIRED_SCHEMA = {
    "type": "object",
    "description": (
        "A kit's configuration (device/configuration.py). `interval_seconds`: seconds between measurements. "
        "`sensors`: per sensor key, calibration applied on the kit (defaults: enabled, offset 0, scale 1). "
        "`actuators`: per actuator key, one rule: off; on at a level; a schedule of periods in the kit's "
        "local time (off outside them); or a thermostat on one sensor, cooling (on_above, off_below) or "
        "heating (on_below, off_above). Sensors and actuators left out get the defaults."
    ),
    "properties": {
        "interval_seconds": {"type": "integer", "minimum": INTERVAL_SECONDS_MIN, "maximum": INTERVAL_SECONDS_MAX},
        "sensors": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "enabled": {"type": "boolean"},
                    "offset": {"type": "number"},
                    "scale": {"type": "number"},
                },
            },
        },
        "actuators": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "required": ["mode"],
                "properties": {
                    "mode": {"type": "string", "enum": list(ACTUATOR_MODES)},
                    "level": LEVEL,
                    "periods": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": MAX_PERIODS,
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["from", "to"],
                            "properties": {"from": TIME_OF_DAY, "to": TIME_OF_DAY, "level": LEVEL},
                        },
                    },
                    "sensor": {"type": "string"},
                    "on_above": {"type": "number"},
                    "off_below": {"type": "number"},
                    "on_below": {"type": "number"},
                    "off_above": {"type": "number"},
                },
            },
        },
    },
    "required": ["interval_seconds"],
    "example": {
        "interval_seconds": 60,
        "sensors": {"temperature": {"enabled": True, "offset": 0.0, "scale": 1.0}},
        "actuators": {
            "led": {"mode": "schedule", "periods": [{"from": "06:00", "to": "22:00", "level": 80}]},
            "fan": {"mode": "thermostat", "sensor": "temperature", "on_above": 26.0, "off_below": 25.0},
        },
    },
}


@extend_schema_field(DESIRED_SCHEMA)
class DesiredField(serializers.JSONField):
    """A configuration's `desired`, passed on as sent: services.configuration_change checks it."""


@extend_schema_field({**DESIRED_SCHEMA, "nullable": True, "description": "What the kit last said it runs, or null."})
class ReportedField(serializers.JSONField):
    pass


@extend_schema_field({"type": "object", "additionalProperties": True})
class ObjectField(serializers.JSONField):
    pass


class ConfigurationInputSerializer(JsonBodySerializer):
    desired = DesiredField()


class ConfigurationOutputSerializer(serializers.Serializer):
    version = serializers.IntegerField(help_text="Raised by one at every change; 0: never configured (the defaults).")
    desired = DesiredField()
    reported = ReportedField(allow_null=True)
    status = serializers.ChoiceField(
        choices=[PENDING, "applied", "rejected"],
        help_text="pending until the kit reports on this version; then applied, or rejected (see reason).",
    )
    reason = serializers.CharField(allow_null=True, help_text="Why the kit rejected this version.")
    changed_by = serializers.CharField(allow_null=True, help_text="Who made this version (null: the defaults).")
    changed_at = serializers.DateTimeField(allow_null=True)
    applied_at = serializers.DateTimeField(allow_null=True, help_text="When the kit applied what `reported` is.")


class ConfigurationVersionOutputSerializer(serializers.Serializer):
    version = serializers.IntegerField()
    desired = DesiredField()
    changed_by = serializers.CharField(source="changed_by_username", allow_null=True)
    changed_at = serializers.DateTimeField()

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["changed_by"] = data["changed_by"] or None  # the user was deleted, or it was never a person
        return data


class CommandInputSerializer(JsonBodySerializer):
    name = serializers.ChoiceField(choices=CommandName.choices)
    arguments = ObjectField(
        required=False,
        default=dict,
        help_text=(
            "ping, measure_now, capture_photo: none ({}). set_actuator: {actuator (one of the kit's actuator "
            "keys), level (0-100; 0 or 100 if not dimmable), minutes (optional, > 0: how long the level "
            "overrides the rule; without it, until the next configuration)}."
        ),
    )


class CommandOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.ChoiceField(choices=CommandName.choices)
    arguments = ObjectField()
    status = serializers.ChoiceField(choices=CommandStatus.choices)
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(help_text="The kit never acts on it after this.")
    result = ObjectField(allow_null=True, help_text="What the kit answered (ping: uptime_seconds, software_version).")
    reason = serializers.CharField(
        allow_null=True, help_text="Why it failed (the kit's words) or expired; null otherwise."
    )

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["reason"] = data["reason"] or None
        return data
