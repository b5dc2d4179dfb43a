"""A kit's actuators and time zone in the registry: the API's input and output, the rule that a key
names a sensor or an actuator (not both), the admin's inline and form, and kit.toml."""

import tomllib

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from kits import bundles, registry
from kits.exceptions import KitInvalid
from kits.models import Actuator, Kit, Sensor
from kits.registry import ActuatorSpec, SensorSpec
from tests.support import admin_change_form

pytestmark = pytest.mark.django_db

LED = {"key": "led", "kind": "light", "dimmable": True}
FAN = {"key": "fan", "kind": "fan", "dimmable": False}
TEMPERATURE = {"key": "temperature", "quantity": "temperature", "unit": "°C"}


def _state():
    return (
        sorted(Kit.objects.values_list("id", "name", "time_zone")),
        sorted(Sensor.objects.values_list("kit_id", "key")),
        sorted(Actuator.objects.values_list("kit_id", "key", "kind", "dimmable")),
    )


def _actuators_of(kit_id: str) -> list[tuple[str, str, bool]]:
    return list(Actuator.objects.filter(kit_id=kit_id).order_by("key").values_list("key", "kind", "dimmable"))


@pytest.fixture
def staff_client(make_client, users):
    return make_client(users["staff"])


@pytest.fixture
def owner_client(make_client, users):
    return make_client(users["owner"])


@pytest.fixture
def lit_kit(private_kit):
    """The private kit (a temperature sensor) with a dimmable LED panel and an on/off fan, in Amsterdam."""
    registry.kit_update(
        kit=private_kit,
        time_zone="Europe/Amsterdam",
        actuators=[ActuatorSpec("led", "light", True), ActuatorSpec("fan", "fan", False)],
    )
    return private_kit


# --- POST /kits ------------------------------------------------------------------------------


def test_staff_register_a_kit_with_actuators_and_a_time_zone(staff_client):
    response = staff_client.post(
        "/kits",
        {
            "id": "lit",
            "name": "Lit kit",
            "time_zone": "Europe/Amsterdam",
            "sensors": [TEMPERATURE],
            "actuators": [LED, {"key": "pump", "kind": "pump"}],
        },
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["actuators"] == [
        {"key": "led", "kind": "light", "dimmable": True},
        {"key": "pump", "kind": "pump", "dimmable": False},  # on/off unless said otherwise
    ]
    assert body["time_zone"] == "Europe/Amsterdam"
    assert _actuators_of("lit") == [("led", "light", True), ("pump", "pump", False)]
    assert Kit.objects.get(pk="lit").time_zone == "Europe/Amsterdam"


def test_a_kit_registered_without_actuators_or_time_zone_has_none_and_utc(staff_client):
    response = staff_client.post("/kits", {"id": "plain", "name": "Plain"}, format="json")

    assert response.status_code == 201
    assert response.json()["actuators"] == []
    assert response.json()["time_zone"] == "UTC"


def _with(**fields):
    return {"name": "Kit", "sensors": [TEMPERATURE], **fields}


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        (_with(actuators="led"), "actuators", "list"),
        (_with(actuators=[LED] * 2), "actuators", "once"),
        (_with(actuators=[{"key": f"a{i}", "kind": "other"} for i in range(33)]), "actuators", "32"),
        (_with(actuators=["led"]), "actuators[0].non_field_errors", "dictionary"),
        (_with(actuators=[{"kind": "light"}]), "actuators[0].key", "required"),
        (_with(actuators=[{"key": "LED", "kind": "light"}]), "actuators[0].key", "lower-case"),
        (_with(actuators=[{"key": " led", "kind": "light"}]), "actuators[0].key", "lower-case"),
        (_with(actuators=[{"key": "9led", "kind": "light"}]), "actuators[0].key", "starting with a letter"),
        (_with(actuators=[{"key": "l" * 41, "kind": "light"}]), "actuators[0].key", "40"),
        (_with(actuators=[{"key": 7, "kind": "light"}]), "actuators[0].key", "lower-case"),
        (_with(actuators=[{"key": "led"}]), "actuators[0].kind", "required"),
        (_with(actuators=[{"key": "led", "kind": "laser"}]), "actuators[0].kind", "valid choice"),
        (_with(actuators=[{"key": "led", "kind": "light", "dimmable": "sometimes"}]), "actuators[0].dimmable", "bool"),
        (_with(actuators=[{"key": "led", "kind": "light", "dimmable": None}]), "actuators[0].dimmable", "null"),
        (_with(actuators=[{**LED, "pin": 18}]), "actuators[0].pin", "Unknown field"),
        # A key names a sensor or an actuator of the kit, not both.
        (_with(actuators=[FAN, {"key": "temperature", "kind": "heater"}]), "actuators[1].key", "already the key"),
        (_with(time_zone="Mars/Olympus_Mons"), "time_zone", "not a time zone"),
        (_with(time_zone="europe/amsterdam"), "time_zone", "not a time zone"),
        (_with(time_zone=""), "time_zone", "blank"),
        (_with(time_zone=2), "time_zone", "string"),
    ],
)
def test_registering_a_kit_with_bad_actuators_or_time_zone(staff_client, private_kit, body, field, words):
    before = _state()

    response = staff_client.post("/kits", body, format="json")

    assert response.status_code == 400, response.content
    error = response.json()
    assert words.lower() in " ".join(error["errors"][field]).lower(), error
    assert field in error["detail"]
    assert _state() == before


