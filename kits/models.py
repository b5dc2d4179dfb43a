"""The kit registry: kits, their sensors and actuators, and who may see or manage them."""

import secrets
import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models

from device.configuration import ACTUATOR_KINDS
from device.payloads import KIT_ID_PATTERN, SENSOR_KEY_PATTERN

# Kit ids appear in URLs, AWS IoT thing names (`astroplant-<id>`) and MQTT topics, so they
# are kept to lower-case letters, digits and inner hyphens.
KIT_ID_MAX_LENGTH = 48
kit_id_validator = RegexValidator(
    KIT_ID_PATTERN,
    message=(
        "A kit id is 1 to 48 lower-case letters, digits and hyphens, "
        "starting and ending with a letter or digit (for example k-7f3a-c21e)."
    ),
)

sensor_key_validator = RegexValidator(
    SENSOR_KEY_PATTERN,
    message="A sensor key is 1 to 40 lower-case letters, digits and underscores, starting with a letter.",
)

actuator_key_validator = RegexValidator(
    SENSOR_KEY_PATTERN,
    message="An actuator key is 1 to 40 lower-case letters, digits and underscores, starting with a letter.",
)


def time_zone_validator(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not a time zone name such as Europe/Amsterdam or UTC.")


def kit_id_generate() -> str:
    """A fresh random kit id such as `k-7f3a-c21e`."""
    return f"k-{secrets.token_hex(2)}-{secrets.token_hex(2)}"


class Role(models.TextChoices):
    VIEWER = "viewer", "Viewer"  # sees the kit and its data
    CONFIGURER = "configurer", "Configurer"  # and its configuration
    OWNER = "owner", "Owner"  # and changes it, deletes it and manages its members


class Quantity(models.TextChoices):
    TEMPERATURE = "temperature", "Temperature"
    HUMIDITY = "humidity", "Relative humidity"
    CO2 = "co2", "CO2 concentration"
    LIGHT = "light", "Light intensity"
    PRESSURE = "pressure", "Air pressure"
    SOIL_MOISTURE = "soil_moisture", "Soil moisture"
    WATER_TEMPERATURE = "water_temperature", "Water temperature"
    PH = "ph", "pH"
    EC = "ec", "Electrical conductivity"
    OTHER = "other", "Other"


class ProvisioningStatus(models.TextChoices):
    """Where a kit is on its way to (or from) AWS IoT. See docs/provisioning.md."""

    PENDING = "pending", "Pending"  # queued: provisioning, a rotation or decommissioning waits for a worker
    PROVISIONING = "provisioning", "Provisioning"  # a worker is creating or changing its AWS IoT side
    ACTIVE = "active", "Active"  # a thing with one active certificate: the kit can connect
    FAILED = "failed", "Failed"  # stopped; `provisioning_failure_reason` says why; an admin may retry
    DECOMMISSIONED = "decommissioned", "Decommissioned"  # retired: no thing, no certificate; data kept


class Kit(models.Model):
    id = models.CharField(
        primary_key=True,
        max_length=KIT_ID_MAX_LENGTH,
        blank=True,  # in forms only: kit_register() generates an id when none is given
        validators=[kit_id_validator],
        help_text="URL-safe serial. Leave blank to generate one such as k-7f3a-c21e.",
    )
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True, max_length=2000)
    admin_email = models.EmailField(
        "admin e-mail", blank=True, help_text="Who looks after this kit (the seed's `admin`)."
    )
    ip_address = models.GenericIPAddressField("latest IP address", null=True, blank=True)
    last_seen = models.DateTimeField(null=True, blank=True, db_index=True)
    public = models.BooleanField(default=False, help_text="Anyone, signed in or not, may see a public kit's dashboard.")
    time_zone = models.CharField(
        max_length=64,
        default="UTC",
        validators=[time_zone_validator],
        help_text="Where the kit stands, such as Europe/Amsterdam: its actuator schedules run on this clock.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    # --- Its AWS IoT side, written only by kits.provisioning. -------------------------------
    provisioning_status = models.CharField(
        max_length=16, choices=ProvisioningStatus.choices, default=ProvisioningStatus.PENDING, db_index=True
    )
    provisioning_failure_reason = models.TextField(blank=True, help_text="Why the last attempt failed.")
    provisioning_status_changed_at = models.DateTimeField(null=True, blank=True)
    thing_name = models.CharField("AWS IoT thing name", max_length=128, blank=True)
    thing_arn = models.CharField("AWS IoT thing ARN", max_length=2048, blank=True)
    certificate_id = models.CharField("active certificate id", max_length=64, blank=True)
    certificate_arn = models.CharField("active certificate ARN", max_length=2048, blank=True)
    # Requests an admin made that a worker has not finished yet.
    certificate_rotation_requested_at = models.DateTimeField(null=True, blank=True)
    decommission_requested_at = models.DateTimeField(null=True, blank=True)
    # One worker at a time changes a kit's AWS side: it holds this lease while it works. A worker
    # that dies holding it blocks the kit only until the lease expires.
    provisioning_lease_token = models.CharField(max_length=32, blank=True)
    provisioning_lease_expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.id})"


