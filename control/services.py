"""Every write of the control app: changing a kit's configuration, sending commands, publishing
them over MQTT, and recording what the kit reports back. Views, tasks, the admin and the ingest
bridge call these, never the ORM.

What people ask for is stored first and published after the change commits, by a Celery task
(control/tasks.py), so a web request never waits on the broker and a broker that is away delays a
change but never loses it. The server never assumes a change took effect: only the kit's report
(configuration_reported, command_result_record) says so.
"""

import logging
import math
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from device.configuration import LEVEL_MAX, LEVEL_MIN, ConfigurationInvalid, desired_checked
from device.payloads import command_payload, config_payload, utc_timestamp
from kits.iot_policy import kit_topic, thing_name_for
from kits.models import Kit

from . import mqtt_publisher, selectors, tasks
from .exceptions import ControlInvalid, ReportRefused
from .models import COMMAND_OPEN_STATUSES, Command, CommandStatus, ConfigStatus, ConfigurationVersion, KitConfiguration

log = logging.getLogger(__name__)

PUBLISH_ROUNDS = 5  # a kit changed faster than this is published again by the next change's task
EXPIRED_REASON = "The kit did not answer before the command expired."
MAX_OVERRIDE_MINUTES = 7 * 24 * 60  # a week: longer is a rule, and belongs in the configuration


# --- Configuration ------------------------------------------------------------------------------


def configuration_change(*, kit: Kit, desired: Any, user) -> ConfigurationVersion:
    """Make `desired` the kit's configuration, as the next version, if the kit can run it
    (device.configuration.desired_checked against its sensors and actuators); ControlInvalid
    naming every problem (fields as `desired.<path>`) otherwise. Two changes at once never get one
    version number. Publishing it to the kit is queued for when the change commits."""
    try:
        checked = desired_checked(
            desired, sensor_keys=selectors.kit_sensor_keys(kit), actuators=selectors.kit_actuator_specs(kit)
        )
    except ConfigurationInvalid as error:
        raise ControlInvalid(
            {field if field == "desired" else f"desired.{field}": msgs for field, msgs in error.problems.items()}
        ) from None
    with transaction.atomic():
        # One UPDATE, first in the transaction, raises the number and holds the row (on SQLite,
        # the database) until commit: a concurrent change waits here, then counts on from this one.
        if not _version_raise(kit):
            try:
                with transaction.atomic():  # a savepoint
                    KitConfiguration.objects.create(kit=kit, version=1)
            except IntegrityError:  # the kit's first change, made at the same moment by another
                _version_raise(kit)
        version = KitConfiguration.objects.values_list("version", flat=True).get(kit=kit)
        change = ConfigurationVersion.objects.create(
            kit=kit,
            version=version,
            desired=checked,
            changed_by=user if user and user.is_authenticated else None,
            changed_by_username=user.get_username() if user and user.is_authenticated else "",
            changed_at=timezone.now(),
        )
        tasks.configuration_publish_task.delay_on_commit(kit.id)
    return change


def configuration_reissue_for_time_zone(*, kit: Kit, **_signal) -> None:
    """The kit's time zone changed (kits.signals): its schedules run on that clock, so it gets its
    current configuration again as a new version (a kit applies only a newer one), carrying the
    new zone. A kit never configured runs kit.toml's zone until it is; a configuration that no
    longer fits the kit's sensors and actuators waits for a configurer's next change."""
    current = ConfigurationVersion.objects.filter(kit=kit).order_by("-version").first()
    if current is None:
        return
    try:
        configuration_change(kit=kit, desired=current.desired, user=None)
    except ControlInvalid as error:
        log.warning("Kit %s's time zone changed, but its configuration no longer fits it: %s", kit.id, error)


def _version_raise(kit: Kit) -> bool:
    return bool(KitConfiguration.objects.filter(kit=kit).update(version=F("version") + 1))


def _kit_configuration_ensure(kit: Kit) -> None:
    try:
        with transaction.atomic():  # a savepoint: a row made meanwhile by another change is fine
            KitConfiguration.objects.get_or_create(kit=kit)
    except IntegrityError:
        pass


