"""POST and GET /kits/{id}/commands: names and arguments checked strictly, the answer's shape,
newest first, and the life of a command: queued, sent, answered, or expired for good."""

from datetime import timedelta

import pytest
from django.utils import timezone

from control import services, tasks
from control.exceptions import ReportRefused
from control.models import Command, CommandStatus

pytestmark = pytest.mark.django_db

ANSWER_FIELDS = {"id", "name", "arguments", "status", "created_at", "expires_at", "result", "reason"}


@pytest.fixture
def configurer(make_client, users, actuated_kits):
    return make_client(users["configurer"])


def post(client, body, kit="private-kit"):
    return client.post(f"/kits/{kit}/commands", body, format="json")


def test_a_command_is_queued_and_answered_with_its_expiry(configurer, settings):
    settings.COMMAND_EXPIRY_SECONDS = 90

    response = post(configurer, {"name": "ping", "arguments": {}})

    assert response.status_code == 201
    body = response.json()
    assert set(body) == ANSWER_FIELDS
    assert (body["name"], body["arguments"], body["status"], body["result"], body["reason"]) == (
        "ping",
        {},
        "queued",
        None,
        None,
    )
    command = Command.objects.get()
    assert str(command.id) == body["id"]
    assert command.expires_at - command.created_at == timedelta(seconds=90)
    assert response["Location"] == f"/kits/private-kit/commands/{command.id}"
    assert configurer.get(response["Location"]).json() == body


def test_arguments_may_be_left_out(configurer):
    assert post(configurer, {"name": "measure_now"}).json()["arguments"] == {}


@pytest.mark.parametrize(
    "arguments",
    [
        {"actuator": "led", "level": 40},
        {"actuator": "led", "level": 0.5, "minutes": 30},
        {"actuator": "fan", "level": 100},
    ],
)
def test_set_actuator_takes_an_actuator_a_level_and_minutes(configurer, arguments):
    response = post(configurer, {"name": "set_actuator", "arguments": arguments})

    assert response.status_code == 201, response.content
    assert response.json()["arguments"] == arguments


BAD_COMMANDS = [
    ("no name", {"arguments": {}}, "name"),
    ("unknown name", {"name": "reboot", "arguments": {}}, "name"),
    ("name not text", {"name": 3}, "name"),
    ("unknown field", {"name": "ping", "arguments": {}, "priority": 1}, "priority"),
    ("arguments not an object", {"name": "ping", "arguments": [1]}, "arguments"),
    ("ping takes no arguments", {"name": "ping", "arguments": {"loud": True}}, "arguments.loud"),
    ("measure_now takes no arguments", {"name": "measure_now", "arguments": {"x": 1}}, "arguments.x"),
    ("capture_photo takes no arguments", {"name": "capture_photo", "arguments": {"x": 1}}, "arguments.x"),
    ("no actuator", {"name": "set_actuator", "arguments": {"level": 5}}, "arguments.actuator"),
    ("unknown actuator", {"name": "set_actuator", "arguments": {"actuator": "pump", "level": 5}}, "arguments.actuator"),
    (
        "a sensor is no actuator",
        {"name": "set_actuator", "arguments": {"actuator": "temperature", "level": 5}},
        "arguments.actuator",
    ),
    ("no level", {"name": "set_actuator", "arguments": {"actuator": "led"}}, "arguments.level"),
    ("level above 100", {"name": "set_actuator", "arguments": {"actuator": "led", "level": 101}}, "arguments.level"),
    ("level below 0", {"name": "set_actuator", "arguments": {"actuator": "led", "level": -5}}, "arguments.level"),
    ("level as text", {"name": "set_actuator", "arguments": {"actuator": "led", "level": "50"}}, "arguments.level"),
    ("level as boolean", {"name": "set_actuator", "arguments": {"actuator": "led", "level": True}}, "arguments.level"),
    ("on/off dimmed", {"name": "set_actuator", "arguments": {"actuator": "fan", "level": 50}}, "arguments.level"),
    (
        "zero minutes",
        {"name": "set_actuator", "arguments": {"actuator": "led", "level": 5, "minutes": 0}},
        "arguments.minutes",
    ),
    (
        "negative minutes",
        {"name": "set_actuator", "arguments": {"actuator": "led", "level": 5, "minutes": -3}},
        "arguments.minutes",
    ),
    (
        "minutes as text",
        {"name": "set_actuator", "arguments": {"actuator": "led", "level": 5, "minutes": "5"}},
        "arguments.minutes",
    ),
    (
        "minutes null",
        {"name": "set_actuator", "arguments": {"actuator": "led", "level": 5, "minutes": None}},
        "arguments.minutes",
    ),
    (
        "unknown argument",
        {"name": "set_actuator", "arguments": {"actuator": "led", "level": 5, "colour": "red"}},
        "arguments.colour",
    ),
]


@pytest.mark.parametrize(("body", "field"), [case[1:] for case in BAD_COMMANDS], ids=[c[0] for c in BAD_COMMANDS])
def test_a_command_the_kit_does_not_take_is_refused_per_field(configurer, body, field):
    response = post(configurer, body)

    assert response.status_code == 400, response.content
    assert field in response.json()["errors"], response.json()
    assert not Command.objects.exists()


