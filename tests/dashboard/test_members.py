"""Kit owners manage members from the dashboard: add by username or e-mail, change a role,
remove. Only owners and staff may; everyone else is refused exactly as by the API."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from kits.models import Membership, Role


@pytest.fixture
def kit(make_kit, users):
    return make_kit(
        owner=users["owner"],
        members={users["viewer"]: Role.VIEWER, users["configurer"]: Role.CONFIGURER},
        name="Greenhouse",
    )


def roles_of(kit) -> dict[str, str]:
    return dict(Membership.objects.filter(kit=kit).values_list("user__username", "role"))


def members_url(kit, suffix=""):
    return f"/dashboard/kits/{kit.id}/members/{suffix}"


# --- who may manage ------------------------------------------------------------------------


def test_owner_sees_the_members_with_their_roles(client, kit, users):
    client.force_login(users["owner"])

    response = client.get(members_url(kit))

    assert response.status_code == 200
    html = response.content.decode()
    for username, role in [("owner", "owner"), ("viewer", "viewer"), ("configurer", "configurer")]:
        row = html.split(f'data-member="{username}"')[1].split("</tr>")[0]
        assert f'<option value="{role}" selected>' in row


def test_staff_may_manage_members_of_any_kit(client, kit, users):
    client.force_login(users["staff"])

    assert client.get(members_url(kit)).status_code == 200


@pytest.mark.parametrize("role", ["viewer", "configurer"])
def test_members_who_are_not_owners_are_refused(client, kit, users, role):
    client.force_login(users[role])

    assert client.get(members_url(kit)).status_code == 403
    response = client.post(members_url(kit, "add"), {"member": "nonmember", "role": "owner"})
    assert response.status_code == 403
    assert "nonmember" not in roles_of(kit)


def test_non_member_gets_404_for_a_private_kits_members(client, kit, users):
    client.force_login(users["nonmember"])

    assert client.get(members_url(kit)).status_code == 404
    assert client.post(members_url(kit, "viewer/remove")).status_code == 404
    assert "viewer" in roles_of(kit)


def test_anonymous_visitor_is_sent_to_sign_in(client, kit):
    response = client.get(members_url(kit))

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


# --- adding ----------------------------------------------------------------------------------


def test_owner_adds_a_member_by_username(client, kit, users):
    client.force_login(users["owner"])

    response = client.post(members_url(kit, "add"), {"member": "nonmember", "role": "viewer"}, follow=True)

    assert roles_of(kit)["nonmember"] == "viewer"
    assert "nonmember is now a viewer of Greenhouse." in response.content.decode()


def test_owner_adds_a_member_by_email_in_any_case(client, kit, users):
    client.force_login(users["owner"])

    client.post(members_url(kit, "add"), {"member": "NonMember@Example.ORG", "role": "configurer"})

    assert roles_of(kit)["nonmember"] == "configurer"


def test_a_username_that_looks_like_an_email_wins_over_an_email(client, kit, users):
    User = get_user_model()
    User.objects.create_user("lee@example.org", "someone-else@example.org", "pw")
    User.objects.create_user("lee", "lee@example.org", "pw")
    client.force_login(users["owner"])

    client.post(members_url(kit, "add"), {"member": "lee@example.org", "role": "viewer"})

    assert "lee@example.org" in roles_of(kit)
    assert "lee" not in roles_of(kit)


def test_an_email_two_users_share_asks_for_the_username(client, kit, users):
    User = get_user_model()
    User.objects.create_user("twin-a", "twins@example.org", "pw")
    User.objects.create_user("twin-b", "twins@example.org", "pw")
    client.force_login(users["owner"])

    response = client.post(members_url(kit, "add"), {"member": "twins@example.org", "role": "viewer"})

    assert response.status_code == 400
    assert "Several users have the e-mail" in response.content.decode()
    assert not {"twin-a", "twin-b"} & set(roles_of(kit))


def test_adding_someone_unknown_says_so_and_keeps_the_input(client, kit, users):
    client.force_login(users["owner"])

    response = client.post(members_url(kit, "add"), {"member": "nobody@example.org", "role": "viewer"})

    assert response.status_code == 400
    html = response.content.decode()
    assert "There is no active user with the username or e-mail" in html
    assert 'value="nobody@example.org"' in html
    assert 'aria-invalid="true"' in html


def test_adding_an_existing_member_says_to_change_the_role_instead(client, kit, users):
    client.force_login(users["owner"])

    response = client.post(members_url(kit, "add"), {"member": "viewer", "role": "owner"})

    assert response.status_code == 400
    assert "already a viewer of this kit; change the role instead" in response.content.decode()
    assert roles_of(kit)["viewer"] == "viewer"


def test_adding_with_an_unknown_role_is_refused(client, kit, users):
    client.force_login(users["owner"])

    response = client.post(members_url(kit, "add"), {"member": "nonmember", "role": "emperor"})

    assert response.status_code == 400
    assert "nonmember" not in roles_of(kit)


# --- changing a role and removing --------------------------------------------------------------


def test_owner_changes_a_members_role(client, kit, users):
    client.force_login(users["owner"])

    response = client.post(members_url(kit, "viewer/role"), {"role": "configurer"}, follow=True)

    assert roles_of(kit)["viewer"] == "configurer"
    assert "viewer is now a configurer of Greenhouse." in response.content.decode()


def test_the_last_owner_cannot_step_down(client, kit, users):
    client.force_login(users["owner"])

    response = client.post(members_url(kit, "owner/role"), {"role": "viewer"}, follow=True)

    assert roles_of(kit)["owner"] == "owner"
    assert "A kit keeps at least one owner" in response.content.decode()


def test_owner_removes_a_member_who_then_loses_the_kit(client, kit, users):
    client.force_login(users["owner"])

    response = client.post(members_url(kit, "viewer/remove"), follow=True)

    assert "viewer" not in roles_of(kit)
    assert "viewer no longer has access to Greenhouse." in response.content.decode()
    removed = Client()
    removed.force_login(users["viewer"])
    assert removed.get(members_url(kit)).status_code == 404


def test_an_owner_who_leaves_is_sent_home(client, kit, users):
    Membership.objects.filter(kit=kit, user=users["configurer"]).update(role=Role.OWNER)
    client.force_login(users["owner"])

    response = client.post(members_url(kit, "owner/remove"))

    assert response.status_code == 302
    assert response["Location"] == "/"
    assert "owner" not in roles_of(kit)


def test_removing_someone_who_is_not_a_member_is_404(client, kit, users):
    client.force_login(users["owner"])

    assert client.post(members_url(kit, "nonmember/remove")).status_code == 404


def test_member_forms_need_the_csrf_token(kit, users):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(users["owner"])

    response = browser.post(members_url(kit, "add"), {"member": "nonmember", "role": "owner"})

    assert response.status_code == 403
    assert "nonmember" not in roles_of(kit)


def test_member_changes_are_posts_only(client, kit, users):
    client.force_login(users["owner"])

    assert client.get(members_url(kit, "viewer/remove")).status_code == 405
    assert "viewer" in roles_of(kit)
