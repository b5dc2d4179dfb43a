"""The registry's writes: registering, changing and deleting kits, their sensors and actuators. Views, the
admin and commands call these, never the ORM. A registered kit's provisioning on AWS IoT is queued
on commit (kits/provisioning.py)."""

from collections.abc import Iterable
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from . import provisioning, tasks
from .exceptions import KitBusy, KitInvalid, KitStateConflict
from .models import Actuator, Kit, ProvisioningStatus, Sensor, kit_id_generate
from .signals import kit_time_zone_changed


@dataclass(frozen=True)
class SensorSpec:
    key: str
    quantity: str
    unit: str
    min_value: float | None = None
    max_value: float | None = None


@dataclass(frozen=True)
class ActuatorSpec:
    key: str
    kind: str
    dimmable: bool = False


def kit_register(
    *,
    name: str,
    id: str | None = None,
    description: str = "",
    admin_email: str = "",
    public: bool = False,
    time_zone: str = "UTC",
    sensors: Iterable[SensorSpec] = (),
    actuators: Iterable[ActuatorSpec] = (),
) -> Kit:
    """Register a new kit with its sensors and actuators. Without an id, a fresh random one is
    generated. Its provisioning on AWS IoT is queued once the registration commits."""
    sensors, actuators = list(sensors), list(actuators)
    _check_keys_unique(sensors, "sensors", "sensor")
    _check_keys_unique(actuators, "actuators", "actuator")
    _check_keys_apart(sensors=sensors, actuators=actuators, changed="actuators")
    for _ in range(5):
        kit_id = id or kit_id_generate()
        kit = Kit(
            id=kit_id,
            name=name,
            description=description,
            admin_email=admin_email,
            public=public,
            time_zone=time_zone,
            provisioning_status=ProvisioningStatus.PENDING,
            provisioning_status_changed_at=timezone.now(),
        )
        _full_clean(kit)
        try:
            with transaction.atomic():
                if Kit.objects.filter(pk=kit_id).exists():
                    raise IntegrityError
                kit.save(force_insert=True)
                _sensors_replace(kit, sensors)
                _actuators_replace(kit, actuators)
            tasks.kit_provision_task.delay_on_commit(kit.id)
            return kit
        except IntegrityError:
            if id:
                raise KitInvalid({"id": [f"A kit with id '{id}' already exists."]}) from None
            # A generated id collided (one in 4 billion): draw another.
    raise KitInvalid({"id": ["Could not generate a free kit id; please give one."]})


def kit_update(
    *,
    kit: Kit,
    name: str | None = None,
    description: str | None = None,
    admin_email: str | None = None,
    public: bool | None = None,
    time_zone: str | None = None,
    sensors: Iterable[SensorSpec] | None = None,
    actuators: Iterable[ActuatorSpec] | None = None,
) -> Kit:
    """Change a kit's details. Given sensors (actuators) replace the kit's sensors (actuators);
    None leaves them alone. Either way a key names a sensor or an actuator of the kit, not both."""
    changes = {
        "name": name,
        "description": description,
        "admin_email": admin_email,
        "public": public,
        "time_zone": time_zone,
    }
    stored_time_zone = Kit.objects.filter(pk=kit.pk).values_list("time_zone", flat=True).first()
    for field, value in changes.items():
        if value is not None:
            setattr(kit, field, value)
    _full_clean(kit)
    with transaction.atomic():
        # Only these fields: a worker may be changing the kit's provisioning fields meanwhile.
        kit.save(update_fields=[*changes, "updated_at"])
        if kit.time_zone != stored_time_zone:
            kit_time_zone_changed.send(sender=Kit, kit=kit)
        if sensors is not None:
            sensors = list(sensors)
            _check_keys_unique(sensors, "sensors", "sensor")
        if actuators is not None:
            actuators = list(actuators)
            _check_keys_unique(actuators, "actuators", "actuator")
        if sensors is not None or actuators is not None:
            _check_keys_apart(
                sensors=sensors if sensors is not None else list(kit.sensors.all()),
                actuators=actuators if actuators is not None else list(kit.actuators.all()),
                changed="actuators" if actuators is not None else "sensors",
            )
        if sensors is not None:
            _sensors_replace(kit, sensors)
        if actuators is not None:
            _actuators_replace(kit, actuators)
    return kit


