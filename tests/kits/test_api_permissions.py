"""The permission matrix: every kit endpoint and method, for every kind of caller.

Given a private kit and a public kit, each with a viewer, a configurer and an owner, when each
caller tries each request, then it gets exactly the status in the table, and a refused request
changes nothing. A kit the caller may not see answers 404, exactly like a kit that does not exist.
"""

import pytest

from kits.models import Kit, Membership, Sensor

CALLERS = ["anonymous", "nonmember", "viewer", "configurer", "owner", "staff"]

# Status per caller, in CALLERS order.
SEES_PRIVATE = [404, 404, 200, 200, 200, 200]
SEES_PUBLIC = [200, 200, 200, 200, 200, 200]
MANAGES_PRIVATE = [404, 404, 403, 403, "ok", "ok"]
MANAGES_PUBLIC = [401, 403, 403, 403, "ok", "ok"]
ALWAYS_404 = [404] * 6

NEW_MEMBER = {"username": "nonmember", "role": "viewer"}


def _requests(kit_id: str):
    """(method, path, body, success status) for every kit endpoint that names a kit."""
    return [
        ("get", f"/kits/{kit_id}", None, 200),
        ("patch", f"/kits/{kit_id}", {"name": "Renamed"}, 200),
        ("delete", f"/kits/{kit_id}", None, 204),
        ("get", f"/kits/{kit_id}/members", None, 200),
        ("post", f"/kits/{kit_id}/members", NEW_MEMBER, 201),
        ("patch", f"/kits/{kit_id}/members/viewer", {"role": "configurer"}, 200),
        ("delete", f"/kits/{kit_id}/members/viewer", None, 204),
    ]


def _matrix():
    cases = []
    for kit_id, sees, manages in [
        ("private-kit", SEES_PRIVATE, MANAGES_PRIVATE),
        ("public-kit", SEES_PUBLIC, MANAGES_PUBLIC),
        ("no-such-kit", ALWAYS_404, ALWAYS_404),
    ]:
        for method, path, body, success in _requests(kit_id):
            expected_row = sees if (method, path) == ("get", f"/kits/{kit_id}") else manages
            for caller, expected in zip(CALLERS, expected_row, strict=True):
                status = success if expected in ("ok", 200) else expected
                cases.append(pytest.param(caller, method, path, body, status, id=f"{caller}-{method}-{path}"))
    return cases


def _state():
    """Everything a request could change, to prove a refused one changed nothing."""
    return (
        sorted(Kit.objects.values_list("id", "name", "description", "public", "admin_email")),
        sorted(Sensor.objects.values_list("kit_id", "key", "unit")),
        sorted(Membership.objects.values_list("kit_id", "user__username", "role")),
    )


@pytest.fixture
def client_for(make_client, users):
    def client(caller):
        return make_client(None if caller == "anonymous" else users[caller])

    return client


@pytest.mark.parametrize(("caller", "method", "path", "body", "expected"), _matrix())
def test_kit_endpoint_permissions(client_for, private_kit, public_kit, caller, method, path, body, expected):
    before = _state()

    response = getattr(client_for(caller), method)(path, body, format="json")

    assert response.status_code == expected, response.content
    if expected >= 400:
        assert _state() == before
        assert response.json()["detail"]


@pytest.mark.parametrize(
    ("caller", "visible"),
    [
        ("anonymous", ["public-kit"]),
        ("nonmember", ["public-kit"]),
        ("viewer", ["private-kit", "public-kit"]),
        ("configurer", ["private-kit", "public-kit"]),
        ("owner", ["private-kit", "public-kit"]),
        ("staff", ["other-private-kit", "private-kit", "public-kit"]),
    ],
)
def test_kit_list_shows_exactly_the_kits_the_caller_may_see(client_for, private_kit, public_kit, caller, visible):
    from kits import registry

    registry.kit_register(id="other-private-kit", name="Someone else's kit")

    response = client_for(caller).get("/kits")

    assert response.status_code == 200
    assert [kit["id"] for kit in response.json()["results"]] == visible
    assert response.json()["count"] == len(visible)


@pytest.mark.parametrize(
    ("caller", "expected"),
    [("anonymous", 401), ("nonmember", 403), ("viewer", 403), ("configurer", 403), ("owner", 403), ("staff", 201)],
)
def test_only_staff_register_kits(client_for, private_kit, caller, expected):
    count = Kit.objects.count()

    response = client_for(caller).post("/kits", {"name": "New kit"}, format="json")

    assert response.status_code == expected
    assert Kit.objects.count() == count + (1 if expected == 201 else 0)


@pytest.mark.parametrize(
    ("caller", "private_details_shown"),
    [
        ("anonymous", False),
        ("nonmember", False),
        ("viewer", True),
        ("configurer", True),
        ("owner", True),
        ("staff", True),
    ],
)
def test_ip_and_admin_email_are_for_members_and_staff_only(client_for, public_kit, caller, private_details_shown):
    details = client_for(caller).get("/kits/public-kit").json()["details"]

    if private_details_shown:
        assert (details["ip"], details["admin"]) == ("192.0.2.20", "someone@example.org")
    else:
        assert (details["ip"], details["admin"]) == (None, None)


@pytest.mark.parametrize(
    "guessed_id",
    ["private-kit", "PRIVATE-KIT", "private-kit%20", "private-kit/", "..%2Fprivate-kit", "k-0000-0000", "1"],
)
def test_another_growers_private_kit_is_never_reachable_by_guessing(client_for, private_kit, guessed_id):
    client = client_for("nonmember")
    before = _state()

    for method, body in [("get", None), ("patch", {"public": True}), ("delete", None)]:
        response = getattr(client, method)(f"/kits/{guessed_id}", body, format="json")
        assert response.status_code == 404
        assert response.json()["detail"]
        assert "private-kit" not in [kit["id"] for kit in client.get("/kits").json()["results"]]
    assert _state() == before
