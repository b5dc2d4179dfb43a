"""Signing in for the mobile app: tokens, their storage, and throttled failures."""

from datetime import timedelta

import pytest
from django.utils import timezone
from knox.models import AuthToken


@pytest.fixture
def anonymous(make_client):
    return make_client()


def test_signing_in_returns_a_token_that_opens_the_growers_kits(anonymous, make_client, users, private_kit):
    response = anonymous.post("/auth/token", {"username": "owner", "password": "pw-owner"}, format="json")

    assert response.status_code == 200
    token = response.json()["token"]
    app = make_client()
    app.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert app.get("/kits/private-kit").status_code == 200


def test_the_token_is_not_stored_in_plain_text(anonymous, users):
    token = anonymous.post("/auth/token", {"username": "owner", "password": "pw-owner"}, format="json").json()["token"]

    stored = AuthToken.objects.get(user=users["owner"])
    assert token not in (stored.digest, stored.token_key)
    assert token[: len(stored.token_key)] == stored.token_key  # only a short prefix, for lookup


def test_a_wrong_password_is_401_and_gives_no_token(anonymous, users):
    response = anonymous.post("/auth/token", {"username": "owner", "password": "wrong"}, format="json")

    assert response.status_code == 401
    assert response.json() == {"detail": "Wrong username or password."}
    assert not AuthToken.objects.exists()


def test_a_bogus_token_is_401_not_anonymous(make_client, private_kit):
    app = make_client()
    app.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")

    response = app.get("/kits")

    assert response.status_code == 401


def test_failed_sign_ins_are_throttled_even_for_the_right_password(anonymous, users, settings):
    wrong = {"username": "owner", "password": "nope"}
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert anonymous.post("/auth/token", wrong, format="json").status_code == 401
    assert anonymous.post("/auth/token", wrong, format="json").status_code == 429

    response = anonymous.post("/auth/token", {"username": "owner", "password": "pw-owner"}, format="json")

    assert response.status_code == 429
    assert "Too many failed sign-ins" in response.json()["detail"]
    assert int(response["Retry-After"]) > 0
    assert not AuthToken.objects.exists()


