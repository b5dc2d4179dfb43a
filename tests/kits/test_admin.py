"""Admins register and find kits in the Django admin."""

from datetime import timedelta

import pytest
from django.contrib import messages
from django.contrib.admin.models import CHANGE, DELETION, LogEntry
from django.utils import timezone

from kits import provisioning, registry
from kits.models import Kit, Membership, Role, Sensor
from tests.support import admin_change_form


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
        "time_zone": "UTC",
        "sensors-TOTAL_FORMS": "1",
        "sensors-INITIAL_FORMS": "0",
        "sensors-0-key": "temperature",
        "sensors-0-quantity": "temperature",
        "sensors-0-unit": "°C",
        "actuators-TOTAL_FORMS": "1",
        "actuators-INITIAL_FORMS": "0",
        "actuators-0-key": "",
        "actuators-0-kind": "",
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


# --- Deleting kits goes through kit_delete -------------------------------------------------------


@pytest.fixture
def active_kit(moto_server, unique_kit_id):
    """A kit live on AWS IoT: a thing with an active certificate."""
    kit = registry.kit_register(id=unique_kit_id(), name="Live on AWS")
    provisioning.kit_provision(kit_id=kit.id)
    return Kit.objects.get(pk=kit.id)


def _messages(response) -> list[tuple[int, str]]:
    return [(message.level, message.message) for message in response.context["messages"]]


@pytest.mark.integration
def test_deleting_a_kit_live_on_aws_iot_in_the_admin_is_refused_as_in_the_api(admin_client, active_kit, iot):
    # When an admin confirms the deletion of a kit that still has its thing and certificate
    response = admin_client.post(f"/admin/kits/kit/{active_kit.id}/delete/", {"post": "yes"}, follow=True)

    # Then they are told, as an error, what the API would say, and nothing is deleted
    assert (
        messages.ERROR,
        f"Kit '{active_kit.id}' still has its AWS IoT thing and certificate: decommission it first "
        "(an admin action), then delete it.",
    ) in _messages(response)
    assert response.redirect_chain[-1][0] == f"/admin/kits/kit/{active_kit.id}/change/"
    assert Kit.objects.get(pk=active_kit.id).certificates.count() == 1
    assert iot.describe_thing(thingName=active_kit.thing_name)["thingArn"] == active_kit.thing_arn
    assert not LogEntry.objects.filter(object_id=active_kit.id, action_flag=DELETION).exists()


@pytest.mark.integration
def test_deleting_selected_kits_deletes_those_kit_delete_allows_and_says_why_not_the_others(
    admin_client, active_kit, private_kit, public_kit
):
    # Given a kit a worker is changing on AWS IoT right now
    Kit.objects.filter(pk=public_kit.id).update(
        provisioning_lease_token="a-worker", provisioning_lease_expires_at=timezone.now() + timedelta(minutes=1)
    )

    # When an admin deletes it, a kit live on AWS IoT and one never provisioned, all at once
    selected = [active_kit.id, private_kit.id, public_kit.id]
    response = admin_client.post(
        "/admin/kits/kit/", {"action": "delete_selected", "_selected_action": selected, "post": "yes"}, follow=True
    )

    # Then only the one never provisioned is deleted, and the admin reads why not the others
    shown = _messages(response)
    assert (messages.SUCCESS, "Successfully deleted 1 kit.") in shown
    assert (
        messages.ERROR,
        f"Kit '{active_kit.id}' still has its AWS IoT thing and certificate: decommission it first "
        "(an admin action), then delete it.",
    ) in shown
    assert (
        messages.ERROR,
        "A worker is changing kit 'public-kit' on AWS IoT right now: try again in a minute.",
    ) in shown
    assert set(Kit.objects.filter(pk__in=selected).values_list("pk", flat=True)) == {active_kit.id, public_kit.id}
    assert list(LogEntry.objects.filter(action_flag=DELETION).values_list("object_id", flat=True)) == ["private-kit"]


# --- Memberships edited in the admin go through the membership services ---------------------------


def _membership_rows(form: dict[str, str]) -> dict[str, str]:
    """The memberships inline's row prefix of each member's user id, in the posted form."""
    return {
        value: key.removesuffix("-user")
        for key, value in form.items()
        if key.startswith("memberships-") and key.endswith("-user") and value
    }


