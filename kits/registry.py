"""The registry's writes: registering, changing and deleting kits, and their sensors. Views, the
admin and commands call these, never the ORM. A registered kit's provisioning on AWS IoT is queued
on commit (kits/provisioning.py)."""

from collections.abc import Iterable
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from . import provisioning, tasks
from .exceptions import KitBusy, KitInvalid, KitStateConflict
from .models import Kit, ProvisioningStatus, Sensor, kit_id_generate


@dataclass(frozen=True)
class SensorSpec:
    key: str
    quantity: str
    unit: str
    min_value: float | None = None
    max_value: float | None = None


def kit_register(
    *,
    name: str,
    id: str | None = None,
    description: str = "",
    admin_email: str = "",
    public: bool = False,
    sensors: Iterable[SensorSpec] = (),
) -> Kit:
    """Register a new kit with its sensors. Without an id, a fresh random one is generated.
    Its provisioning on AWS IoT is queued once the registration commits."""
    sensors = list(sensors)
    _check_sensor_keys_unique(sensors)
    for _ in range(5):
        kit_id = id or kit_id_generate()
        kit = Kit(
            id=kit_id,
            name=name,
            description=description,
            admin_email=admin_email,
            public=public,
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
    sensors: Iterable[SensorSpec] | None = None,
) -> Kit:
    """Change a kit's details. Given sensors replace the kit's sensors; None leaves them alone."""
    changes = {
        "name": name,
        "description": description,
        "admin_email": admin_email,
        "public": public,
    }
    for field, value in changes.items():
        if value is not None:
            setattr(kit, field, value)
    _full_clean(kit)
    with transaction.atomic():
        # Only these fields: a worker may be changing the kit's provisioning fields meanwhile.
        kit.save(update_fields=[*changes, "updated_at"])
        if sensors is not None:
            sensors = list(sensors)
            _check_sensor_keys_unique(sensors)
            _sensors_replace(kit, sensors)
    return kit


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


def _check_sensor_keys_unique(sensors: list[SensorSpec]) -> None:
    keys = [sensor.key for sensor in sensors]
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    if duplicates:
        raise KitInvalid({"sensors": [f"Each sensor key may appear once; repeated: {', '.join(duplicates)}."]})


def _sensors_replace(kit: Kit, sensors: list[SensorSpec]) -> None:
    kit.sensors.all().delete()
    rows = [Sensor(kit=kit, **vars(spec)) for spec in sensors]
    for row in rows:
        _full_clean(row, exclude=["kit"])
    Sensor.objects.bulk_create(rows)
    # Drop the prefetched list so the caller sees the new sensors.
    getattr(kit, "_prefetched_objects_cache", {}).pop("sensors", None)
