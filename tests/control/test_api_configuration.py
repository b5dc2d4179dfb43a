"""GET and PUT /kits/{id}/configuration and its history: the defaults of a kit never configured,
versions that only go up, the history, and a 400 naming each field the kit could not run."""

import threading

import pytest
from django.db import connection

from control import selectors, services
from control.exceptions import ControlInvalid
from control.models import ConfigurationVersion

pytestmark = pytest.mark.django_db

ANSWER_FIELDS = {"version", "desired", "reported", "status", "reason", "changed_by", "changed_at", "applied_at"}
SCHEDULE = {"mode": "schedule", "periods": [{"from": "06:00", "to": "22:00", "level": 80}]}
COOLING = {"mode": "thermostat", "sensor": "temperature", "on_above": 26.0, "off_below": 25.0}


@pytest.fixture
def configurer(make_client, users, actuated_kits):
    return make_client(users["configurer"])


def put(client, desired, kit="private-kit"):
    return client.put(f"/kits/{kit}/configuration", {"desired": desired}, format="json")


def test_a_kit_never_configured_answers_its_defaults(make_client, users, actuated_kits, settings):
    settings.KIT_DEFAULT_INTERVAL_SECONDS = 45

    response = make_client(users["viewer"]).get("/kits/private-kit/configuration")

    assert response.status_code == 200
    assert response.json() == {
        "version": 0,
        "desired": {
            "interval_seconds": 45,
            "sensors": {"temperature": {"enabled": True, "offset": 0.0, "scale": 1.0}},
            "actuators": {"fan": {"mode": "off"}, "led": {"mode": "off"}},
        },
        "reported": None,
        "status": "pending",
        "reason": None,
        "changed_by": None,
        "changed_at": None,
        "applied_at": None,
    }


def test_a_change_becomes_the_next_version_completed_with_the_defaults(configurer):
    response = put(configurer, {"interval_seconds": 2, "actuators": {"led": SCHEDULE, "fan": COOLING}})

    assert response.status_code == 200
    body = response.json()
    assert set(body) == ANSWER_FIELDS
    assert body["version"] == 1
    assert body["desired"] == {
        "interval_seconds": 2,
        "sensors": {"temperature": {"enabled": True, "offset": 0.0, "scale": 1.0}},
        "actuators": {"led": SCHEDULE, "fan": {**COOLING, "level": 100}},
    }
    assert (body["status"], body["reported"], body["reason"], body["applied_at"]) == ("pending", None, None, None)
    assert body["changed_by"] == "configurer" and body["changed_at"]
    assert configurer.get("/kits/private-kit/configuration").json() == body


def test_each_change_raises_the_version_and_the_history_keeps_every_one(make_client, users, configurer):
    put(configurer, {"interval_seconds": 10})
    put(make_client(users["owner"]), {"interval_seconds": 20})
    third = put(make_client(users["staff"]), {"interval_seconds": 30}).json()

    assert third["version"] == 3
    history = make_client(users["viewer"]).get("/kits/private-kit/configuration/history").json()
    assert history["count"] == 3
    assert [(v["version"], v["changed_by"], v["desired"]["interval_seconds"]) for v in history["results"]] == [
        (3, "staff", 30),
        (2, "owner", 20),
        (1, "configurer", 10),
    ]
    assert set(history["results"][0]) == {"version", "desired", "changed_by", "changed_at"}
    page = configurer.get("/kits/private-kit/configuration/history?page=2&page_size=2").json()
    assert [v["version"] for v in page["results"]] == [1]


def test_versions_are_per_kit(configurer):
    put(configurer, {"interval_seconds": 10})

    assert put(configurer, {"interval_seconds": 10}, kit="public-kit").json()["version"] == 1


def test_the_history_keeps_who_after_they_are_deleted(configurer, users):
    put(configurer, {"interval_seconds": 10})
    users["configurer"].delete()

    assert ConfigurationVersion.objects.get().changed_by_username == "configurer"


