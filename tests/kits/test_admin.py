"""Admins register and find kits in the Django admin."""

import pytest

from kits.models import Kit, Membership, Sensor


@pytest.fixture
def admin_client(client, users):
    users["staff"].is_superuser = True
    users["staff"].save()
    client.force_login(users["staff"])
    return client


def _add_form(**fields):
    form = {
        "id": "",
        "name": "Greenhouse",
        "description": "",
        "admin_email": "",
        "sensors-TOTAL_FORMS": "1",
        "sensors-INITIAL_FORMS": "0",
        "sensors-0-key": "temperature",
        "sensors-0-quantity": "temperature",
        "sensors-0-unit": "°C",
        "memberships-TOTAL_FORMS": "1",
        "memberships-INITIAL_FORMS": "0",
        "memberships-0-user": "",
        "memberships-0-role": "viewer",
    }
    form.update(fields)
    return form


def test_an_admin_registers_a_kit_with_a_generated_id_sensors_and_an_owner(admin_client, users):
    response = admin_client.post(
        "/admin/kits/kit/add/", _add_form(**{"memberships-0-user": users["owner"].pk, "memberships-0-role": "owner"})
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    kit = Kit.objects.get(name="Greenhouse")
    assert kit.id.startswith("k-") and len(kit.id) == len("k-7f3a-c21e")
    assert list(Sensor.objects.filter(kit=kit).values_list("key", "unit")) == [("temperature", "°C")]
    assert Membership.objects.get(kit=kit).user == users["owner"]


def test_an_admin_may_choose_the_id(admin_client):
    response = admin_client.post("/admin/kits/kit/add/", _add_form(id="school-42"))

    assert response.status_code == 302
    assert Kit.objects.filter(pk="school-42", name="Greenhouse").exists()


def test_a_malformed_id_is_refused_with_the_rule(admin_client):
    response = admin_client.post("/admin/kits/kit/add/", _add_form(id="Bad Id"))

    assert response.status_code == 200
    assert b"lower-case letters, digits and hyphens" in response.content
    assert not Kit.objects.filter(name="Greenhouse").exists()


def test_kits_are_searchable_and_filterable(admin_client, private_kit, public_kit):
    found = admin_client.get("/admin/kits/kit/", {"q": "Private"})
    public_only = admin_client.get("/admin/kits/kit/", {"public__exact": "1"})

    assert b"private-kit" in found.content and b"public-kit" not in found.content
    assert b"public-kit" in public_only.content and b"private-kit" not in public_only.content


def test_the_id_cannot_be_changed_once_registered(admin_client, private_kit):
    page = admin_client.get("/admin/kits/kit/private-kit/change/")

    assert page.status_code == 200
    assert b'name="id"' not in page.content


def test_growers_cannot_enter_the_admin(client, users):
    client.force_login(users["owner"])

    response = client.get("/admin/kits/kit/")

    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
