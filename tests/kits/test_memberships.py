"""Who may see and manage a kit, as the membership services keep it whoever calls them."""

import pytest

from kits import memberships, selectors
from kits.exceptions import KitInvalid
from kits.models import Role


def test_the_last_owner_cannot_leave_but_can_once_there_is_another(private_kit):
    with pytest.raises(KitInvalid, match="at least one owner"):
        memberships.membership_remove(kit=private_kit, username="owner")

    memberships.membership_change_role(kit=private_kit, username="viewer", role=Role.OWNER)
    memberships.membership_remove(kit=private_kit, username="owner")

    assert selectors.memberships_of_kit(kit=private_kit).filter(role=Role.OWNER).count() == 1


def test_an_inactive_user_cannot_be_added(private_kit, users):
    users["nonmember"].is_active = False
    users["nonmember"].save()

    with pytest.raises(KitInvalid, match="no active user"):
        memberships.membership_add(kit=private_kit, username="nonmember", role=Role.VIEWER)
