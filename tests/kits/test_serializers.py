"""The kit API's JSON built directly (kit_output_data) is exactly what KitOutputSerializer, the
schema's source, makes of the same kit for the same caller."""

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from django.contrib.auth.models import AnonymousUser

from kits import registry, selectors
from kits.registry import ActuatorSpec, SensorSpec
from kits.serializers import KitOutputSerializer, kit_output_data

pytestmark = pytest.mark.django_db


@pytest.fixture
def odd_kit(users):
    """A kit with what a kit may lack: no admin e-mail, no IP, a sensor without bounds, a last-seen
    time with microseconds; and what others lack: actuators (dimmable and on/off), a time zone."""
    kit = registry.kit_register(
        id="odd-kit",
        name="Odd kit",
        public=True,
        time_zone="Pacific/Chatham",
        sensors=[SensorSpec("co2", "co2", "ppm", None, None), SensorSpec("light", "light", "lx", 0, 100000)],
        actuators=[ActuatorSpec("led", "light", True), ActuatorSpec("fan", "fan", False)],
    )
    kit.last_seen = datetime(2026, 11, 30, 10, 0, 5, 123456, tzinfo=UTC)
    kit.save()
    return kit


@pytest.mark.parametrize("caller", ["anonymous", "nonmember", "viewer", "configurer", "owner", "staff"])
def test_the_kit_json_built_directly_is_what_the_serializer_makes(users, private_kit, public_kit, odd_kit, caller):
    user = AnonymousUser() if caller == "anonymous" else users[caller]
    kits = list(selectors.kits_visible_to(user))
    assert kits  # every caller sees at least the public kits

    for kit in kits:
        expected = KitOutputSerializer(kit, context={"request": SimpleNamespace(user=user)}).data
        assert kit_output_data(kit, user=user) == expected
        assert list(kit_output_data(kit, user=user)) == list(expected)  # the same order of keys
    odd = next(kit for kit in kits if kit.id == "odd-kit")  # public: every caller sees it
    assert [a["key"] for a in kit_output_data(odd, user=user)["actuators"]] == ["fan", "led"]


@pytest.mark.parametrize("caller", ["anonymous", "nonmember", "viewer", "owner", "staff"])
def test_the_kit_list_read_as_plain_rows_is_what_the_serializer_makes(
    users, private_kit, public_kit, odd_kit, make_client, caller
):
    # given every kind of caller, and kits with and without what a kit may lack
    user = None if caller == "anonymous" else users[caller]

    # when they list their kits (read as rows, sensors for the page in one query)
    response = make_client(user).get("/kits?page_size=200")

    # then each kit is exactly what the serializer makes of the model, in the same order
    assert response.status_code == 200
    caller_user = AnonymousUser() if user is None else user
    expected = [
        KitOutputSerializer(kit, context={"request": SimpleNamespace(user=caller_user)}).data
        for kit in selectors.kits_visible_to(caller_user)
    ]
    assert response.json()["results"] == expected
    odd = next(kit for kit in response.json()["results"] if kit["id"] == "odd-kit")
    assert odd["actuators"] == [
        {"key": "fan", "kind": "fan", "dimmable": False},
        {"key": "led", "kind": "light", "dimmable": True},
    ]
    assert odd["time_zone"] == "Pacific/Chatham"
