"""The JSON shapes of the kit API: what the mobile app sends and gets back."""

from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from astroplant_site.api import JsonBodySerializer

from .models import (
    KIT_ID_MAX_LENGTH,
    ActuatorKind,
    Kit,
    Membership,
    ProvisioningStatus,
    Quantity,
    Role,
    kit_id_validator,
    time_zone_validator,
)
from .registry import ActuatorSpec, SensorSpec
from .selectors import ACTUATOR_LISTING_FIELDS, SENSOR_LISTING_FIELDS, kit_can_manage, kit_can_see_private_details

MAX_SENSORS_PER_KIT = 32
# With the sensors, at most 64 values a message: what the ingest bridge stores of one.
MAX_ACTUATORS_PER_KIT = 32
KEY_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"
KEY_RULE = "Use 1 to 40 lower-case letters, digits and underscores, starting with a letter."


class SensorSerializer(JsonBodySerializer):
    # Identifiers and addresses are checked as sent (DRF would trim " co2" into a valid key first).
    key = serializers.RegexField(
        KEY_PATTERN, max_length=40, trim_whitespace=False, error_messages={"invalid": KEY_RULE}
    )
    quantity = serializers.ChoiceField(choices=Quantity.choices)
    unit = serializers.CharField(max_length=16)
    min_value = serializers.FloatField(required=False, allow_null=True, default=None)
    max_value = serializers.FloatField(required=False, allow_null=True, default=None)

    def validate(self, attrs):
        low, high = attrs.get("min_value"), attrs.get("max_value")
        if low is not None and high is not None and low >= high:
            raise serializers.ValidationError({"max_value": ["Must be greater than min_value."]})
        return attrs


class SensorListField(serializers.ListField):
    child = SensorSerializer()

    def __init__(self, **kwargs):
        super().__init__(max_length=MAX_SENSORS_PER_KIT, **kwargs)

    def to_internal_value(self, data):
        return [SensorSpec(**sensor) for sensor in super().to_internal_value(data)]


class ActuatorSerializer(JsonBodySerializer):
    key = serializers.RegexField(
        KEY_PATTERN,
        max_length=40,
        trim_whitespace=False,
        error_messages={"invalid": KEY_RULE},
        help_text="The name the kit reports its level under, such as `led`; not one of the kit's sensor keys.",
    )
    kind = serializers.ChoiceField(choices=ActuatorKind.choices)
    dimmable = serializers.BooleanField(
        required=False, default=False, help_text="Levels 0 to 100; otherwise on (100) or off (0)."
    )


class ActuatorListField(serializers.ListField):
    child = ActuatorSerializer()

    def __init__(self, **kwargs):
        super().__init__(max_length=MAX_ACTUATORS_PER_KIT, **kwargs)

    def to_internal_value(self, data):
        return [ActuatorSpec(**actuator) for actuator in super().to_internal_value(data)]


def _time_zone_field(**kwargs):
    return serializers.CharField(
        max_length=64,
        trim_whitespace=False,
        validators=[time_zone_validator],
        help_text="An IANA time zone such as Europe/Amsterdam (default UTC): the kit's schedules run on its clock.",
        **kwargs,
    )


class KitCreateInputSerializer(JsonBodySerializer):
    id = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=KIT_ID_MAX_LENGTH,
        trim_whitespace=False,
        validators=[kit_id_validator],
        help_text="URL-safe serial; leave out to have one generated such as k-7f3a-c21e.",
    )
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")
    admin = serializers.EmailField(
        required=False, allow_blank=True, trim_whitespace=False, help_text="The kit's admin e-mail."
    )
    public = serializers.BooleanField(required=False, default=False)
    time_zone = _time_zone_field(required=False, default="UTC")
    sensors = SensorListField(required=False, default=list)
    actuators = ActuatorListField(required=False, default=list)


class KitUpdateInputSerializer(JsonBodySerializer):
    name = serializers.CharField(max_length=100, required=False)
    description = serializers.CharField(max_length=2000, required=False, allow_blank=True)
    admin = serializers.EmailField(required=False, allow_blank=True, trim_whitespace=False)
    public = serializers.BooleanField(required=False)
    time_zone = _time_zone_field(required=False)
    sensors = SensorListField(required=False, help_text="Replaces all of the kit's sensors.")
    actuators = ActuatorListField(required=False, help_text="Replaces all of the kit's actuators.")


class SensorOutputSerializer(serializers.Serializer):
    key = serializers.CharField()
    quantity = serializers.ChoiceField(choices=Quantity.choices)
    unit = serializers.CharField()
    min_value = serializers.FloatField(allow_null=True)
    max_value = serializers.FloatField(allow_null=True)


class ActuatorOutputSerializer(serializers.Serializer):
    key = serializers.CharField()
    kind = serializers.ChoiceField(choices=ActuatorKind.choices)
    dimmable = serializers.BooleanField()


