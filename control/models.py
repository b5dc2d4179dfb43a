"""What the cloud asks of a kit and what the kit answers: its configuration, versioned (AWS IoT's
device-shadow idea: desired, reported, version), and the commands sent to it (DESIGN.md, "Two-way").

The desired configuration's schema is the MQTT contract's (device/configuration.py); these rows
keep it as JSON, exactly as checked and as published."""

import uuid

from django.conf import settings
from django.db import models

from device.payloads import COMMAND_NAMES, CONFIG_STATUSES
from kits.models import Kit

ConfigStatus = models.TextChoices("ConfigStatus", [(status.upper(), status) for status in CONFIG_STATUSES])


class ConfigurationVersion(models.Model):
    """One version of a kit's desired configuration: the newest is what the kit should run, the
    others are its history. Never changed once written."""

    kit = models.ForeignKey(Kit, on_delete=models.CASCADE, related_name="configuration_versions")
    version = models.PositiveIntegerField()
    desired = models.JSONField(help_text="As device.configuration.desired_checked completed it.")
    changed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    # Copied, so the history still says who after the user is deleted.
    changed_by_username = models.CharField(max_length=150, blank=True)
    changed_at = models.DateTimeField()

    class Meta:
        ordering = ["kit_id", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["kit", "version"], name="one_configuration_per_kit_and_version"),
            models.CheckConstraint(condition=models.Q(version__gte=1), name="configuration_version_from_1"),
        ]

    def __str__(self) -> str:
        return f"{self.kit_id} configuration v{self.version}"


class KitConfiguration(models.Model):
    """A kit's configuration state: the current desired version (raised atomically by each change,
    so two changes never get one number), what the kit last reported, and what was published."""

    kit = models.OneToOneField(Kit, on_delete=models.CASCADE, primary_key=True, related_name="configuration")
    version = models.PositiveIntegerField(default=0, help_text="The current desired version (0: never configured).")
    # The kit's last report, on whichever version it was.
    report_version = models.PositiveIntegerField(null=True, blank=True)
    report_status = models.CharField(max_length=16, choices=ConfigStatus.choices, blank=True)
    report_reason = models.TextField(blank=True)
    reported_at = models.DateTimeField(null=True, blank=True, help_text="The kit's time of its last report.")
    # What the kit last said it runs: the newest version it reported applied.
    applied_version = models.PositiveIntegerField(null=True, blank=True)
    applied_desired = models.JSONField(null=True, blank=True)
    applied_at = models.DateTimeField(null=True, blank=True)
    # The newest version the broker has confirmed (PUBACK) as the kit's retained configuration.
    published_version = models.PositiveIntegerField(null=True, blank=True)
    published_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["kit_id"]

    def __str__(self) -> str:
        return f"{self.kit_id} configuration state (v{self.version})"


class CommandStatus(models.TextChoices):
    QUEUED = "queued", "Queued"  # accepted; a worker will publish it
    SENT = "sent", "Sent"  # the broker has it (PUBACK); the kit has not answered yet
    SUCCEEDED = "succeeded", "Succeeded"  # the kit answered it did it
    FAILED = "failed", "Failed"  # the kit answered it could not (`reason`)
    EXPIRED = "expired", "Expired"  # no answer before expires_at: the kit never acts on it later


COMMAND_OPEN_STATUSES = (CommandStatus.QUEUED, CommandStatus.SENT)

CommandName = models.TextChoices("CommandName", [(name.upper(), name) for name in COMMAND_NAMES])


class Command(models.Model):
    """One command to one kit, from its creation to the kit's answer or its expiry."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kit = models.ForeignKey(Kit, on_delete=models.CASCADE, related_name="commands")
    name = models.CharField(max_length=32, choices=CommandName.choices)
    arguments = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=CommandStatus.choices, default=CommandStatus.QUEUED)
    result = models.JSONField(null=True, blank=True)
    reason = models.TextField(blank=True, help_text="Why it failed, as the kit said.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    answered_at = models.DateTimeField(null=True, blank=True, help_text="The kit's time of its answer.")

    class Meta:
        ordering = ["kit_id", "-created_at"]
        indexes = [models.Index(fields=["kit", "-created_at"], name="command_kit_newest_first")]

    def __str__(self) -> str:
        return f"{self.name} to {self.kit_id} ({self.status})"
