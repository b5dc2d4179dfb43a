"""Every read of a kit's configuration and commands. The caller has already been given the kit by
kits.selectors (kit_get_visible), which scopes it to what they may see."""

import uuid
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db.models import QuerySet

from device.configuration import desired_default
from kits.models import Kit

from .exceptions import CommandNotFound
from .models import Command, ConfigurationVersion, KitConfiguration

PENDING = "pending"


@dataclass(frozen=True)
class ConfigurationState:
    """A kit's configuration as GET /kits/{id}/configuration answers it."""

    version: int
    desired: dict
    reported: dict | None  # what the kit last said it runs (the newest version it applied)
    status: str  # pending until the kit reports on `version`; then applied or rejected
    reason: str | None  # the kit's reason, when it reported on `version` with one
    changed_by: str | None
    changed_at: datetime | None
    applied_at: datetime | None  # when the kit applied what `reported` is


def kit_sensor_keys(kit: Kit) -> list[str]:
    return [sensor.key for sensor in kit.sensors.all()]


def kit_actuator_specs(kit: Kit) -> dict[str, dict]:
    """The kit's actuators as device.configuration takes them: key -> {"kind", "dimmable"}."""
    return {a.key: {"kind": a.kind, "dimmable": a.dimmable} for a in kit.actuators.all()}


def kit_desired_default(kit: Kit) -> dict:
    """What a kit never configured runs: the agent's default interval, every sensor on, every
    actuator off."""
    return desired_default(
        interval_seconds=settings.KIT_DEFAULT_INTERVAL_SECONDS,
        sensor_keys=kit_sensor_keys(kit),
        actuator_keys=[a.key for a in kit.actuators.all()],
    )


def configuration_current(*, kit: Kit) -> ConfigurationVersion | None:
    """The kit's newest desired configuration, or None if it was never configured."""
    return ConfigurationVersion.objects.filter(kit=kit).order_by("-version").first()


def configuration_of_kit(*, kit: Kit) -> ConfigurationState:
    state = KitConfiguration.objects.filter(kit=kit).first()
    current = configuration_current(kit=kit)
    reported_on_current = state is not None and state.report_version == (current.version if current else 0)
    return ConfigurationState(
        version=current.version if current else 0,
        desired=current.desired if current else kit_desired_default(kit),
        reported=state.applied_desired if state else None,
        status=state.report_status if reported_on_current else PENDING,
        reason=(state.report_reason or None) if reported_on_current else None,
        changed_by=(current.changed_by_username or None) if current else None,
        changed_at=current.changed_at if current else None,
        applied_at=state.applied_at if state else None,
    )


def configuration_history(*, kit: Kit) -> QuerySet[ConfigurationVersion]:
    """Every version of the kit's desired configuration, newest first."""
    return ConfigurationVersion.objects.filter(kit=kit).order_by("-version")


def commands_of_kit(*, kit: Kit) -> QuerySet[Command]:
    """The kit's commands, newest first."""
    return Command.objects.filter(kit=kit).order_by("-created_at", "-id")


def command_of_kit(*, kit: Kit, command_id: str) -> Command:
    """The kit's command `command_id`; CommandNotFound if it has none such (or the id is no UUID)."""
    try:
        return Command.objects.get(kit=kit, pk=uuid.UUID(command_id))
    except (ValueError, Command.DoesNotExist):
        raise CommandNotFound(kit.id, command_id[:64]) from None
