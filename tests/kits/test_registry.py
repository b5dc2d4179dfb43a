"""The registry's rules, as its services keep them whoever calls them."""

import pytest

from kits import registry
from kits.exceptions import KitInvalid
from kits.models import Kit


def test_a_kit_without_an_id_gets_a_fresh_url_safe_one(db):
    first = registry.kit_register(name="One")
    second = registry.kit_register(name="Two")

    assert first.id != second.id
    assert first.id.startswith("k-") and first.id.replace("-", "").isalnum()


def test_a_taken_id_is_refused_and_the_existing_kit_is_untouched(private_kit):
    with pytest.raises(KitInvalid, match="already exists"):
        registry.kit_register(id="private-kit", name="Impostor")

    assert Kit.objects.get(pk="private-kit").name == "Private kit"


def test_updating_sensors_replaces_them_all(private_kit):
    registry.kit_update(kit=private_kit, sensors=[registry.SensorSpec("co2", "co2", "ppm")])

    assert list(private_kit.sensors.values_list("key", flat=True)) == ["co2"]


def test_a_bad_sensor_leaves_the_old_sensors_in_place(private_kit):
    with pytest.raises(KitInvalid):
        registry.kit_update(kit=private_kit, sensors=[registry.SensorSpec("Bad Key", "co2", "ppm")])

    assert list(private_kit.sensors.values_list("key", flat=True)) == ["temperature"]