# --- PATCH /kits/{id} ----------------------------------------------------------------------------


def test_given_actuators_replace_all_of_the_kits_actuators(owner_client, lit_kit):
    response = owner_client.patch(
        "/kits/private-kit", {"actuators": [{"key": "heater", "kind": "heater"}, FAN]}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["actuators"] == [
        {"key": "fan", "kind": "fan", "dimmable": False},
        {"key": "heater", "kind": "heater", "dimmable": False},
    ]
    assert _actuators_of("private-kit") == [("fan", "fan", False), ("heater", "heater", False)]


def test_an_empty_list_removes_every_actuator(owner_client, lit_kit):
    response = owner_client.patch("/kits/private-kit", {"actuators": []}, format="json")

    assert response.status_code == 200
    assert response.json()["actuators"] == []
    assert _actuators_of("private-kit") == []


def test_a_change_without_actuators_leaves_them_and_the_time_zone_alone(owner_client, lit_kit):
    response = owner_client.patch("/kits/private-kit", {"name": "Renamed", "sensors": [TEMPERATURE]}, format="json")

    assert response.status_code == 200
    assert [a["key"] for a in response.json()["actuators"]] == ["fan", "led"]
    assert response.json()["time_zone"] == "Europe/Amsterdam"
    assert _actuators_of("private-kit") == [("fan", "fan", False), ("led", "light", True)]


def test_the_time_zone_can_be_changed(owner_client, lit_kit):
    response = owner_client.patch("/kits/private-kit", {"time_zone": "America/Sao_Paulo"}, format="json")

    assert response.status_code == 200
    assert response.json()["time_zone"] == "America/Sao_Paulo"
    assert Kit.objects.get(pk="private-kit").time_zone == "America/Sao_Paulo"


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        # an actuator taking the key of one of the kit's sensors
        ({"actuators": [LED, {"key": "temperature", "kind": "fan"}]}, "actuators[1].key", "of a sensor"),
        # a sensor taking the key of one of the kit's actuators
        ({"sensors": [TEMPERATURE, {"key": "led", "quantity": "light", "unit": "lux"}]}, "sensors[1].key", "actuator"),
        # both given: the new lists must keep apart
        ({"sensors": [{"key": "fan", "quantity": "other", "unit": "rpm"}], "actuators": [FAN]}, "actuators[0].key", ""),
        ({"actuators": [{"key": "led", "kind": "light", "dimmable": 1}]}, "actuators[0].dimmable", "boolean"),
        ({"actuators": [{"key": "led", "kind": "strobe"}]}, "actuators[0].kind", "valid choice"),
        ({"actuators": None}, "actuators", "null"),
        ({"time_zone": "UTC+2"}, "time_zone", "not a time zone"),
        ({"time_zone": None}, "time_zone", "null"),
    ],
)
def test_changing_actuators_with_bad_input_changes_nothing(owner_client, lit_kit, body, field, words):
    before = _state()

    response = owner_client.patch("/kits/private-kit", body, format="json")

    assert response.status_code == 400, response.content
    assert words.lower() in " ".join(response.json()["errors"][field]).lower(), response.json()
    assert _state() == before