def test_another_user_is_not_locked_out_by_someone_elses_failures(anonymous, users, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        anonymous.post("/auth/token", {"username": "owner", "password": "nope"}, format="json")

    response = anonymous.post("/auth/token", {"username": "viewer", "password": "pw-viewer"}, format="json")

    assert response.status_code == 200


def test_clients_behind_the_same_load_balancer_are_locked_out_separately(anonymous, users, settings):
    # Given the site behind one load balancer (every request comes from its address, and it
    # appends the client's to X-Forwarded-For)
    settings.TRUSTED_PROXY_COUNT = 1
    through_balancer = {"REMOTE_ADDR": "10.0.0.2"}
    wrong = {"username": "owner", "password": "nope"}
    # When one client fails to sign in as the owner until it is locked out
    for _ in range(settings.AXES_FAILURE_LIMIT):
        anonymous.post("/auth/token", wrong, format="json", HTTP_X_FORWARDED_FOR="203.0.113.1", **through_balancer)
    locked = anonymous.post("/auth/token", wrong, format="json", HTTP_X_FORWARDED_FOR="203.0.113.1", **through_balancer)

    # Then that client is refused, and the owner signing in from another address is not
    right = {"username": "owner", "password": "pw-owner"}
    owner = anonymous.post("/auth/token", right, format="json", HTTP_X_FORWARDED_FOR="203.0.113.2", **through_balancer)
    assert locked.status_code == 429
    assert owner.status_code == 200


def test_a_forged_forwarded_address_does_not_escape_the_lockout(anonymous, users, settings):
    # Given the site behind one load balancer, and a client that writes its own X-Forwarded-For
    # (the balancer appends the client's real address, 203.0.113.66, to it)
    settings.TRUSTED_PROXY_COUNT = 1
    wrong = {"username": "owner", "password": "nope"}
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        forged = f"198.51.100.{attempt}, 203.0.113.66"
        anonymous.post("/auth/token", wrong, format="json", HTTP_X_FORWARDED_FOR=forged, REMOTE_ADDR="10.0.0.2")

    # When it tries again with yet another forged address before its own
    response = anonymous.post(
        "/auth/token", wrong, format="json", HTTP_X_FORWARDED_FOR="198.51.100.99, 203.0.113.66", REMOTE_ADDR="10.0.0.2"
    )

    # Then it is still locked out: only the address the balancer wrote counts
    assert response.status_code == 429


def test_the_admin_sign_in_page_is_throttled_too(client, users, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post("/admin/login/", {"username": "staff", "password": "nope"})

    response = client.post("/admin/login/", {"username": "staff", "password": "pw-staff"})

    assert response.status_code == 429
    assert b"Too many failed sign-ins" in response.content


def test_revoking_a_token_signs_the_app_out(anonymous, make_client, users):
    token = anonymous.post("/auth/token", {"username": "owner", "password": "pw-owner"}, format="json").json()["token"]
    app = make_client()
    app.credentials(HTTP_AUTHORIZATION=f"Token {token}")

    assert app.delete("/auth/token/revoke").status_code == 204
    assert app.get("/kits").status_code == 401


@pytest.mark.parametrize(
    ("body", "field"),
    [({}, "username"), ({"username": "owner"}, "password"), ({"username": "owner", "password": "x", "otp": 1}, "otp")],
)
def test_a_malformed_sign_in_is_400(anonymous, users, body, field):
    response = anonymous.post("/auth/token", body, format="json")

    assert response.status_code == 400
    assert field in response.json()["errors"]


def _token_of(user, *, expired: bool) -> str:
    instance, token = AuthToken.objects.create(user)
    if expired:
        instance.expiry = timezone.now() - timedelta(minutes=1)
        instance.save(update_fields=["expiry"])
    return token


def test_an_expired_token_is_refused_and_forgotten(make_client, users, private_kit):
    # Given a token past its expiry
    token = _token_of(users["owner"], expired=True)
    app = make_client()
    app.credentials(HTTP_AUTHORIZATION=f"Token {token}")

    # When the app uses it
    response = app.get("/kits/private-kit")

    # Then it is refused, and the token is gone
    assert response.status_code == 401
    assert not AuthToken.objects.filter(user=users["owner"]).exists()


def test_a_token_in_use_is_renewed(make_client, users, private_kit, settings):
    # Given a token that lapses in a day
    instance, token = AuthToken.objects.create(users["owner"], expiry=timedelta(days=1))
    app = make_client()
    app.credentials(HTTP_AUTHORIZATION=f"Token {token}")

    # When the app uses it
    assert app.get("/kits/private-kit").status_code == 200

    # Then it lives a whole TOKEN_TTL from now (AUTO_REFRESH)
    instance.refresh_from_db()
    assert instance.expiry > timezone.now() + settings.REST_KNOX["TOKEN_TTL"] - timedelta(minutes=1)


def test_signing_in_sweeps_the_users_expired_tokens_and_keeps_the_live_ones(anonymous, make_client, users):
    # Given a grower with an expired token and a live one (requests do not sweep: knox would, on each)
    _token_of(users["owner"], expired=True)
    live = _token_of(users["owner"], expired=False)
    app = make_client()
    app.credentials(HTTP_AUTHORIZATION=f"Token {live}")
    assert app.get("/kits").status_code == 200
    assert AuthToken.objects.filter(user=users["owner"]).count() == 2

    # When the grower signs in on another device
    response = anonymous.post("/auth/token", {"username": "owner", "password": "pw-owner"}, format="json")

    # Then the expired token is deleted, the live one and the new one work
    assert response.status_code == 200
    assert AuthToken.objects.filter(user=users["owner"]).count() == 2
    assert app.get("/kits").status_code == 200
    app.credentials(HTTP_AUTHORIZATION=f"Token {response.json()['token']}")
    assert app.get("/kits").status_code == 200