def test_commands_are_listed_newest_first(configurer):
    ids = [post(configurer, {"name": name}).json()["id"] for name in ("ping", "measure_now", "capture_photo")]

    listing = configurer.get("/kits/private-kit/commands").json()

    assert [c["id"] for c in listing["results"]] == ids[::-1]
    assert listing["count"] == 3
    assert [c["id"] for c in configurer.get("/kits/private-kit/commands?page_size=1&page=3").json()["results"]] == [
        ids[0]
    ]


# --- The life of a command ------------------------------------------------------------------------


def a_command(kit, name="ping"):
    return services.command_create(kit=kit, name=name, arguments={}, user=None)


def expire_now(command):
    Command.objects.filter(pk=command.pk).update(expires_at=timezone.now() - timedelta(seconds=1))


def test_a_command_not_answered_in_time_reads_expired(configurer, actuated_kits):
    command = a_command(actuated_kits["private"])
    expire_now(command)

    answer = configurer.get(f"/kits/private-kit/commands/{command.id}").json()

    assert answer["status"] == "expired"
    assert answer["reason"] == "The kit did not answer before the command expired."
    assert configurer.get("/kits/private-kit/commands").json()["results"][0]["status"] == "expired"


def test_the_beat_task_marks_every_kits_late_commands_expired(actuated_kits):
    late = [a_command(actuated_kits["private"]), a_command(actuated_kits["public"])]
    in_time = a_command(actuated_kits["private"])
    for command in late:
        expire_now(command)

    tasks.commands_expire_task.apply()

    statuses = dict(Command.objects.values_list("id", "status"))
    assert statuses == {late[0].id: "expired", late[1].id: "expired", in_time.id: "queued"}


def test_an_answer_after_expiry_does_not_revive_the_command(actuated_kits):
    command = a_command(actuated_kits["private"])
    expire_now(command)
    services.commands_expire()

    recorded = services.command_result_record(
        kit_id="private-kit",
        command_id=str(command.id),
        status="succeeded",
        result={"uptime_seconds": 5, "software_version": "1.0.0"},
        reason=None,
        answered_at=timezone.now() - timedelta(seconds=5),
    )

    command.refresh_from_db()
    assert not recorded
    assert (command.status, command.result) == (CommandStatus.EXPIRED, None)


def test_an_answer_stamped_after_the_expiry_counts_as_none(actuated_kits):
    command = a_command(actuated_kits["private"])

    recorded = services.command_result_record(
        kit_id="private-kit",
        command_id=str(command.id),
        status="succeeded",
        result={},
        reason=None,
        answered_at=command.expires_at + timedelta(seconds=1),
    )

    command.refresh_from_db()
    assert not recorded and command.status == CommandStatus.EXPIRED


def test_the_first_answer_counts_and_a_redelivery_changes_nothing(actuated_kits):
    command = a_command(actuated_kits["private"])
    answer = {
        "kit_id": "private-kit",
        "command_id": str(command.id),
        "status": "failed",
        "result": None,
        "reason": "no camera",
        "answered_at": timezone.now(),
    }

    first = services.command_result_record(**answer)
    again = services.command_result_record(**{**answer, "status": "succeeded", "reason": None})

    command.refresh_from_db()
    assert (first, again) == (True, False)
    assert (command.status, command.reason) == (CommandStatus.FAILED, "no camera")


def test_a_kit_cannot_answer_another_kits_command(actuated_kits):
    command = a_command(actuated_kits["public"])

    with pytest.raises(ReportRefused, match="Kit 'private-kit' was sent no command"):
        services.command_result_record(
            kit_id="private-kit",
            command_id=str(command.id),
            status="succeeded",
            result={},
            reason=None,
            answered_at=timezone.now(),
        )
    command.refresh_from_db()
    assert command.status == CommandStatus.QUEUED


def test_an_expired_command_is_never_sent(actuated_kits, settings):
    # Given no broker at all: a send that tried to publish would raise BrokerUnavailable
    settings.BACKEND_MQTT_HOST, settings.BACKEND_MQTT_PORT = "127.0.0.1", 9
    command = a_command(actuated_kits["private"])
    expire_now(command)

    assert services.command_send(command_id=str(command.id)) is False

    command.refresh_from_db()
    assert command.status == CommandStatus.EXPIRED and command.sent_at is None


def test_a_command_answered_before_it_was_marked_sent_is_not_sent_again(actuated_kits, settings):
    settings.BACKEND_MQTT_HOST, settings.BACKEND_MQTT_PORT = "127.0.0.1", 9
    command = a_command(actuated_kits["private"])
    services.command_result_record(
        kit_id="private-kit",
        command_id=str(command.id),
        status="succeeded",
        result={"uptime_seconds": 1, "software_version": "1"},
        reason=None,
        answered_at=timezone.now(),
    )

    assert services.command_send(command_id=str(command.id)) is False
    command.refresh_from_db()
    assert command.status == CommandStatus.SUCCEEDED