def test_a_viewer_cannot_change_a_kits_actuators(make_client, users, lit_kit):
    before = _state()

    response = make_client(users["viewer"]).patch("/kits/private-kit", {"actuators": []}, format="json")

    assert response.status_code == 403
    assert _state() == before


def test_the_registry_keeps_keys_apart_whoever_calls_it(lit_kit):
    with pytest.raises(KitInvalid) as refused:
        registry.kit_actuators_replace(kit=lit_kit, actuators=[ActuatorSpec("temperature", "heater")])
    assert list(refused.value.field_errors) == ["actuators[0].key"]

    with pytest.raises(KitInvalid) as refused:
        registry.kit_register(
            name="Clash", sensors=[SensorSpec("led", "light", "lux")], actuators=[ActuatorSpec("led", "light")]
        )
    assert list(refused.value.field_errors) == ["actuators[0].key"]
    assert _actuators_of("private-kit") == [("fan", "fan", False), ("led", "light", True)]
    assert not Kit.objects.filter(name="Clash").exists()


# --- output ------------------------------------------------------------------------------------


def test_a_kits_actuators_and_time_zone_are_in_its_detail_for_anyone_who_may_see_it(make_client, users, lit_kit):
    for user in (users["viewer"], users["staff"]):
        body = make_client(user).get("/kits/private-kit").json()

        assert body["actuators"] == [
            {"key": "fan", "kind": "fan", "dimmable": False},
            {"key": "led", "kind": "light", "dimmable": True},
        ]
        assert body["time_zone"] == "Europe/Amsterdam"


def test_the_kit_list_shows_each_kits_actuators_reading_them_in_one_query(make_client, users, public_kit, lit_kit):
    # Given more kits with actuators of their own
    for number in range(3):
        registry.kit_register(
            id=f"more-{number}", name=f"More {number}", actuators=[ActuatorSpec(f"pump_{number}", "pump")]
        )

    # When staff list the kits
    with CaptureQueriesContext(connection) as captured:
        response = make_client(users["staff"]).get("/kits?page_size=200")

    # Then each kit has its own actuators, read for the whole page at once
    assert response.status_code == 200
    listed = {kit["id"]: kit for kit in response.json()["results"]}
    assert [a["key"] for a in listed["private-kit"]["actuators"]] == ["fan", "led"]
    assert listed["private-kit"]["time_zone"] == "Europe/Amsterdam"
    assert listed["more-2"]["actuators"] == [{"key": "pump_2", "kind": "pump", "dimmable": False}]
    assert listed["public-kit"]["actuators"] == []
    actuator_table = Actuator._meta.db_table
    assert sum(f'"{actuator_table}"' in query["sql"] for query in captured.captured_queries) == 1


# --- the admin -----------------------------------------------------------------------------------


@pytest.fixture
def admin_client(client, users):
    users["staff"].is_superuser = True
    users["staff"].save()
    client.force_login(users["staff"])
    return client


def _admin_add_form(**fields):
    form = {
        "id": "admin-lit",
        "name": "Greenhouse",
        "description": "",
        "admin_email": "",
        "time_zone": "Europe/Lisbon",
        "sensors-TOTAL_FORMS": "1",
        "sensors-INITIAL_FORMS": "0",
        "sensors-0-key": "temperature",
        "sensors-0-quantity": "temperature",
        "sensors-0-unit": "°C",
        "actuators-TOTAL_FORMS": "2",
        "actuators-INITIAL_FORMS": "0",
        "actuators-0-key": "led",
        "actuators-0-kind": "light",
        "actuators-0-dimmable": "on",
        "actuators-1-key": "fan",
        "actuators-1-kind": "fan",
        "memberships-TOTAL_FORMS": "0",
        "memberships-INITIAL_FORMS": "0",
    }
    form.update(fields)
    return form


def test_an_admin_registers_a_kit_with_actuators_and_a_time_zone(admin_client):
    response = admin_client.post("/admin/kits/kit/add/", _admin_add_form())

    assert response.status_code == 302, response.content.decode()[:3000]
    assert _actuators_of("admin-lit") == [("fan", "fan", False), ("led", "light", True)]
    assert Kit.objects.get(pk="admin-lit").time_zone == "Europe/Lisbon"