def configuration_publish(*, kit_id: str) -> int | None:
    """Publish the kit's CURRENT desired configuration as the retained message on its `config`
    topic (whichever change queued this), and record it as published. Returns the version
    published, or None if there is nothing to publish (the kit is gone, or never configured).
    BrokerUnavailable / PublishRefused from the broker.

    No lock is held while the broker answers (a change must never wait on the broker). Two
    workers may publish one kit at once, the older version last; so each looks again after
    publishing, and publishes anew if the configuration moved on meanwhile: the last retained
    message is always the newest."""
    published = None
    for _ in range(PUBLISH_ROUNDS):
        current = ConfigurationVersion.objects.filter(kit_id=kit_id).select_related("kit").order_by("-version").first()
        if current is None or current.version == published:
            break
        if published is None and _published_version(kit_id) >= current.version:
            break  # another task has published it, or a newer one (and looks after it)
        mqtt_publisher.local_credentials_ensure()
        mqtt_publisher.message_publish(
            topic=kit_topic(thing_name_for(kit_id), "config"),
            payload=config_payload(
                kit_id=kit_id,
                version=current.version,
                desired=current.desired,
                time_zone=current.kit.time_zone,
                timestamp=utc_timestamp(),
            ),
            retain=True,
        )
        published = current.version
        KitConfiguration.objects.filter(kit_id=kit_id).filter(
            Q(published_version__isnull=True) | Q(published_version__lt=published)
        ).update(published_version=published, published_at=timezone.now())
    return published


def _published_version(kit_id: str) -> int:
    found = KitConfiguration.objects.filter(kit_id=kit_id).values_list("published_version", flat=True).first()
    return found or 0


def configurations_unpublished(*, older_than_seconds: float) -> list[str]:
    """Kits whose newest configuration the broker has not confirmed, changed longer ago than
    `older_than_seconds` (its task was lost, or gave up): for the sweep to queue again."""
    before = timezone.now() - timedelta(seconds=older_than_seconds)
    states = KitConfiguration.objects.filter(version__gt=0).filter(
        Q(published_version__isnull=True) | Q(published_version__lt=F("version"))
    )
    stale = ConfigurationVersion.objects.filter(
        kit_id__in=states.values("kit_id"), changed_at__lt=before, version=F("kit__configuration__version")
    )
    return sorted(stale.values_list("kit_id", flat=True))


def configurations_publish_sweep(*, older_than_seconds: float) -> list[str]:
    """Queue the publication of every configuration left unpublished; returns the kits."""
    kit_ids = configurations_unpublished(older_than_seconds=older_than_seconds)
    for kit_id in kit_ids:
        tasks.configuration_publish_task.delay_on_commit(kit_id)
    return kit_ids


def configuration_reported(
    *, kit_id: str, version: int, status: str, reason: str | None, reported_at: datetime
) -> None:
    """Record what the kit said of configuration `version`: `applied` (it now runs it) or
    `rejected` (it could not; `reason` says why). Idempotent, and never goes back: a report older
    than the last one recorded (a redelivery, a late message) changes nothing. ReportRefused for a
    version the kit was never sent."""
    with transaction.atomic():
        kit = Kit.objects.filter(pk=kit_id).first()
        if kit is None:
            raise ReportRefused(f"No kit '{kit_id}' is registered.")
        _kit_configuration_ensure(kit)
        state = KitConfiguration.objects.select_for_update().get(kit=kit)
        if version > state.version:
            raise ReportRefused(
                f"The kit reports configuration version {version}, but its newest is version {state.version}."
            )
        if state.report_version is not None and (version, reported_at) < (state.report_version, state.reported_at):
            return  # an older report, delivered late
        state.report_version, state.report_status = version, status
        state.report_reason, state.reported_at = reason or "", reported_at
        if status == ConfigStatus.APPLIED and (state.applied_version is None or version > state.applied_version):
            if version == 0:
                applied = selectors.kit_desired_default(kit)
            else:
                applied = ConfigurationVersion.objects.get(kit=kit, version=version).desired
            state.applied_version, state.applied_desired, state.applied_at = version, applied, reported_at
        state.save()


# --- Commands -----------------------------------------------------------------------------------


def command_create(*, kit: Kit, name: str, arguments: Any, user) -> Command:
    """Queue command `name` for the kit, if its `arguments` are what the command takes
    (ControlInvalid per field otherwise). It expires COMMAND_EXPIRY_SECONDS from now; it is sent
    once this commits."""
    checked = _command_arguments_checked(kit, name, arguments)
    now = timezone.now()
    with transaction.atomic():
        command = Command.objects.create(
            kit=kit,
            name=name,
            arguments=checked,
            created_by=user if user and user.is_authenticated else None,
            created_at=now,
            expires_at=now + timedelta(seconds=settings.COMMAND_EXPIRY_SECONDS),
        )
        tasks.command_send_task.delay_on_commit(str(command.id))
    return command