class KitDetailsSerializer(serializers.Serializer):
    """The seed's `details` object. `ip` and `admin` are shown to members and staff only."""

    id = serializers.CharField()
    ip = serializers.IPAddressField(allow_null=True, help_text="Null unless you are a member or staff.")
    # Not allow_blank: an empty e-mail is sent as null, and a blank choice would make the schema a
    # oneOf under which OpenAPI 3.0 validators refuse null.
    admin = serializers.EmailField(allow_null=True, help_text="Null unless you are a member or staff.")
    description = serializers.CharField(allow_blank=True)


class KitOutputSerializer(serializers.Serializer):
    """A kit as the API shows it: the seed's shape (`id`, `details`) and what the app needs beyond."""

    id = serializers.CharField()
    details = serializers.SerializerMethodField()
    name = serializers.CharField()
    public = serializers.BooleanField()
    sensors = SensorOutputSerializer(many=True)
    actuators = ActuatorOutputSerializer(
        many=True, help_text="Their levels (0-100) are served by GET /kits/{id}/data under their keys, as sensors are."
    )
    time_zone = serializers.CharField()
    last_seen = serializers.DateTimeField(allow_null=True)
    provisioning_status = serializers.SerializerMethodField()

    # A nullable string held to the statuses by a pattern: as an enum, drf-spectacular would
    # write oneOf [enum, NullEnum], for which OpenAPI 3.0 validators refuse null.
    @extend_schema_field(
        {
            "type": "string",
            "pattern": f"^({'|'.join(ProvisioningStatus.values)})$",
            "nullable": True,
            "readOnly": True,
            "description": (
                "Where the kit is on AWS IoT: pending, provisioning, active, failed or decommissioned. "
                "Null unless you are one of the kit's owners or staff."
            ),
        }
    )
    def get_provisioning_status(self, kit: Kit) -> str | None:
        if not kit_can_manage(user=self.context["request"].user, kit=kit):
            return None
        return kit.provisioning_status

    @extend_schema_field(KitDetailsSerializer)
    def get_details(self, kit: Kit) -> dict:
        user = self.context["request"].user
        private = kit_can_see_private_details(user=user, kit=kit)
        return {
            "id": kit.id,
            "ip": kit.ip_address if private else None,
            "admin": (kit.admin_email or None) if private else None,
            "description": kit.description,
        }


def kit_output_data(kit, *, user, sensors: list[dict] | None = None, actuators: list[dict] | None = None) -> dict:
    """What KitOutputSerializer makes of `kit` for `user`, built directly. DRF's field-by-field
    serialisation of a page of 50 kits and their sensors was most of GET /kits; the serializer
    stays the schema's source, and a test holds the two equal for every kind of caller.

    `kit` is a Kit, or a row of selectors.kits_listed_for with attribute access; `sensors` and
    `actuators` its sensors and actuators as rows of selectors.sensors_of_kits and
    selectors.actuators_of_kits (default: the Kit's own)."""
    if sensors is None:
        sensors = [{name: getattr(sensor, name) for name in SENSOR_LISTING_FIELDS} for sensor in kit.sensors.all()]
    if actuators is None:
        actuators = [{name: getattr(row, name) for name in ACTUATOR_LISTING_FIELDS} for row in kit.actuators.all()]
    private = kit_can_see_private_details(user=user, kit=kit)
    return {
        "id": kit.id,
        "details": {
            "id": kit.id,
            "ip": kit.ip_address if private else None,
            "admin": (kit.admin_email or None) if private else None,
            "description": kit.description,
        },
        "name": kit.name,
        "public": kit.public,
        "sensors": [
            {
                "key": sensor["key"],
                "quantity": sensor["quantity"],
                "unit": sensor["unit"],
                "min_value": None if sensor["min_value"] is None else float(sensor["min_value"]),
                "max_value": None if sensor["max_value"] is None else float(sensor["max_value"]),
            }
            for sensor in sensors
        ],
        "actuators": [
            {"key": actuator["key"], "kind": actuator["kind"], "dimmable": actuator["dimmable"]}
            for actuator in actuators
        ],
        "time_zone": kit.time_zone,
        "last_seen": _datetime_text(kit.last_seen),
        "provisioning_status": kit.provisioning_status if kit_can_manage(user=user, kit=kit) else None,
    }


def _datetime_text(moment) -> str | None:
    # As DRF's DateTimeField writes it (TIME_ZONE is UTC): ISO 8601 with Z for +00:00.
    if moment is None:
        return None
    text = timezone.localtime(moment).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


class MemberInputSerializer(JsonBodySerializer):
    username = serializers.CharField(max_length=150)
    role = serializers.ChoiceField(choices=Role.choices)


class MemberRoleInputSerializer(JsonBodySerializer):
    role = serializers.ChoiceField(choices=Role.choices)


class MemberOutputSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username")
    since = serializers.DateTimeField(source="created_at")

    class Meta:
        model = Membership
        fields = ["username", "role", "since"]