def test_the_admin_refuses_an_actuator_with_a_sensors_key_as_a_form_error(admin_client):
    response = admin_client.post("/admin/kits/kit/add/", _admin_add_form(**{"actuators-1-key": "temperature"}))

    assert response.status_code == 200
    assert "temperature: already the key of a sensor of this kit" in response.content.decode()
    assert not Kit.objects.filter(pk="admin-lit").exists()


def test_the_admin_refuses_an_unknown_time_zone(admin_client):
    response = admin_client.post("/admin/kits/kit/add/", _admin_add_form(time_zone="Atlantis/Capital"))

    assert response.status_code == 200
    assert "Atlantis/Capital" in response.content.decode()
    assert not Kit.objects.filter(pk="admin-lit").exists()


def test_the_change_page_shows_the_actuators_and_the_time_zone_picker(admin_client, lit_kit):
    html = admin_client.get("/admin/kits/kit/private-kit/change/").content.decode()
    form = admin_change_form(html)

    assert form["time_zone"] == "Europe/Amsterdam"
    assert '<option value="Pacific/Auckland">' in html  # picked from the list, not typed
    assert sorted(form[f"actuators-{i}-key"] for i in range(int(form["actuators-INITIAL_FORMS"]))) == ["fan", "led"]


def test_an_admin_edits_adds_and_removes_actuators_through_the_registry(admin_client, lit_kit):
    # Given the change page as it is (fan, then led)
    form = admin_change_form(admin_client.get("/admin/kits/kit/private-kit/change/").content.decode())
    rows = {form[f"actuators-{i}-key"]: i for i in range(2)}

    # When the admin makes the LED on/off, removes the fan, adds a heater and moves the kit
    del form[f"actuators-{rows['led']}-dimmable"]
    form[f"actuators-{rows['fan']}-DELETE"] = "on"
    extra = form["actuators-TOTAL_FORMS"]
    form.update({f"actuators-{extra}-key": "heater", f"actuators-{extra}-kind": "heater"})
    form["actuators-TOTAL_FORMS"] = str(int(extra) + 1)
    form["time_zone"] = "Asia/Tokyo"
    response = admin_client.post("/admin/kits/kit/private-kit/change/", form)

    # Then the kit has exactly that, and the change history says what changed
    assert response.status_code == 302, response.content.decode()[:3000]
    assert _actuators_of("private-kit") == [("heater", "heater", False), ("led", "light", False)]
    assert Kit.objects.get(pk="private-kit").time_zone == "Asia/Tokyo"
    history = admin_client.get("/admin/kits/kit/private-kit/history/").content.decode()
    assert "Added actuator “private-kit/heater”" in history
    assert "Changed Dimmable for actuator “private-kit/led”" in history
    assert "Deleted actuator “private-kit/fan”" in history


def test_an_admin_cannot_rename_a_sensor_to_an_actuators_key(admin_client, lit_kit):
    form = admin_change_form(admin_client.get("/admin/kits/kit/private-kit/change/").content.decode())
    form["sensors-0-key"] = "led"

    response = admin_client.post("/admin/kits/kit/private-kit/change/", form)

    assert response.status_code == 200
    assert "led: already the key of a sensor of this kit" in response.content.decode()
    assert list(Sensor.objects.filter(kit=lit_kit).values_list("key", flat=True)) == ["temperature"]


# --- kit.toml ----------------------------------------------------------------------------------


def test_kit_toml_lists_the_actuators_with_simulated_drivers_and_the_time_zone():
    config = bundles.DeviceConfig(
        kit_id="k-1",
        thing_name="astroplant-k-1",
        endpoint="localhost",
        port=8883,
        topics={"measurements": "astroplant/kits/astroplant-k-1/measurements"},
        sensors=[bundles.SensorConfig("temperature", "temperature", "°C", None, None)],
        actuators=[bundles.ActuatorConfig("led", "light", True), bundles.ActuatorConfig("fan", "fan", False)],
        time_zone="Europe/Amsterdam",
    )

    document = tomllib.loads(bundles.device_config_toml(config))

    assert document["kit"]["time_zone"] == "Europe/Amsterdam"
    assert document["actuators"] == [
        {"key": "led", "kind": "light", "dimmable": True, "driver": "simulated", "options": {}},
        {"key": "fan", "kind": "fan", "dimmable": False, "driver": "simulated", "options": {}},
    ]
