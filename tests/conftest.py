"""Fixtures every test may use: users in each role, kits, and API clients that check every
response against our own OpenAPI schema."""

import json
import uuid

import pytest
import redis
from django.contrib.auth import get_user_model
from django.core.cache import caches
from drf_spectacular.generators import SchemaGenerator
from hypothesis import settings as hypothesis_settings
from openapi_core import OpenAPI
from openapi_core.contrib.django import DjangoOpenAPIRequest, DjangoOpenAPIResponse
from rest_framework.test import APIClient

from kits import memberships, registry
from kits.models import Role
from kits.registry import SensorSpec

ROLES = ("viewer", "configurer", "owner")

# These machines are shared and noisy: a slow example is not a failure.
hypothesis_settings.register_profile("astroplant", deadline=None)
hypothesis_settings.load_profile("astroplant")


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
    kit = registry.kit_register(
        id="private-kit",
        name="Private kit",
        description="Only members see it.",
        admin_email="owner@example.org",
        sensors=[SensorSpec("temperature", "temperature", "°C", -10, 50)],
    )
    kit.ip_address = "192.0.2.10"
    kit.save()
    for role in ROLES:
        memberships.membership_add(kit=kit, username=role, role=Role(role))
    return kit


@pytest.fixture
def public_kit(users):
    kit = registry.kit_register(
        id="public-kit",
        name="Public kit",
        public=True,
        admin_email="someone@example.org",
        sensors=[SensorSpec("humidity", "humidity", "%", 0, 100)],
    )
    kit.ip_address = "192.0.2.20"
    kit.save()
    for role in ROLES:
        memberships.membership_add(kit=kit, username=role, role=Role(role))
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


# --- Provisioning: AWS IoT faults, a real Celery worker, mosquitto with mutual TLS ----


class IotFaults:
    """Faults injected into the real boto3 IoT client through botocore's own event hooks: the
    request never reaches moto (`fail`, `crash_before`) or its answer never reaches our code
    (`crash_after`), exactly as a throttled call or a process dying at that instant would."""

    def __init__(self, client):
        self.client = client
        self.calls: dict[str, list[float]] = {}
        self._registered: list[tuple[str, object]] = []

    def fail(self, operation: str, code: str, *, times: int, status: int = 400, message: str = "injected") -> None:
        """Answer the next `times` calls of `operation` with the AWS error `code`."""
        import time

        from botocore.awsrequest import AWSResponse

        def handler(**kwargs):
            self.calls.setdefault(operation, []).append(time.monotonic())
            if len(self.calls[operation]) <= times:
                error = {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}
                return AWSResponse(url="", status_code=status, headers={}, raw=None), error
            return None

        self._register(f"before-call.iot.{operation}", handler)

    def crash_before(self, operation: str) -> None:
        self._register(f"before-call.iot.{operation}", self._crash(operation))

    def crash_after(self, operation: str) -> None:
        self._register(f"after-call.iot.{operation}", self._crash(operation))

    def meanwhile(self, operation: str, action, *, when: str = "after") -> None:
        """Run `action()` once, `when` ("before" or "after") AWS answers the next call of
        `operation`, while our code waits for that answer: what another process does meanwhile."""
        done = []

        def handler(**kwargs):
            if not done:
                done.append(True)
                action()

        self._register(f"{when}-call.iot.{operation}", handler)

    def clear(self) -> None:
        for event, handler in self._registered:
            self.client.meta.events.unregister(event, handler)
        self._registered.clear()

    def _crash(self, operation: str):
        def handler(**kwargs):
            raise SimulatedCrash(f"the process died during {operation}")

        return handler

    def _register(self, event: str, handler) -> None:
        self.client.meta.events.register(event, handler)
        self._registered.append((event, handler))


class SimulatedCrash(Exception):
    """Not one of our exceptions: nothing in the product catches it, as nothing survives a crash."""


@pytest.fixture
def iot(moto_server):
    """A plain boto3 IoT client on moto_server, to look at the AWS state the product left."""
    import boto3

    return boto3.client("iot")


@pytest.fixture
def iot_faults(moto_server):
    from kits.aws_iot import iot_client

    faults = IotFaults(iot_client())
    yield faults
    faults.clear()


