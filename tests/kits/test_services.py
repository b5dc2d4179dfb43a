"""The registry's rules, as the services keep them whoever calls them."""

import pytest

from kits import selectors, services
from kits.exceptions import KitInvalid
from kits.models import Kit, Role


def test_a_kit_without_an_id_gets_a_fresh_url_safe_one(db):
    first = services.kit_register(name="One")
    second = services.kit_register(name="Two")

    assert first.id != second.id
    assert first.id.startswith("k-") and first.id.replace("-", "").isalnum()


def test_a_taken_id_is_refused_and_the_existing_kit_is_untouched(private_kit):
    with pytest.raises(KitInvalid, match="already exists"):
        services.kit_register(id="private-kit", name="Impostor")

    assert Kit.objects.get(pk="private-kit").name == "Private kit"


def test_updating_sensors_replaces_them_all(private_kit):
    services.kit_update(kit=private_kit, sensors=[services.SensorSpec("co2", "co2", "ppm")])

    assert list(private_kit.sensors.values_list("key", flat=True)) == ["co2"]


def test_a_bad_sensor_leaves_the_old_sensors_in_place(private_kit):
    with pytest.raises(KitInvalid):
        services.kit_update(kit=private_kit, sensors=[services.SensorSpec("Bad Key", "co2", "ppm")])

    assert list(private_kit.sensors.values_list("key", flat=True)) == ["temperature"]


def test_the_last_owner_cannot_leave_but_can_once_there_is_another(private_kit):
    with pytest.raises(KitInvalid, match="at least one owner"):
        services.membership_remove(kit=private_kit, username="owner")

    services.membership_change_role(kit=private_kit, username="viewer", role=Role.OWNER)
    services.membership_remove(kit=private_kit, username="owner")

    assert selectors.memberships_of_kit(kit=private_kit).filter(role=Role.OWNER).count() == 1


def test_an_inactive_user_cannot_be_added(private_kit, users):
    users["nonmember"].is_active = False
    users["nonmember"].save()

    with pytest.raises(KitInvalid, match="no active user"):
        services.membership_add(kit=private_kit, username="nonmember", role=Role.VIEWER)