def test_removing_a_kits_last_owner_in_the_admin_is_refused_and_nothing_is_saved(admin_client, private_kit, users):
    # Given the kit's change page, on which an admin renames the kit and removes its only owner
    form = admin_change_form(admin_client.get("/admin/kits/kit/private-kit/change/").content.decode())
    form["name"] = "Renamed"
    form[_membership_rows(form)[str(users["owner"].pk)] + "-DELETE"] = "on"

    # When they save
    response = admin_client.post("/admin/kits/kit/private-kit/change/", form)

    # Then the page comes back with the rule, and neither change is saved
    assert response.status_code == 200
    assert "A kit keeps at least one owner: make someone else owner first." in response.content.decode()
    assert Kit.objects.get(pk="private-kit").name == "Private kit"
    assert Membership.objects.get(kit=private_kit, user=users["owner"]).role == Role.OWNER


def test_demoting_a_kits_last_owner_in_the_admin_is_refused(admin_client, private_kit, users):
    form = admin_change_form(admin_client.get("/admin/kits/kit/private-kit/change/").content.decode())
    form[_membership_rows(form)[str(users["owner"].pk)] + "-role"] = Role.VIEWER

    response = admin_client.post("/admin/kits/kit/private-kit/change/", form)

    assert response.status_code == 200
    assert "A kit keeps at least one owner: make someone else owner first." in response.content.decode()
    assert Membership.objects.get(kit=private_kit, user=users["owner"]).role == Role.OWNER


def test_an_inactive_user_cannot_be_made_a_member_in_the_admin(admin_client, private_kit, users):
    users["nonmember"].is_active = False
    users["nonmember"].save()
    form = admin_change_form(admin_client.get("/admin/kits/kit/private-kit/change/").content.decode())
    extra = f"memberships-{form['memberships-TOTAL_FORMS']}"
    form.update({f"{extra}-user": users["nonmember"].pk, f"{extra}-role": Role.VIEWER})
    form["memberships-TOTAL_FORMS"] = str(int(form["memberships-TOTAL_FORMS"]) + 1)

    response = admin_client.post("/admin/kits/kit/private-kit/change/", form)

    assert response.status_code == 200
    assert "There is no active user &#x27;nonmember&#x27;." in response.content.decode()
    assert not Membership.objects.filter(kit=private_kit, user=users["nonmember"]).exists()


def test_an_admin_hands_a_kit_to_a_new_owner_in_one_save(admin_client, private_kit, users):
    # Given the change page, on which an admin makes the viewer owner, removes the owner and
    # adds a new viewer
    form = admin_change_form(admin_client.get("/admin/kits/kit/private-kit/change/").content.decode())
    rows = _membership_rows(form)
    form[rows[str(users["viewer"].pk)] + "-role"] = Role.OWNER
    form[rows[str(users["owner"].pk)] + "-DELETE"] = "on"
    extra = f"memberships-{form['memberships-TOTAL_FORMS']}"
    form.update({f"{extra}-user": users["nonmember"].pk, f"{extra}-role": Role.VIEWER})
    form["memberships-TOTAL_FORMS"] = str(int(form["memberships-TOTAL_FORMS"]) + 1)

    # When they save, then it is saved as asked
    response = admin_client.post("/admin/kits/kit/private-kit/change/", form)

    assert response.status_code == 302, response.content.decode()[:3000]
    assert dict(Membership.objects.filter(kit=private_kit).values_list("user__username", "role")) == {
        "viewer": Role.OWNER,
        "configurer": Role.CONFIGURER,
        "nonmember": Role.VIEWER,
    }
    # and the kit's history says so
    assert LogEntry.objects.get(object_id="private-kit", action_flag=CHANGE).get_change_message() == (
        "Added membership “nonmember is viewer of private-kit”. "
        "Changed Role for membership “viewer is owner of private-kit”. "
        "Deleted membership “owner is owner of private-kit”."
    )


def test_registering_a_kit_with_an_inactive_member_in_the_admin_registers_nothing(admin_client, users):
    # Given an admin registering a kit with a user who has since been deactivated as its owner
    users["owner"].is_active = False
    users["owner"].save()
    form = _add_form(**{"memberships-0-user": users["owner"].pk, "memberships-0-role": "owner"})

    # When they save
    response = admin_client.post("/admin/kits/kit/add/", form, follow=True)

    # Then they read why, and no kit is registered (nor its provisioning queued)
    assert (messages.ERROR, "There is no active user 'owner'.") in _messages(response)
    assert not Kit.objects.filter(name="Greenhouse").exists()
