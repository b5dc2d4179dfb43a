"""Two-way, end to end with real processes: a configurer changes a provisioned kit through the API;
a Celery worker publishes the change, retained, as the backend's own identity on mosquitto with
mutual TLS; the kit agent (`python -m device run` with its bundle) applies it and reports; the
ingest bridge (`manage.py ingest`) records the report and the readings; the API shows the result.
Commands travel the same way and come back on the kit's `command-results` topic."""

import itertools
import os
import sys
import tomllib
from datetime import UTC, datetime, timedelta
from statistics import median

import pytest
import tomli_w

from kits import memberships, registry
from kits.models import Kit, ProvisioningStatus
from telemetry.selectors import readings_range_rows
from telemetry.timebuckets import Resolution, to_ms
from tests.conftest import _database_url_of
from tests.support import ProcessGroup, unpack_bundle, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

KIT_ID = "two-way-kit"


@pytest.fixture
def processes(tmp_path):
    started = ProcessGroup(tmp_path)
    yield started
    started.stop_all()


@pytest.fixture
def stack(moto_server, backend_on_broker, telemetry_tables, celery_worker_in_process, settings, tmp_path, processes):
    """A provisioned kit with a LED panel, a fan and a heater whose relay driver this machine lacks,
    its bundle unpacked; the ingest bridge running; the owner's API client."""
    from django.db import connection

    broker = backend_on_broker
    settings.IOT_MQTT_ENDPOINT, settings.IOT_MQTT_PORT = "localhost", broker.port
    kit = registry.kit_register(
        id=KIT_ID,
        name="Two-way",
        sensors=[registry.SensorSpec("temperature", "temperature", "°C")],
        actuators=[
            registry.ActuatorSpec("led", "light", dimmable=True),
            registry.ActuatorSpec("fan", "fan"),
            registry.ActuatorSpec("heater", "heater"),
        ],
    )
    # The Celery worker provisions it, as it would any kit registered
    wait_until(
        lambda: Kit.objects.get(pk=KIT_ID).provisioning_status == ProvisioningStatus.ACTIVE, what="the provisioning"
    )
    kit.refresh_from_db()
    bundle = tmp_path / "bundle"
    unpack_bundle(kit, bundle)
    config = tomllib.loads((bundle / "kit.toml").read_text())
    for actuator in config["actuators"]:
        if actuator["key"] == "heater":  # a relay on GPIO: gpiozero is not installed here
            actuator.update(driver="gpio_relay", options={"pin": 17})
    (bundle / "kit.toml").write_text(tomli_w.dumps(config))

    bridge_credentials = broker.client_credentials("astroplant.ingest")
    env = {
        **os.environ,
        **moto_server.client_env(),
        "DYNAMODB_TABLE_PREFIX": telemetry_tables,
        "DJANGO_SETTINGS_MODULE": "astroplant_site.settings.test",
        "DATABASE_URL": _database_url_of(connection.settings_dict),
        "INGEST_MQTT_HOST": "localhost",
        "INGEST_MQTT_PORT": str(broker.port),
        "INGEST_CERTIFICATE_FILE": str(bridge_credentials.certificate),
        "INGEST_PRIVATE_KEY_FILE": str(bridge_credentials.private_key),
        "INGEST_ROOT_CA_FILE": str(bridge_credentials.root_ca),
        "PYTHONUNBUFFERED": "1",
    }
    bridge = processes.start("ingest", [sys.executable, "manage.py", "ingest", "--report-every", "1"], env)
    wait_until(lambda: "subscribed to" in bridge.log_path.read_text(), what="the bridge to subscribe")
    return {"kit": kit, "bundle": bundle, "bridge": bridge}


@pytest.fixture
def owner(stack, make_client, users):
    memberships.membership_add(kit=stack["kit"], username="owner", role="owner")
    return make_client(users["owner"])