def kit_actuators_replace(*, kit: Kit, actuators: Iterable[ActuatorSpec]) -> list[Actuator]:
    """Replace all of a kit's actuators (the admin's inline). KitInvalid if two share a key or
    one has the key of one of the kit's sensors. Returns the new rows."""
    actuators = list(actuators)
    _check_keys_unique(actuators, "actuators", "actuator")
    with transaction.atomic():
        _check_keys_apart(sensors=list(kit.sensors.all()), actuators=actuators, changed="actuators")
        _actuators_replace(kit, actuators)
    return list(kit.actuators.all())


def kit_delete(*, kit: Kit) -> None:
    """Remove a kit from the registry with its sensors and memberships. A kit that has a thing or
    certificate on AWS IoT must be decommissioned first, or they would be left behind, live. While
    a worker holds the kit (it may be creating its thing at this very moment) the delete is
    refused: try again once the worker is done."""
    with transaction.atomic():
        try:
            # Held as a worker holds it, until the delete commits: no worker starts on it meanwhile.
            with provisioning.kit_held(kit.id) as held:
                if held.provisioning_status != ProvisioningStatus.DECOMMISSIONED and (
                    held.thing_arn or held.certificates.filter(deleted_at__isnull=True).exists()
                ):
                    raise KitStateConflict(
                        f"Kit '{kit.id}' still has its AWS IoT thing and certificate: decommission it first "
                        "(an admin action), then delete it."
                    )
                held.delete()
        except KitBusy:
            raise KitStateConflict(
                f"A worker is changing kit '{kit.id}' on AWS IoT right now: try again in a minute."
            ) from None


def _full_clean(instance, exclude=None) -> None:
    # Uniqueness is left to the database, inside the transaction, where it cannot race.
    try:
        instance.full_clean(exclude=exclude, validate_unique=False)
    except ValidationError as error:
        raise KitInvalid(error.message_dict) from None


def _check_keys_unique(items: list, field: str, noun: str) -> None:
    keys = [item.key for item in items]
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    if duplicates:
        raise KitInvalid({field: [f"Each {noun} key may appear once; repeated: {', '.join(duplicates)}."]})


def _check_keys_apart(*, sensors: list, actuators: list, changed: str) -> None:
    """Readings and actuator levels are stored side by side under their keys, so one key must
    not name both. The error names each clashing entry of the list being `changed`."""
    if changed == "actuators":
        taken, items, other = {sensor.key for sensor in sensors}, actuators, "a sensor"
    else:
        taken, items, other = {actuator.key for actuator in actuators}, sensors, "an actuator"
    errors = {
        f"{changed}[{index}].key": [
            f"'{item.key}' is already the key of {other} of this kit: a key names a sensor or an actuator, not both."
        ]
        for index, item in enumerate(items)
        if item.key in taken
    }
    if errors:
        raise KitInvalid(errors)


def _sensors_replace(kit: Kit, sensors: list[SensorSpec]) -> None:
    kit.sensors.all().delete()
    rows = [Sensor(kit=kit, **vars(spec)) for spec in sensors]
    for row in rows:
        _full_clean(row, exclude=["kit"])
    Sensor.objects.bulk_create(rows)
    # Drop the prefetched list so the caller sees the new sensors.
    getattr(kit, "_prefetched_objects_cache", {}).pop("sensors", None)


def _actuators_replace(kit: Kit, actuators: list[ActuatorSpec]) -> None:
    kit.actuators.all().delete()
    rows = [Actuator(kit=kit, **vars(spec)) for spec in actuators]
    for row in rows:
        _full_clean(row, exclude=["kit"])
    Actuator.objects.bulk_create(rows)
    getattr(kit, "_prefetched_objects_cache", {}).pop("actuators", None)