@pytest.fixture
def unique_kit_id():
    """moto_server lives for the whole session: each test's kits get ids of their own."""
    import secrets

    return lambda prefix="kit": f"{prefix}-{secrets.token_hex(4)}"


def _database_url_of(settings_dict) -> str:
    from urllib.parse import quote

    if settings_dict["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{settings_dict['NAME']}"
    credentials = quote(settings_dict.get("USER") or "")
    if settings_dict.get("PASSWORD"):
        credentials += ":" + quote(settings_dict["PASSWORD"])
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or 5432
    return f"postgres://{credentials}@{host}:{port}/{settings_dict['NAME']}"


@pytest.fixture
def celery_broker_purged(settings):
    """The test broker (Redis db 5), emptied of messages earlier tests may have left."""
    from astroplant_site.celery import app

    with app.connection_for_write() as connection:
        app.control.purge(connection=connection)
    return settings.CELERY_BROKER_URL


@pytest.fixture
def celery_worker_process(transactional_db, moto_server, celery_broker_purged, tmp_path):
    """A real `celery -A astroplant_site worker` process on the test broker, the test database
    and moto_server. Its log is in `.log_file`."""
    import os
    import subprocess
    import sys
    import time
    import uuid
    from pathlib import Path

    from django.db import connection

    log_file = tmp_path / "celery-worker.log"
    env = {
        **os.environ,
        **moto_server.client_env(),
        "DJANGO_SETTINGS_MODULE": "astroplant_site.settings.test",
        "DATABASE_URL": _database_url_of(connection.settings_dict),
        "PYTHONUNBUFFERED": "1",
    }
    command = [sys.executable, "-m", "celery", "-A", "astroplant_site", "worker", "--pool=solo", "--loglevel=INFO"]
    command += ["--without-gossip", "--without-mingle", "-n", f"test-{uuid.uuid4().hex[:8]}@%h"]
    with open(log_file, "w") as log:
        process = subprocess.Popen(
            command, cwd=Path(__file__).resolve().parent.parent, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + 60
    while " ready." not in log_file.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"The Celery worker did not start:\n{log_file.read_text()}")
        time.sleep(0.1)
    process.log_file = log_file
    yield process
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
def celery_worker_in_process(transactional_db, moto_server, celery_broker_purged):
    """Celery's own worker, consuming the real test broker, in a thread of the test process: for
    tests that inject faults into this process's boto3 client."""
    from celery.contrib.testing.worker import start_worker

    from astroplant_site.celery import app

    with start_worker(app, pool="solo", concurrency=1, perform_ping_check=False, shutdown_timeout=20) as worker:
        yield worker


@pytest.fixture
def mosquitto_broker(tmp_path):
    """mosquitto with mutual TLS against the project CA, kit ACLs equal to the IoT policy, and an
    `observer` client that may read every topic (to see what the broker let through)."""
    from kits.certificates import project_authority
    from localdev.mosquitto import MosquittoBroker

    with MosquittoBroker(
        authority=project_authority(), directory=tmp_path / "mosquitto", extra_acl="user observer\ntopic read #\n"
    ) as broker:
        yield broker


# --- Telemetry ------------------------------------------------------------------------------


@pytest.fixture
def telemetry_tables(moto_server, settings):
    """Fresh, empty telemetry tables for this test alone in the session's moto_server (a table
    prefix of its own), so tests never see each other's readings."""
    import uuid

    from telemetry.dynamodb import table
    from telemetry.models import MODELS
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
    from telemetry.dynamodb import client

    calls: list[tuple[str, dict]] = []

    def record(model, params, **kwargs):
        calls.append((model.name, params))

    client().meta.events.register("provide-client-params.dynamodb.*", record)
    yield calls
    client().meta.events.unregister("provide-client-params.dynamodb.*", record)


@pytest.fixture
def redis_cache(settings):
    """The default cache on the test Redis (the Celery broker's database, under a prefix of its own)."""
    prefix = f"test-cache-{uuid.uuid4().hex}"
    settings.CACHES = {
        "default": {
            "BACKEND": "astroplant_site.cache.RedisCache",
            "LOCATION": settings.CELERY_BROKER_URL,
            "KEY_PREFIX": prefix,
        }
    }
    yield caches["default"]
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)