def start_agent(processes, bundle):
    return processes.start(
        "agent",
        [sys.executable, "-m", "device", "run", "--config", str(bundle / "kit.toml")],
        {**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def stored(key: str, *, since: datetime) -> list[tuple[int, float]]:
    """(ms, value) of the kit's stored readings of `key` since `since`, oldest first."""
    rows = readings_range_rows(
        kit=Kit.objects.get(pk=KIT_ID),
        start_ms=to_ms(since),
        end_ms=to_ms(datetime.now(UTC) + timedelta(hours=1)),
        resolution=Resolution.RAW,
        sensors=[key],
    )
    return [(timestamp, value) for timestamp, _, value in rows]


def configuration_of(client) -> dict:
    response = client.get(f"/kits/{KIT_ID}/configuration")
    assert response.status_code == 200, response.content
    return response.json()


def put_configuration(client, desired: dict) -> dict:
    response = client.put(f"/kits/{KIT_ID}/configuration", {"desired": desired}, content_type="application/json")
    assert response.status_code == 200, response.content
    return response.json()


def logs_of(stack, agent) -> tuple:
    return (stack["bridge"].log_path, agent.log_path)


def test_a_configuration_change_travels_to_the_kit_and_takes_effect(stack, owner, processes):
    agent = start_agent(processes, stack["bundle"])
    logs = logs_of(stack, agent)

    # When the owner asks for a reading every 2 s and the LED panel at 40 %
    asked = put_configuration(owner, {"interval_seconds": 2, "actuators": {"led": {"mode": "on", "level": 40}}})
    assert (asked["version"], asked["status"]) == (1, "pending")

    # Then within 30 s the kit has applied it, and the API says so
    wait_until(lambda: configuration_of(owner)["status"] == "applied", timeout=30, what="applied", logs=logs)
    state = configuration_of(owner)
    assert state["reported"] == state["desired"] and state["reason"] is None
    applied_at = datetime.fromisoformat(state["applied_at"])

    # and its readings arrive every 2 s, each with the LED level it runs
    wait_until(lambda: len(stored("temperature", since=applied_at)) >= 6, timeout=40, what="readings", logs=logs)
    times = [ms for ms, _ in stored("temperature", since=applied_at)]
    gaps = [(later - earlier) / 1000 for earlier, later in itertools.pairwise(times)]
    assert 1.5 <= median(gaps) <= 2.5, gaps
    assert {value for _, value in stored("led", since=applied_at)} == {40}
    latest = owner.get(f"/kits/{KIT_ID}/data").json()
    assert latest["led"][0]["value"] == 40


def test_a_configuration_the_kit_cannot_run_comes_back_rejected_with_its_reason(stack, owner, processes):
    agent = start_agent(processes, stack["bundle"])

    # When the owner turns on the heater, whose relay driver the kit lacks
    put_configuration(owner, {"interval_seconds": 5, "actuators": {"heater": {"mode": "on", "level": 100}}})

    # Then the kit refuses the whole configuration and says why
    wait_until(
        lambda: configuration_of(owner)["status"] == "rejected",
        timeout=30,
        what="rejected",
        logs=logs_of(stack, agent),
    )
    state = configuration_of(owner)
    assert "heater" in state["reason"] and "gpio_relay" in state["reason"], state["reason"]
    assert state["reported"] is None  # it never applied a configuration of ours


def test_ping_succeeds_end_to_end(stack, owner, processes):
    # Given a kit online: subscribed to its commands (they are not retained: a kit that is not
    # listening never gets one)
    agent = start_agent(processes, stack["bundle"])
    wait_until(lambda: "Listening for configurations and commands" in agent.log_path.read_text(), what="the kit")

    response = owner.post(
        f"/kits/{KIT_ID}/commands", {"name": "ping", "arguments": {}}, content_type="application/json"
    )
    assert response.status_code == 201, response.content
    command_url = f"/kits/{KIT_ID}/commands/{response.json()['id']}"

    wait_until(
        lambda: owner.get(command_url).json()["status"] == "succeeded",
        timeout=30,
        what="the ping's answer",
        logs=logs_of(stack, agent),
    )
    result = owner.get(command_url).json()["result"]
    assert result["uptime_seconds"] >= 0 and result["software_version"]


def test_a_command_to_an_offline_kit_expires_and_is_never_acted_on_later(stack, owner, processes, settings):
    # Given a kit that was online once (its session at the broker keeps what is sent meanwhile)
    settings.COMMAND_EXPIRY_SECONDS = 3
    agent = start_agent(processes, stack["bundle"])
    began = datetime.now(UTC)
    wait_until(lambda: stored("led", since=began), timeout=90, what="a first reading", logs=logs_of(stack, agent))
    assert processes.stop(agent) == 0

    # When the owner sets the LED panel to full while the kit is away
    response = owner.post(
        f"/kits/{KIT_ID}/commands",
        {"name": "set_actuator", "arguments": {"actuator": "led", "level": 100}},
        content_type="application/json",
    )
    command_url = f"/kits/{KIT_ID}/commands/{response.json()['id']}"
    wait_until(lambda: owner.get(command_url).json()["status"] == "expired", timeout=30, what="the expiry")

    # and the kit comes back and measures again
    back = datetime.now(UTC)
    agent = start_agent(processes, stack["bundle"])
    wait_until(
        lambda: stored("led", since=back), timeout=90, what="a reading after the return", logs=logs_of(stack, agent)
    )

    # Then the kit did not act on it (whether the broker kept it for the kit or not: the kit
    # never acts on an expired command), and the command stays expired
    assert {value for _, value in stored("led", since=back)} == {0}
    assert owner.get(command_url).json()["status"] == "expired"