@pytest.mark.django_db(transaction=True)
def test_two_changes_at_once_never_get_one_version(users, actuated_kits):
    kit = actuated_kits["private"]
    start = threading.Barrier(4)
    errors = []

    def change(seconds):
        try:
            start.wait()
            services.configuration_change(kit=kit, desired={"interval_seconds": seconds}, user=users["owner"])
        except Exception as error:  # noqa: BLE001 (reported by the assertion below)
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=change, args=(10 + n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    versions = sorted(ConfigurationVersion.objects.filter(kit=kit).values_list("version", flat=True))
    assert versions == [1, 2, 3, 4]
    assert selectors.configuration_of_kit(kit=kit).version == 4


# --- Bad input ------------------------------------------------------------------------------------

BAD_DESIRED = [
    ("not an object", "nope", "desired"),
    ("unknown part", {"interval_seconds": 60, "colour": "red"}, "desired.colour"),
    ("interval missing", {"sensors": {}}, "desired.interval_seconds"),
    ("interval too short", {"interval_seconds": 1}, "desired.interval_seconds"),
    ("interval too long", {"interval_seconds": 3601}, "desired.interval_seconds"),
    ("interval not whole", {"interval_seconds": 2.5}, "desired.interval_seconds"),
    ("interval as text", {"interval_seconds": "60"}, "desired.interval_seconds"),
    ("interval as boolean", {"interval_seconds": True}, "desired.interval_seconds"),
    ("sensors not an object", {"interval_seconds": 60, "sensors": []}, "desired.sensors"),
    ("unknown sensor", {"interval_seconds": 60, "sensors": {"co2": {}}}, "desired.sensors.co2"),
    (
        "unknown sensor field",
        {"interval_seconds": 60, "sensors": {"temperature": {"gain": 2}}},
        "desired.sensors.temperature.gain",
    ),
    (
        "enabled not a boolean",
        {"interval_seconds": 60, "sensors": {"temperature": {"enabled": "yes"}}},
        "desired.sensors.temperature.enabled",
    ),
    (
        "offset not a number",
        {"interval_seconds": 60, "sensors": {"temperature": {"offset": "1"}}},
        "desired.sensors.temperature.offset",
    ),
    (
        "scale zero",
        {"interval_seconds": 60, "sensors": {"temperature": {"scale": 0}}},
        "desired.sensors.temperature.scale",
    ),
    ("actuators not an object", {"interval_seconds": 60, "actuators": []}, "desired.actuators"),
    ("unknown actuator", {"interval_seconds": 60, "actuators": {"pump": {"mode": "off"}}}, "desired.actuators.pump"),
    ("unknown mode", {"interval_seconds": 60, "actuators": {"led": {"mode": "disco"}}}, "desired.actuators.led.mode"),
    (
        "unknown rule field",
        {"interval_seconds": 60, "actuators": {"led": {"mode": "off", "level": 5}}},
        "desired.actuators.led.level",
    ),
    (
        "level above 100",
        {"interval_seconds": 60, "actuators": {"led": {"mode": "on", "level": 150}}},
        "desired.actuators.led.level",
    ),
    (
        "level below 0",
        {"interval_seconds": 60, "actuators": {"led": {"mode": "on", "level": -1}}},
        "desired.actuators.led.level",
    ),
    (
        "on/off actuator dimmed",
        {"interval_seconds": 60, "actuators": {"fan": {"mode": "on", "level": 50}}},
        "desired.actuators.fan.level",
    ),
    (
        "no periods",
        {"interval_seconds": 60, "actuators": {"led": {"mode": "schedule", "periods": []}}},
        "desired.actuators.led.periods",
    ),
    (
        "time of day wrong",
        {
            "interval_seconds": 60,
            "actuators": {"led": {"mode": "schedule", "periods": [{"from": "25:00", "to": "06:00"}]}},
        },
        "desired.actuators.led.periods.0.from",
    ),
    (
        "period ends as it starts",
        {
            "interval_seconds": 60,
            "actuators": {"led": {"mode": "schedule", "periods": [{"from": "06:00", "to": "06:00"}]}},
        },
        "desired.actuators.led.periods.0.to",
    ),
    (
        "overlapping periods",
        {
            "interval_seconds": 60,
            "actuators": {
                "led": {
                    "mode": "schedule",
                    "periods": [{"from": "06:00", "to": "12:00"}, {"from": "11:00", "to": "13:00"}],
                }
            },
        },
        "desired.actuators.led.periods.1",
    ),
    (
        "overlapping over midnight",
        {
            "interval_seconds": 60,
            "actuators": {
                "led": {
                    "mode": "schedule",
                    "periods": [{"from": "22:00", "to": "06:00"}, {"from": "05:00", "to": "07:00"}],
                }
            },
        },
        "desired.actuators.led.periods.1",
    ),
    (
        "thermostat on an unknown sensor",
        {"interval_seconds": 60, "actuators": {"fan": {**COOLING, "sensor": "humidity"}}},
        "desired.actuators.fan.sensor",
    ),
    (
        "cooling thresholds in the wrong order",
        {"interval_seconds": 60, "actuators": {"fan": {**COOLING, "on_above": 25.0, "off_below": 25.0}}},
        "desired.actuators.fan.off_below",
    ),
    (
        "heating thresholds in the wrong order",
        {
            "interval_seconds": 60,
            "actuators": {"fan": {"mode": "thermostat", "sensor": "temperature", "on_below": 18.0, "off_above": 17.0}},
        },
        "desired.actuators.fan.off_above",
    ),
    (
        "cooling and heating at once",
        {"interval_seconds": 60, "actuators": {"fan": {**COOLING, "on_below": 10.0}}},
        "desired.actuators.fan",
    ),
    (
        "threshold not a number",
        {"interval_seconds": 60, "actuators": {"fan": {**COOLING, "on_above": "hot"}}},
        "desired.actuators.fan.on_above",
    ),
]


@pytest.mark.parametrize(("desired", "field"), [case[1:] for case in BAD_DESIRED], ids=[c[0] for c in BAD_DESIRED])
def test_a_configuration_the_kit_cannot_run_is_refused_per_field(configurer, desired, field):
    response = put(configurer, desired)

    assert response.status_code == 400, response.content
    body = response.json()
    assert field in body["errors"], body
    assert all(isinstance(message, str) and message for message in body["errors"][field])
    assert body["detail"].startswith("Invalid input: ")
    assert not ConfigurationVersion.objects.exists()  # nothing stored, nothing sent


def test_every_problem_is_named_at_once(configurer):
    response = put(
        configurer,
        {"interval_seconds": 1, "sensors": {"co2": {}}, "actuators": {"led": {"mode": "on", "level": 101}}},
    )

    assert set(response.json()["errors"]) == {
        "desired.interval_seconds",
        "desired.sensors.co2",
        "desired.actuators.led.level",
    }


@pytest.mark.parametrize(
    ("body", "field"),
    [({}, "desired"), ({"desired": {"interval_seconds": 60}, "version": 3}, "version")],
)
def test_the_body_takes_desired_and_nothing_else(configurer, body, field):
    response = configurer.put("/kits/private-kit/configuration", body, format="json")

    assert response.status_code == 400
    assert field in response.json()["errors"]


def test_the_service_says_the_same_to_every_caller(actuated_kits, users):
    with pytest.raises(ControlInvalid) as refused:
        services.configuration_change(
            kit=actuated_kits["private"], desired={"interval_seconds": 0}, user=users["staff"]
        )

    assert list(refused.value.field_errors) == ["desired.interval_seconds"]


def test_a_new_time_zone_reaches_the_kit_as_a_new_version_of_the_same_configuration(
    make_client, users, configurer, actuated_kits, django_capture_on_commit_callbacks
):
    # Given a kit configured with a schedule
    put(configurer, {"interval_seconds": 30, "actuators": {"led": SCHEDULE}})
    owner = make_client(users["owner"])

    # When its owner moves it to another time zone
    with django_capture_on_commit_callbacks() as queued:
        response = owner.patch("/kits/private-kit", {"time_zone": "Asia/Tokyo"}, format="json")

    # Then the same configuration is version 2, queued to be published (with the new zone)
    assert response.status_code == 200, response.content
    state = configurer.get("/kits/private-kit/configuration").json()
    assert state["version"] == 2 and state["status"] == "pending"
    assert state["desired"] == ConfigurationVersion.objects.get(kit_id="private-kit", version=1).desired
    assert len(queued) == 1
    # and a PATCH that leaves the zone as it is makes no version
    owner.patch("/kits/private-kit", {"time_zone": "Asia/Tokyo", "name": "Renamed"}, format="json")
    assert configurer.get("/kits/private-kit/configuration").json()["version"] == 2


def test_a_kit_never_configured_gets_no_version_for_a_new_time_zone(make_client, users, actuated_kits):
    make_client(users["owner"]).patch("/kits/private-kit", {"time_zone": "Asia/Tokyo"}, format="json")

    assert make_client(users["viewer"]).get("/kits/private-kit/configuration").json()["version"] == 0
