"""Bad input answers 400 (or 404) with a message that says what is wrong, and changes nothing."""

import pytest

from kits.models import Kit, Membership, Sensor


def _state():
    return (
        sorted(Kit.objects.values_list("id", "name", "description", "public", "admin_email")),
        sorted(Sensor.objects.values_list("kit_id", "key", "quantity", "unit", "min_value", "max_value")),
        sorted(Membership.objects.values_list("kit_id", "user__username", "role")),
    )


@pytest.fixture
def staff_client(make_client, users):
    return make_client(users["staff"])


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({}, "name", "required"),
        ({"name": ""}, "name", "blank"),
        ({"name": "x" * 101}, "name", "100"),
        ({"name": 5}, "name", "valid string"),  # the schema says a string: a number is refused, not coerced
        ({"name": "Kit", "public": 1}, "public", "boolean"),
        (
            {"name": "Kit", "sensors": [{"key": "t", "quantity": "temperature", "unit": "C", "max_value": False}]},
            "sensors[0].max_value",
            "number",
        ),
        ({"name": ["a"]}, "name", "valid string"),
        ({"name": "Kit", "id": "Has Spaces"}, "id", "lower-case"),
        ({"name": "Kit", "id": "-leading"}, "id", "lower-case"),
        ({"name": "Kit", "id": "x" * 49}, "id", "48"),
        ({"name": "Kit", "id": "private-kit"}, "id", "already exists"),
        ({"name": "Kit", "admin": "not-an-email"}, "admin", "email"),
        ({"name": "Kit", "public": "maybe"}, "public", "boolean"),
        ({"name": "Kit", "description": "d" * 2001}, "description", "2000"),
        ({"name": "Kit", "colour": "green"}, "colour", "Unknown field"),
        ({"name": "Kit", "sensors": "temperature"}, "sensors", "list"),
        ({"name": "Kit", "sensors": [{"key": "t"}]}, "sensors[0].quantity", "required"),
        (
            {"name": "Kit", "sensors": [{"key": "T!", "quantity": "temperature", "unit": "C"}]},
            "sensors[0].key",
            "lower",
        ),
        ({"name": "Kit", "sensors": [{"key": "t", "quantity": "mood", "unit": "C"}]}, "sensors[0].quantity", "valid"),
        (
            {"name": "Kit", "sensors": [{"key": "t", "quantity": "temperature", "unit": "C", "colour": 1}]},
            "sensors[0].colour",
            "Unknown field",
        ),
        (
            {
                "name": "Kit",
                "sensors": [{"key": "t", "quantity": "temperature", "unit": "C", "min_value": 5, "max_value": 1}],
            },
            "sensors[0].max_value",
            "greater",
        ),
        (
            {"name": "Kit", "sensors": [{"key": "t", "quantity": "temperature", "unit": "C", "min_value": "cold"}]},
            "sensors[0].min_value",
            "number",
        ),
        (
            {"name": "Kit", "sensors": [{"key": "t", "quantity": "temperature", "unit": "C"}] * 2},
            "sensors",
            "once",
        ),
        (
            {"name": "Kit", "sensors": [{"key": f"s{i}", "quantity": "other", "unit": "u"} for i in range(33)]},
            "sensors",
            "32",
        ),
    ],
)
def test_registering_a_kit_with_bad_input(staff_client, private_kit, body, field, words):
    before = _state()

    response = staff_client.post("/kits", body, format="json")

    if field is None:
        assert response.status_code == 201
        return
    assert response.status_code == 400, response.content
    error = response.json()
    assert words.lower() in " ".join(error["errors"][field]).lower()
    assert field in error["detail"]
    assert _state() == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": ""}, "name"),
        ({"public": None}, "public"),
        ({"sensors": [{"key": "x", "quantity": "temperature"}]}, "sensors[0].unit"),
        ({"id": "renamed"}, "id"),  # the id is fixed once registered
        ({"unknown": 1}, "unknown"),
    ],
)
def test_changing_a_kit_with_bad_input_changes_nothing(make_client, users, private_kit, body, field):
    before = _state()

    response = make_client(users["owner"]).patch("/kits/private-kit", body, format="json")

    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert _state() == before


@pytest.mark.parametrize(
    "raw",
    [b"{", b"not json", b'{"name": "x",}', b"\xff\xfe", b"[1, 2]", b'"a string"', b"null"],
)
def test_broken_or_non_object_json_is_a_clear_400(staff_client, private_kit, raw):
    before = _state()

    response = staff_client.generic("POST", "/kits", raw, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["detail"]
    assert _state() == before


def test_a_body_that_is_not_json_is_refused_with_the_type_we_take(staff_client):
    response = staff_client.generic("POST", "/kits", b"name=x", content_type="application/x-www-form-urlencoded")

    assert response.status_code == 415
    assert "application/json" in response.json()["detail"]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "words"),
    [
        ("post", "/kits/private-kit/members", {"username": "nobody", "role": "viewer"}, 400, "no active user"),
        ("post", "/kits/private-kit/members", {"username": "viewer", "role": "viewer"}, 400, "already"),
        ("post", "/kits/private-kit/members", {"username": "nonmember", "role": "king"}, 400, "valid choice"),
        ("post", "/kits/private-kit/members", {"username": "nonmember"}, 400, "required"),
        ("patch", "/kits/private-kit/members/nobody", {"role": "viewer"}, 404, "not a member"),
        ("patch", "/kits/private-kit/members/owner", {"role": "viewer"}, 400, "at least one owner"),
        ("delete", "/kits/private-kit/members/owner", None, 400, "at least one owner"),
        ("delete", "/kits/private-kit/members/nonmember", None, 404, "not a member"),
    ],
)
def test_member_changes_with_bad_input(make_client, users, private_kit, method, path, body, status, words):
    before = _state()

    response = getattr(make_client(users["owner"]), method)(path, body, format="json")

    assert response.status_code == status
    assert words in str(response.json()).lower()
    assert _state() == before


@pytest.mark.parametrize("query", ["?page_size=0", "?page_size=201", "?page_size=abc", "?page_size="])
def test_a_page_size_out_of_range_is_400_saying_so(make_client, users, private_kit, query):
    response = make_client(users["owner"]).get(f"/kits{query}")

    assert response.status_code == 400
    assert response.json()["errors"]["page_size"] == [
        f"Use a whole number from 1 to 200, not '{query.partition('=')[2]}'."
    ]


@pytest.mark.parametrize("query", ["?page=0", "?page=99", "?page=abc"])
def test_a_page_that_does_not_exist_is_404(make_client, users, private_kit, query):
    response = make_client(users["owner"]).get(f"/kits{query}")

    assert response.status_code == 404
    assert "page" in response.json()["detail"].lower()