def _command_arguments_checked(kit: Kit, name: str, arguments: Any) -> dict:
    if not isinstance(arguments, dict):
        raise ControlInvalid({"arguments": ["An object is required."]})
    problems: dict[str, list[str]] = {}
    allowed = {"set_actuator": {"actuator", "level", "minutes"}}.get(name, set())
    for key in sorted(set(arguments) - allowed):
        taken = f" ({', '.join(sorted(allowed))})" if allowed else " (it takes none)"
        problems[f"arguments.{key}"] = [f"Not an argument of '{name}'{taken}."]
    if name == "set_actuator":
        actuators = selectors.kit_actuator_specs(kit)
        key, level, minutes = arguments.get("actuator"), arguments.get("level"), arguments.get("minutes")
        if not isinstance(key, str) or key not in actuators:
            known = ", ".join(sorted(actuators)) or "none"
            problems["arguments.actuator"] = [f"One of the kit's actuator keys is required (it has: {known})."]
        if not _is_number(level) or not LEVEL_MIN <= level <= LEVEL_MAX:
            problems["arguments.level"] = [f"A level is a number from {LEVEL_MIN} to {LEVEL_MAX}."]
        elif key in actuators and not actuators[key]["dimmable"] and level not in (LEVEL_MIN, LEVEL_MAX):
            problems["arguments.level"] = [f"This actuator is on/off: its level is {LEVEL_MIN} or {LEVEL_MAX}."]
        if "minutes" in arguments and (not _is_number(minutes) or not 0 < minutes <= MAX_OVERRIDE_MINUTES):
            problems["arguments.minutes"] = [
                f"Minutes are a number above 0 and at most {MAX_OVERRIDE_MINUTES} (a week); leave it out to "
                "hold the level until the next configuration."
            ]
    if problems:
        raise ControlInvalid(problems)
    return dict(arguments)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def command_send(*, command_id: str) -> bool:
    """Publish a queued command on its kit's `commands` topic (QoS 1, not retained) and mark it
    sent. Never sends one that has expired (it is marked so instead), nor one already sent or
    answered. Returns whether it was published."""
    command = Command.objects.select_related("kit").filter(pk=command_id).first()
    if command is None or command.status != CommandStatus.QUEUED:
        return False
    if command.expires_at <= timezone.now():
        commands_expire(kit_ids=[command.kit_id])
        return False
    mqtt_publisher.local_credentials_ensure()
    mqtt_publisher.message_publish(
        topic=kit_topic(thing_name_for(command.kit_id), "commands"),
        payload=command_payload(
            kit_id=command.kit_id,
            id=str(command.id),
            name=command.name,
            arguments=command.arguments,
            expires_at=utc_timestamp(command.expires_at),
            timestamp=utc_timestamp(),
        ),
        retain=False,
    )
    # Only if still queued: the kit may have answered already, faster than this update.
    Command.objects.filter(pk=command.pk, status=CommandStatus.QUEUED).update(
        status=CommandStatus.SENT, sent_at=timezone.now()
    )
    return True


def commands_expire(*, kit_ids: list[str] | None = None) -> int:
    """Mark expired every command (of `kit_ids`, or of all kits) not answered before its
    expires_at. Returns how many."""
    open_commands = Command.objects.filter(status__in=COMMAND_OPEN_STATUSES, expires_at__lte=timezone.now())
    if kit_ids is not None:
        open_commands = open_commands.filter(kit_id__in=kit_ids)
    return open_commands.update(status=CommandStatus.EXPIRED, reason=EXPIRED_REASON)


def command_result_record(
    *, kit_id: str, command_id: str, status: str, result: dict | None, reason: str | None, answered_at: datetime
) -> bool:
    """Record the kit's answer to one of its commands: succeeded (with its `result`) or failed
    (`reason`). Idempotent: a command already answered keeps its first answer, and one that
    expired stays expired (an answer stamped after expires_at does not count). Returns whether the
    answer was recorded. ReportRefused for a command that is not this kit's: a kit speaks only for
    itself."""
    command = Command.objects.filter(pk=command_id).values("kit_id", "expires_at").first()
    if command is None or command["kit_id"] != kit_id:
        raise ReportRefused(f"Kit '{kit_id}' was sent no command '{command_id}'.")
    if answered_at > command["expires_at"]:  # too late: the command ends expired, whatever the answer
        Command.objects.filter(pk=command_id, status__in=COMMAND_OPEN_STATUSES).update(
            status=CommandStatus.EXPIRED, reason=EXPIRED_REASON
        )
        return False
    return bool(
        Command.objects.filter(pk=command_id, status__in=COMMAND_OPEN_STATUSES).update(
            status=status, result=result, reason=reason or "", answered_at=answered_at
        )
    )
