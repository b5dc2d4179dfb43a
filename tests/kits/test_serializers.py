"""The kit API's JSON built directly (kit_output_data) is exactly what KitOutputSerializer, the
schema's source, makes of the same kit for the same caller."""

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from django.contrib.auth.models import AnonymousUser

from kits import registry, selectors
from kits.registry import SensorSpec
from kits.serializers import KitOutputSerializer, kit_output_data

pytestmark = pytest.mark.django_db


@pytest.fixture
def odd_kit(users):
    """A kit with what a kit may lack: no admin e-mail, no IP, a sensor without bounds, a last-seen
    time with microseconds."""
    kit = registry.kit_register(
        id="odd-kit",
        name="Odd kit",
        public=True,
        sensors=[SensorSpec("co2", "co2", "ppm", None, None), SensorSpec("light", "light", "lx", 0, 100000)],
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
