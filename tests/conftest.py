"""Fixtures every test may use: users in each role, kits, and API clients that check every
response against our own OpenAPI schema."""

import json

import pytest
from django.contrib.auth import get_user_model
from drf_spectacular.generators import SchemaGenerator
from openapi_core import OpenAPI
from openapi_core.contrib.django import DjangoOpenAPIRequest, DjangoOpenAPIResponse
from rest_framework.test import APIClient

from kits import services
from kits.models import Role
from kits.services import SensorSpec

ROLES = ("viewer", "configurer", "owner")


@pytest.fixture(scope="session")
def openapi_spec():
    """The schema served at /api/schema/, as openapi-core reads it (it validates the schema too)."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return OpenAPI.from_dict(json.loads(json.dumps(schema, default=str)))


class SchemaCheckedClient(APIClient):
    """An APIClient whose every response must be one the schema describes, body included."""

    def __init__(self, spec, **kwargs):
        super().__init__(**kwargs)
        self.spec = spec

    def request(self, **kwargs):
        response = super().request(**kwargs)
        # Paths that match no route (a 404 from Django itself) are not in any schema.
        matched = response.wsgi_request.resolver_match is not None
        if matched and response.wsgi_request.path.startswith(("/kits", "/auth/")):
            self.spec.validate_response(
                DjangoOpenAPIRequest(response.wsgi_request),
                DjangoOpenAPIResponse(response),
            )
        return response


@pytest.fixture
def make_client(openapi_spec):
    """`make_client(user)`: a schema-checked API client signed in as `user` (None: anonymous)."""

    def make(user=None):
        client = SchemaCheckedClient(openapi_spec)
        if user is not None:
            client.force_authenticate(user)
        return client

    return make


@pytest.fixture
def users(db):
    """One user per relation to `private_kit` and `public_kit`, plus a stranger and staff."""
    User = get_user_model()
    made = {
        "nonmember": User.objects.create_user("nonmember", "nonmember@example.org", "pw-nonmember"),
        "staff": User.objects.create_user("staff", "staff@example.org", "pw-staff", is_staff=True),
    }
    for role in ROLES:
        made[role] = User.objects.create_user(role, f"{role}@example.org", f"pw-{role}")
    return made


@pytest.fixture
def private_kit(users):
    kit = services.kit_register(
        id="private-kit",
        name="Private kit",
        description="Only members see it.",
        admin_email="owner@example.org",
        sensors=[SensorSpec("temperature", "temperature", "°C", -10, 50)],
    )
    kit.ip_address = "192.0.2.10"
    kit.save()
    for role in ROLES:
        services.membership_add(kit=kit, username=role, role=Role(role))
    return kit


@pytest.fixture
def public_kit(users):
    kit = services.kit_register(
        id="public-kit",
        name="Public kit",
        public=True,
        admin_email="someone@example.org",
        sensors=[SensorSpec("humidity", "humidity", "%", 0, 100)],
    )
    kit.ip_address = "192.0.2.20"
    kit.save()
    for role in ROLES:
        services.membership_add(kit=kit, username=role, role=Role(role))
    return kit


@pytest.fixture(scope="session")
def moto_server():
    """A real `moto_server` process for the whole session; boto3 and PynamoDB point at it
    through AWS_ENDPOINT_URL, exactly as they would point at AWS without it."""
    from localdev.moto import MotoServer

    with MotoServer() as server, pytest.MonkeyPatch.context() as patch:
        for name, value in server.client_env().items():
            patch.setenv(name, value)
        yield server


# --- Telemetry ------------------------------------------------------------------------------


@pytest.fixture
def telemetry_tables(moto_server, settings):
    """Fresh, empty telemetry tables for this test alone in the session's moto_server (a table
    prefix of its own), so tests never see each other's readings."""
    import uuid

    from telemetry.models import MODELS, table
    from telemetry.services import telemetry_tables_setup

    settings.DYNAMODB_TABLE_PREFIX = f"test-{uuid.uuid4().hex[:10]}-"
    telemetry_tables_setup()
    yield settings.DYNAMODB_TABLE_PREFIX
    for model in MODELS:
        table(model).delete_table()


@pytest.fixture
def dynamodb_calls(telemetry_tables):
    """Every DynamoDB call the telemetry tables' real clients make from now on, as
    (operation name, request parameters), recorded by a botocore event hook."""
    from telemetry.models import client

    calls: list[tuple[str, dict]] = []

    def record(model, params, **kwargs):
        calls.append((model.name, params))

    client().meta.events.register("provide-client-params.dynamodb.*", record)
    yield calls
    client().meta.events.unregister("provide-client-params.dynamodb.*", record)
