"""The ingest bridge records what kits report back, from real MQTT messages: mosquitto with mutual
TLS, DynamoDB on moto_server, the test database. A kit's status carrying config_version and
config_status, and its answers on command-results; bad ones, and answers to another kit's
commands, become dead letters."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from control import services
from control.models import Command, CommandStatus
from device.payloads import command_result_payload, status_payload, utc_timestamp
from kits.models import Actuator
from telemetry.dead_letters import DeadLetter
from tests.support import ingest_bridge_running, wait_until
from tests.telemetry.test_ingest import KitPublisher

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def kits(private_kit, public_kit):
    Actuator.objects.create(kit=private_kit, key="led", kind="light", dimmable=True)
    return private_kit, public_kit


@pytest.fixture
def bridge(mosquitto_broker, telemetry_tables, kits):
    with ingest_bridge_running(mosquitto_broker) as bridge:
        yield bridge


@pytest.fixture
def kit(mosquitto_broker):
    publisher = KitPublisher(mosquitto_broker, "private-kit")
    yield publisher
    publisher.close()


def now_stamp(seconds_ago: float = 1) -> str:
    return utc_timestamp(datetime.now(UTC) - timedelta(seconds=seconds_ago))


def status(**config) -> str:
    return status_payload(
        kit_id="private-kit",
        ip="192.0.2.7",
        software_version="1.2.0",
        uptime_seconds=60,
        timestamp=now_stamp(),
        **config,
    )


def answer(command_id, *, status="succeeded", result=None, reason=None, kit_id="private-kit") -> str:
    return command_result_payload(
        kit_id=kit_id, id=str(command_id), status=status, result=result, reason=reason, timestamp=now_stamp()
    )


def configuration(client):
    return client.get("/kits/private-kit/configuration").json()


def test_a_status_reporting_the_configuration_applied_is_recorded(bridge, kit, kits, users, make_client):
    change = services.configuration_change(kit=kits[0], desired={"interval_seconds": 2}, user=users["owner"])

    kit.publish(status(config_version=1, config_status="applied"), channel="status")

    viewer = make_client(users["viewer"])
    wait_until(lambda: configuration(viewer)["status"] == "applied", what="the report recorded")
    answer_ = configuration(viewer)
    assert answer_["reported"] == change.desired and answer_["applied_at"]
    assert bridge.counts.reports == 1


def test_a_rejection_is_recorded_with_the_kits_reason(bridge, kit, kits, users, make_client):
    services.configuration_change(kit=kits[0], desired={"interval_seconds": 2}, user=users["owner"])

    kit.publish(status(config_version=1, config_status="rejected", reason="no driver for 'led'"), channel="status")

    viewer = make_client(users["viewer"])
    wait_until(lambda: configuration(viewer)["status"] == "rejected", what="the rejection recorded")
    assert (configuration(viewer)["reason"], configuration(viewer)["reported"]) == ("no driver for 'led'", None)


def test_a_redelivered_report_changes_nothing(bridge, kit, kits, users, make_client):
    services.configuration_change(kit=kits[0], desired={"interval_seconds": 2}, user=users["owner"])
    payload = status(config_version=1, config_status="applied")

    kit.publish(payload, channel="status")
    wait_until(lambda: bridge.counts.messages == 1, what="the first delivery")
    first = configuration(make_client(users["viewer"]))
    kit.publish(payload, channel="status")
    wait_until(lambda: bridge.counts.messages == 2, what="the second delivery")

    assert configuration(make_client(users["viewer"])) == first
    assert not DeadLetter.objects.exists()


def test_a_command_result_is_recorded_and_a_redelivery_keeps_the_first(bridge, kit, kits):
    command = services.command_create(kit=kits[0], name="ping", arguments={}, user=None)
    result = {"uptime_seconds": 61, "software_version": "1.2.0"}

    kit.publish(answer(command.id, result=result), channel="command-results")
    wait_until(lambda: Command.objects.get(pk=command.id).status == "succeeded", what="the result recorded")
    kit.publish(answer(command.id, status="failed", reason="again?"), channel="command-results")
    wait_until(lambda: bridge.counts.messages == 2, what="the second delivery")

    command.refresh_from_db()
    assert (command.status, command.result, command.reason) == (CommandStatus.SUCCEEDED, result, "")
    assert not DeadLetter.objects.exists()


def test_a_failure_is_recorded_with_its_reason(bridge, kit, kits):
    command = services.command_create(kit=kits[0], name="capture_photo", arguments={}, user=None)

    kit.publish(answer(command.id, status="failed", reason="no camera"), channel="command-results")

    wait_until(lambda: Command.objects.get(pk=command.id).status == "failed", what="the failure recorded")
    assert Command.objects.get(pk=command.id).reason == "no camera"


def test_an_answer_to_an_expired_command_does_not_revive_it(bridge, kit, kits):
    command = services.command_create(kit=kits[0], name="ping", arguments={}, user=None)
    Command.objects.filter(pk=command.pk).update(expires_at=datetime.now(UTC) - timedelta(seconds=30))
    services.commands_expire()

    kit.publish(answer(command.id, result={"uptime_seconds": 1, "software_version": "1"}), channel="command-results")

    wait_until(lambda: bridge.counts.messages == 1, what="the answer handled")
    command.refresh_from_db()
    assert (command.status, command.result) == (CommandStatus.EXPIRED, None)
    assert not DeadLetter.objects.exists()  # a late answer is no error


def test_a_kit_answering_another_kits_command_is_a_dead_letter(bridge, kit, kits):
    others = services.command_create(kit=kits[1], name="ping", arguments={}, user=None)
    payload = answer(others.id, result={})

    kit.publish(payload, channel="command-results")

    wait_until(lambda: DeadLetter.objects.exists(), what="the dead letter")
    letter = DeadLetter.objects.get()
    assert "Kit 'private-kit' was sent no command" in letter.reason
    assert (letter.kit_id, bytes(letter.payload)) == ("private-kit", payload.encode())
    assert Command.objects.get(pk=others.pk).status == CommandStatus.QUEUED


def base_status(**changes) -> bytes:
    body = json.loads(status())
    body.update(changes)
    return json.dumps(body).encode()


def base_answer(**changes) -> bytes:
    body = json.loads(answer("6f1c2b9e-3a4d-4e5f-8a7b-1c2d3e4f5a6b", result={}))
    body.update(changes)
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    ("channel", "payload", "reason"),
    [
        ("status", base_status(config_version=7, config_status="applied"), "its newest is version 0"),
        ("status", base_status(config_version=0, config_status="done"), "config_status must be one of"),
        ("status", base_status(config_version="1", config_status="applied"), "config_version must be a whole number"),
        ("status", base_status(config_version=-1, config_status="applied"), "config_version must be a whole number"),
        ("status", base_status(config_status="applied"), "config_status is given without the config_version"),
        ("status", base_status(config_version=0, config_status="rejected", reason=5), "reason must be text"),
        ("status", base_status(config_version=0, config_status="rejected", reason="x" * 501), "reason must be text"),
        ("command-results", base_answer(id="not-a-uuid"), "is not a command id"),
        ("command-results", base_answer(status="done"), "status must be one of"),
        ("command-results", base_answer(result=[1]), "result must be an object"),
        ("command-results", base_answer(reason=["no"]), "reason must be text"),
        ("command-results", base_answer(extra=1), "has no field 'extra'"),
        ("command-results", base_answer(kit_id="public-kit"), "speaks for kit 'public-kit'"),
        ("command-results", base_answer(), "was sent no command"),
    ],
)
def test_a_bad_report_becomes_a_dead_letter_and_the_bridge_goes_on(bridge, kit, channel, payload, reason):
    kit.publish(payload, channel=channel)
    kit.publish(status(), channel="status")  # a good one after it

    wait_until(lambda: bridge.counts.messages == 2, what="both messages")
    letter = DeadLetter.objects.get()
    assert reason in letter.reason
    assert bytes(letter.payload) == payload