class Sensor(models.Model):
    kit = models.ForeignKey(Kit, on_delete=models.CASCADE, related_name="sensors")
    key = models.CharField(
        max_length=40,
        validators=[sensor_key_validator],
        help_text="The name the kit reports this sensor under, such as `temperature`.",
    )
    quantity = models.CharField(max_length=32, choices=Quantity.choices)
    unit = models.CharField(max_length=16, help_text="Such as °C, %, ppm or lux.")
    min_value = models.FloatField("plausible minimum", null=True, blank=True, help_text="Readings below are suspect.")
    max_value = models.FloatField("plausible maximum", null=True, blank=True, help_text="Readings above are suspect.")

    class Meta:
        ordering = ["key"]
        constraints = [
            models.UniqueConstraint(fields=["kit", "key"], name="sensor_key_unique_per_kit"),
            models.CheckConstraint(
                condition=models.Q(min_value__isnull=True)
                | models.Q(max_value__isnull=True)
                | models.Q(min_value__lt=models.F("max_value")),
                name="sensor_min_below_max",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kit_id}/{self.key}"


# The kinds are the MQTT contract's (device/configuration.py): light, fan, heater, cooler, pump, other.
ActuatorKind = models.TextChoices("ActuatorKind", [(kind.upper(), kind) for kind in ACTUATOR_KINDS])


class Actuator(models.Model):
    """Something the kit switches or dims: a LED panel, a fan, a heater... Its level (0-100; an
    on/off actuator is 0 or 100) is reported with every measurement and stored under its key."""

    kit = models.ForeignKey(Kit, on_delete=models.CASCADE, related_name="actuators")
    key = models.CharField(
        max_length=40,
        validators=[actuator_key_validator],
        help_text="The name the kit reports this actuator under, such as `led`; not one of the kit's sensor keys.",
    )
    kind = models.CharField(max_length=16, choices=ActuatorKind.choices)
    dimmable = models.BooleanField(default=False, help_text="Levels 0 to 100; otherwise on (100) or off (0).")
    # Not a column: every actuator's level is a percentage of full power, charted and exported as such.
    unit = "%"

    class Meta:
        ordering = ["key"]
        constraints = [models.UniqueConstraint(fields=["kit", "key"], name="actuator_key_unique_per_kit")]

    def __str__(self) -> str:
        return f"{self.kit_id}/{self.key}"


class Membership(models.Model):
    kit = models.ForeignKey(Kit, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="kit_memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["kit_id", "user__username"]
        constraints = [
            models.UniqueConstraint(fields=["kit", "user"], name="one_membership_per_user_and_kit"),
        ]

    def __str__(self) -> str:
        return f"{self.user} is {self.role} of {self.kit_id}"


class KitCertificate(models.Model):
    """One X.509 certificate issued to a kit, and how far it got on AWS IoT. A kit has at most one
    certificate being set up at a time; rotating adds a new one and retires the old.

    The private key is not here: it lives only inside the bundle file in private storage."""

    kit = models.ForeignKey(Kit, on_delete=models.CASCADE, related_name="certificates")
    fingerprint = models.CharField(
        "SHA-256 fingerprint", max_length=64, unique=True, help_text="Of the certificate's DER bytes."
    )
    certificate_pem = models.TextField("certificate (PEM, public)")
    not_after = models.DateTimeField("valid until")
    bundle_path = models.CharField(
        max_length=512, blank=True, help_text="The zip in private storage; emptied when the certificate is retired."
    )
    aws_certificate_id = models.CharField("AWS certificate id", max_length=64, blank=True)
    aws_certificate_arn = models.CharField("AWS certificate ARN", max_length=2048, blank=True)
    # Each step of setting it up, recorded as it completes, so a retry resumes after the last one.
    created_at = models.DateTimeField(auto_now_add=True)
    registered_at = models.DateTimeField(null=True, blank=True)
    policy_attached_at = models.DateTimeField(null=True, blank=True)
    thing_attached_at = models.DateTimeField(null=True, blank=True)
    activated_at = models.DateTimeField(null=True, blank=True)
    # ...and of retiring it.
    deactivated_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField("deleted from AWS at", null=True, blank=True)

    class Meta:
        ordering = ["kit_id", "-created_at"]
        constraints = [
            # Two workers racing can never both start a certificate for one kit.
            models.UniqueConstraint(
                fields=["kit"],
                condition=models.Q(activated_at__isnull=True, deactivated_at__isnull=True),
                name="one_certificate_in_setup_per_kit",
            ),
        ]
        permissions = [("download_bundle", "Can download a kit's certificate bundle (its private key)")]

    def __str__(self) -> str:
        return f"{self.kit_id}: certificate {self.fingerprint[:12]}"

    @property
    def state(self) -> str:
        if self.deleted_at:
            return "deleted"
        if self.deactivated_at:
            return "inactive"
        if self.activated_at:
            return "active"
        return "being set up"


class BundleDownload(models.Model):
    """Who downloaded a kit's certificate bundle, and when: the bundle holds its private key."""

    certificate = models.ForeignKey(KitCertificate, on_delete=models.CASCADE, related_name="downloads")
    # The username is copied so the record survives the user's deletion.
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    username = models.CharField(max_length=150)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    downloaded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-downloaded_at"]

    def __str__(self) -> str:
        return f"{self.username} downloaded {self.certificate} at {self.downloaded_at:%Y-%m-%d %H:%M}Z"
