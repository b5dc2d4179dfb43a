"""Every write to the kit registry. Views, the admin and commands call these, never the ORM."""

from collections.abc import Iterable
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from .exceptions import KitInvalid, MemberNotFound
from .models import Kit, Membership, Role, Sensor, kit_id_generate


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
    """Register a new kit with its sensors. Without an id, a fresh random one is generated."""
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
        )
        _full_clean(kit)
        try:
            with transaction.atomic():
                if Kit.objects.filter(pk=kit_id).exists():
                    raise IntegrityError
                kit.save(force_insert=True)
                _sensors_replace(kit, sensors)
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
        kit.save()
        if sensors is not None:
            sensors = list(sensors)
            _check_sensor_keys_unique(sensors)
            _sensors_replace(kit, sensors)
    return kit


def kit_delete(*, kit: Kit) -> None:
    """Remove a kit from the registry with its sensors and memberships."""
    kit.delete()


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


def membership_add(*, kit: Kit, username: str, role: str) -> Membership:
    """Give the user `username` a role in `kit`."""
    user = _user_by_username(username)
    with transaction.atomic():
        membership, created = Membership.objects.get_or_create(kit=kit, user=user, defaults={"role": role})
        if not created:
            raise KitInvalid(
                {"username": [f"'{username}' is already a {membership.role} of this kit; change the role instead."]}
            )
    return membership


def membership_change_role(*, kit: Kit, username: str, role: str) -> Membership:
    """Change a member's role. The last owner cannot step down: add another owner first."""
    with transaction.atomic():
        membership = _membership_for_update(kit, username)
        if membership.role == Role.OWNER and role != Role.OWNER:
            _check_not_last_owner(kit)
        membership.role = role
        membership.save(update_fields=["role"])
    return membership


def membership_remove(*, kit: Kit, username: str) -> None:
    """Take a user's access to a kit away. The last owner cannot be removed."""
    with transaction.atomic():
        membership = _membership_for_update(kit, username)
        if membership.role == Role.OWNER:
            _check_not_last_owner(kit)
        membership.delete()


def _membership_for_update(kit: Kit, username: str) -> Membership:
    try:
        return Membership.objects.select_for_update().get(kit=kit, user__username=username)
    except Membership.DoesNotExist:
        raise MemberNotFound(kit.id, username) from None


def _check_not_last_owner(kit: Kit) -> None:
    owners = Membership.objects.select_for_update().filter(kit=kit, role=Role.OWNER)
    if owners.count() <= 1:
        raise KitInvalid({"role": ["A kit keeps at least one owner: make someone else owner first."]})


def _user_by_username(username: str):
    User = get_user_model()
    try:
        return User.objects.get(username=username, is_active=True)
    except User.DoesNotExist:
        raise KitInvalid({"username": [f"There is no active user '{username}'."]}) from None
