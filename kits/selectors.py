"""Every read of the kit registry, scoped to what the caller may see."""

from collections.abc import Iterable

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import CharField, F, FilteredRelation, Q, QuerySet, Value

from .exceptions import KitNotFound
from .models import Actuator, Kit, KitCertificate, Membership, ProvisioningStatus, Role, Sensor

User = AbstractBaseUser | AnonymousUser


def kits_visible_to(user: User) -> QuerySet[Kit]:
    """The kits `user` may see: all for staff, member and public kits for a grower, public ones
    for anyone else. Each kit carries `caller_role`, the user's role in it (None if not a member)."""
    kits = Kit.objects.prefetch_related("sensors", "actuators")
    if not user.is_authenticated:
        return kits.filter(public=True).annotate(caller_role=Value(None, output_field=CharField()))
    # The caller's membership joined in (one per kit and user at most): simpler SQL than a
    # subquery for the role and another for visibility, and much less for the ORM to compile.
    kits = kits.annotate(
        own_membership=FilteredRelation("memberships", condition=Q(memberships__user=user)),
        caller_role=F("own_membership__role"),
    )
    if user.is_staff:
        return kits
    return kits.filter(Q(public=True) | Q(own_membership__isnull=False))


# What a kit's JSON shows of it (kits.serializers.kit_output_data), for lists read as plain rows.
KIT_LISTING_FIELDS = (
    "id",
    "name",
    "public",
    "description",
    "admin_email",
    "ip_address",
    "last_seen",
    "provisioning_status",
    "time_zone",
)
SENSOR_LISTING_FIELDS = ("key", "quantity", "unit", "min_value", "max_value")
ACTUATOR_LISTING_FIELDS = ("key", "kind", "dimmable")


def kits_listed_for(user: User) -> QuerySet:
    """The kits `user` may see (kits_visible_to) as plain rows with their `caller_role`, in id
    order: a page of 50 kits as model instances, with their sensors, cost most of GET /kits."""
    return kits_visible_to(user).prefetch_related(None).values(*KIT_LISTING_FIELDS, "caller_role")


def sensors_of_kits(*, kit_ids: Iterable[str]) -> dict[str, list[dict]]:
    """Each kit's sensors as plain rows, in key order, for many kits in one query."""
    found: dict[str, list[dict]] = {}
    rows = Sensor.objects.filter(kit_id__in=list(kit_ids)).order_by("kit_id", "key")
    for row in rows.values("kit_id", *SENSOR_LISTING_FIELDS):
        found.setdefault(row.pop("kit_id"), []).append(row)
    return found


def actuators_of_kits(*, kit_ids: Iterable[str]) -> dict[str, list[dict]]:
    """Each kit's actuators as plain rows, in key order, for many kits in one query."""
    found: dict[str, list[dict]] = {}
    rows = Actuator.objects.filter(kit_id__in=list(kit_ids)).order_by("kit_id", "key")
    for row in rows.values("kit_id", *ACTUATOR_LISTING_FIELDS):
        found.setdefault(row.pop("kit_id"), []).append(row)
    return found


def kit_get_visible(*, user: User, kit_id: str) -> Kit:
    """The kit `kit_id` if `user` may see it; otherwise KitNotFound, exactly as if it did not exist."""
    try:
        return kits_visible_to(user).get(pk=kit_id)
    except Kit.DoesNotExist:
        raise KitNotFound(kit_id) from None


def kit_can_manage(*, user: User, kit: Kit) -> bool:
    """Staff and the kit's owners may change it, delete it and manage its members."""
    if not user.is_authenticated:
        return False
    return user.is_staff or _role_of(user, kit) == Role.OWNER


def kit_can_configure(*, user: User, kit: Kit) -> bool:
    """Staff, the kit's configurers and its owners may change its configuration and send it commands."""
    if not user.is_authenticated:
        return False
    return user.is_staff or _role_of(user, kit) in (Role.CONFIGURER, Role.OWNER)


def kit_can_see_private_details(*, user: User, kit: Kit) -> bool:
    """Members and staff see a kit's IP address and admin e-mail; the public does not."""
    if not user.is_authenticated:
        return False
    return user.is_staff or _role_of(user, kit) is not None


def _role_of(user: User, kit: Kit) -> str | None:
    # Kits from kits_visible_to() carry the role already; others are looked up.
    if hasattr(kit, "caller_role"):
        return kit.caller_role
    return Membership.objects.filter(kit=kit, user=user).values_list("role", flat=True).first()


def memberships_of_kit(*, kit: Kit) -> QuerySet[Membership]:
    return Membership.objects.filter(kit=kit).select_related("user").order_by("user__username")


def kit_certificate_current(*, kit: Kit) -> KitCertificate | None:
    """The kit's active certificate, if it has one and its bundle is still stored."""
    if not kit.certificate_id:
        return None
    return (
        KitCertificate.objects.filter(
            kit=kit, aws_certificate_id=kit.certificate_id, activated_at__isnull=False, deactivated_at__isnull=True
        )
        .exclude(bundle_path="")
        .first()
    )


def kit_ids_receiving_telemetry(*, kit_ids: Iterable[str]) -> set[str]:
    """Which of `kit_ids` are registered kits whose readings are accepted: not decommissioned."""
    return set(
        Kit.objects.filter(pk__in=set(kit_ids))
        .exclude(provisioning_status=ProvisioningStatus.DECOMMISSIONED)
        .values_list("pk", flat=True)
    )


def member_username_resolve(*, username_or_email: str) -> str:
    """The username of the active user a kit owner means by `username_or_email`: a username
    first (usernames may contain '@'), else the one active user with that e-mail, in any case.
    KitInvalid if there is none, or if several users share the e-mail."""
    from django.contrib.auth import get_user_model

    from .exceptions import KitInvalid

    User = get_user_model()
    given = username_or_email.strip()
    active = User.objects.filter(is_active=True)
    if active.filter(username=given).exists():
        return given
    if "@" in given:
        usernames = list(active.filter(email__iexact=given).values_list("username", flat=True)[:2])
        if len(usernames) == 1:
            return usernames[0]
        if len(usernames) > 1:
            raise KitInvalid({"member": [f"Several users have the e-mail '{given}': add them by username."]})
    raise KitInvalid({"member": [f"There is no active user with the username or e-mail '{given}'."]})
