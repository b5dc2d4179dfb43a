"""The whole API fuzzed from its own OpenAPI schema (schemathesis), in-process through WSGI.

Given the schema the app serves at /api/schema/, every operation is called with generated input —
valid and invalid — by an anonymous caller, a grower who owns a kit, and staff. Whatever comes in,
the API never answers with a server error, and every answer (status code, content type, headers
and body) is one the schema describes.

The examples are the same on every run, so CI is repeatable. To explore further, draw new ones:
    API_FUZZ_RANDOM=1 API_FUZZ_EXAMPLES=300 .venv/bin/python -m pytest tests/test_api_fuzz.py
"""

import os
from datetime import UTC, datetime, timedelta

import pytest
import schemathesis
from django.contrib.auth import get_user_model
from django.core.handlers.wsgi import WSGIHandler
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from knox.models import AuthToken
from schemathesis.specs.openapi.checks import positive_data_acceptance

from kits import memberships, registry
from kits.models import Kit, Role
from kits.registry import SensorSpec

pytestmark = pytest.mark.integration  # moto_server for /kits/{id}/data

# Enough to reach every status code of every operation, small enough for CI on 2 cores.
EXAMPLES_PER_OPERATION = int(os.environ.get("API_FUZZ_EXAMPLES", "30"))
GROWER_KIT, PUBLIC_KIT = "fuzz-grower-kit", "fuzz-public-kit"
SENSORS = [SensorSpec("temperature", "temperature", "°C", -10, 50), SensorSpec("co2", "co2", "ppm", 200, 5000)]


# The schema exactly as the app serves it (pytest-django has set Django up before collection).
schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", WSGIHandler())


@schema.hook
def flatmap_path_parameters(context, path_parameters):
    """Besides generated ids and usernames (which must answer 404), aim at things that exist: the
    grower's kit, a public kit, and the members of the grower's kit."""
    choices = [path_parameters]
    if isinstance(path_parameters, dict) and "id" in path_parameters:
        for kit_id in (GROWER_KIT, PUBLIC_KIT):
            known = {**path_parameters, "id": kit_id}
            choices.append(known)
            if "username" in path_parameters:
                choices += [{**known, "username": name} for name in ("fuzz-grower", "fuzz-viewer")]
    return st.sampled_from(choices)


@schema.hook
def flatmap_query(context, query):
    """The data API's parameters mostly exclude each other, so generated queries are mostly
    refused with a 400; mix in queries of the shapes the app and the dashboard send."""
    if context.operation.path != "/kits/{id}/data":
        return st.just(query)
    now = datetime.now(UTC)
    sensors = st.sampled_from(["temperature", "co2", "temperature,co2"])
    latest = st.fixed_dictionaries(
        {},
        optional={"last": st.integers(1, 1000), "sensor": sensors, "format": st.sampled_from(["json", "csv"])},
    )
    history = st.builds(
        lambda start, length, options: {
            "from": (now - timedelta(minutes=start)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            **({"to": (now - timedelta(minutes=start - length)).strftime("%Y-%m-%dT%H:%M:%SZ")} if length else {}),
            **options,
        },
        st.integers(min_value=0, max_value=3 * 24 * 60),
        st.integers(min_value=0, max_value=3 * 24 * 60),
        st.fixed_dictionaries(
            {},
            optional={
                "sensor": sensors,
                "resolution": st.sampled_from(["raw", "1h", "1d", "auto"]),
                "page_size": st.integers(1, 200),
                "format": st.sampled_from(["json", "csv"]),
            },
        ),
    )
    return st.one_of(st.just(query), latest, history)


def kits_present() -> None:
    """The kits and members the examples aim at, put back if an earlier example deleted them."""
    if not Kit.objects.filter(pk=GROWER_KIT).exists():
        kit = registry.kit_register(
            id=GROWER_KIT, name="Grower's kit", admin_email="grower@example.org", sensors=SENSORS
        )
        memberships.membership_add(kit=kit, username="fuzz-grower", role=Role.OWNER)
    kit = Kit.objects.get(pk=GROWER_KIT)
    if not kit.memberships.filter(user__username="fuzz-viewer").exists():
        memberships.membership_add(kit=kit, username="fuzz-viewer", role=Role.VIEWER)
    if not Kit.objects.filter(pk=PUBLIC_KIT).exists():
        registry.kit_register(id=PUBLIC_KIT, name="Public kit", public=True, sensors=SENSORS)


@pytest.fixture
def tokens(transactional_db, telemetry_tables):
    """An API token for each signed-in caller; kits with a day of readings in DynamoDB."""
    from telemetry.services import Reading, readings_write

    User = get_user_model()
    grower = User.objects.create_user("fuzz-grower", "grower@example.org", "pw-grower")
    User.objects.create_user("fuzz-viewer", "viewer@example.org", "pw-viewer")
    staff = User.objects.create_user("fuzz-staff", "staff@example.org", "pw-staff", is_staff=True)
    kits_present()
    now = datetime.now(UTC).replace(microsecond=0)
    readings_write(
        readings=[
            Reading(kit_id, now - timedelta(minutes=10 * n), {"temperature": 20 + n / 10, "co2": 400.0 + n})
            for kit_id in (GROWER_KIT, PUBLIC_KIT)
            for n in range(144)
        ]
    )
    return {
        "anonymous": None,
        "grower": AuthToken.objects.create(grower)[1],
        "staff": AuthToken.objects.create(staff)[1],
    }


@pytest.mark.parametrize("caller", ["anonymous", "grower", "staff"])
@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=not os.environ.get("API_FUZZ_RANDOM"),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
    deadline=None,
)
def test_no_input_makes_the_api_fail_or_break_its_schema(case, caller, tokens):
    kits_present()
    token = tokens[caller]
    headers = {"Authorization": f"Token {token}"} if token else {}

    # Every check schemathesis has but one: schema-valid input may rightly be refused with a 400,
    # because some rules cannot be written in OpenAPI (a cursor must come from this API, `from`
    # before `to`, sensors the kit has, a member who exists, a kit keeps one owner).
    case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])
