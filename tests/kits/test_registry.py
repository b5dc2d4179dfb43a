"""The registry's rules, as its services keep them whoever calls them."""

import pytest

from kits import provisioning, registry
from kits.exceptions import KitInvalid, KitStateConflict
from kits.models import Kit, ProvisioningStatus


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


@pytest.mark.integration
def test_a_kit_cannot_be_deleted_while_a_worker_provisions_it(db, iot, iot_faults, unique_kit_id):
    # Given a worker provisioning a kit, which has just created its thing on AWS IoT and not yet
    # recorded it
    kit = registry.kit_register(id=unique_kit_id(), name="Being provisioned")
    refusals = []

    def delete_meanwhile():
        try:
            registry.kit_delete(kit=Kit.objects.get(pk=kit.id))
        except KitStateConflict as refusal:
            refusals.append(refusal.message)

    # When someone deletes the kit meanwhile
    iot_faults.meanwhile("CreateThing", delete_meanwhile)
    provisioning.kit_provision(kit_id=kit.id)

    # Then the delete is refused, saying to try again shortly
    assert refusals == [f"A worker is changing kit '{kit.id}' on AWS IoT right now: try again in a minute."]
    # and the worker finishes: the kit is active, its thing recorded rather than orphaned
    kit.refresh_from_db()
    assert kit.provisioning_status == ProvisioningStatus.ACTIVE
    assert iot.describe_thing(thingName=kit.thing_name)["thingArn"] == kit.thing_arn
