"""Who may see and manage a kit: adding members, changing their roles, removing them. A kit
keeps at least one owner once it has one."""

from django.contrib.auth import get_user_model
from django.db import transaction

from .exceptions import KitInvalid, MemberNotFound
from .models import Kit, Membership, Role


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
