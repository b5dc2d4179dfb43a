"""Web security: every form needs its CSRF token, the browser sign-in is throttled like the API's,
and every answer carries the security headers, a Content-Security-Policy among them."""

import re
from pathlib import Path

import pytest
from csp.middleware import CSPMiddleware
from django.contrib.auth import get_user_model
from django.test import Client

from astroplant_site.errors import server_error
from kits.models import Kit, Membership

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


@pytest.fixture
def superuser(db):
    return get_user_model().objects.create_superuser("root", "root@example.org", "pw-root")


def test_every_post_form_of_our_templates_carries_the_csrf_token():
    forms = []
    for template in TEMPLATES.rglob("*.html"):
        for form in re.findall(r"<form\b[^>]*>.*?</form>", template.read_text(), re.S | re.I):
            if re.search(r"method=\"post\"", form, re.I):
                forms.append((template.name, "{% csrf_token %}" in form))
    assert forms, "no post form found: has the template folder moved?"
    assert [name for name, protected in forms if not protected] == []


@pytest.mark.parametrize(
    ("who", "path", "form"),
    [
        (None, "/accounts/login/", {"username": "owner", "password": "pw-owner"}),
        ("owner", "/accounts/logout/", {}),
        ("owner", "/dashboard/kits/private-kit/members/add", {"member": "nonmember", "role": "owner"}),
        ("owner", "/dashboard/kits/private-kit/members/viewer/role", {"role": "owner"}),
        ("owner", "/dashboard/kits/private-kit/members/viewer/remove", {}),
        (None, "/admin/login/", {"username": "root", "password": "pw-root"}),
        ("root", "/admin/kits/kit/add/", {"id": "csrf-kit", "name": "Never saved"}),
        ("root", "/admin/kits/kit/private-kit/change/", {"name": "Renamed"}),
        ("root", "/admin/kits/kit/", {"action": "decommission", "_selected_action": ["private-kit"]}),
        ("root", "/admin/kits/kit/private-kit/delete/", {"post": "yes"}),
        ("root", "/admin/password_change/", {"old_password": "pw-root", "new_password1": "x", "new_password2": "x"}),
        ("root", "/admin/logout/", {}),
    ],
)
def test_a_form_posted_without_its_csrf_token_is_refused_and_changes_nothing(
    private_kit, superuser, users, who, path, form
):
    # Given a browser that really checks CSRF (Django's test client skips it by default)
    browser = Client(enforce_csrf_checks=True)
    if who is not None:
        browser.force_login(get_user_model().objects.get(username=who))
    before = (list(Kit.objects.values_list("id", "name", "provisioning_status")), list(Membership.objects.values()))

    # When a form is posted without the token, as another site's page would
    response = browser.post(path, form)

    # Then it is refused, and nothing changed
    assert response.status_code == 403
    assert b"CSRF" in response.content
    after = (list(Kit.objects.values_list("id", "name", "provisioning_status")), list(Membership.objects.values()))
    assert after == before
    if who is not None:
        assert browser.get("/").context["user"].username == who  # still signed in


def test_the_api_refuses_a_browser_session_write_without_the_csrf_token(private_kit, users):
    # Given a signed-in browser session (the API also accepts session sign-in)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(users["owner"])

    # When another site's page makes it send a write to the API
    response = browser.patch("/kits/private-kit", {"name": "Hijacked"}, content_type="application/json")

    # Then it is refused: only API tokens (not cookies) may write without the token
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert Kit.objects.get(pk="private-kit").name == "Private kit"


def test_the_browser_sign_in_page_is_throttled_after_repeated_failures(client, users, settings):
    # Given someone guessing a grower's password on the sign-in page
    for _ in range(settings.AXES_FAILURE_LIMIT):
        response = client.post("/accounts/login/", {"username": "owner", "password": "guess"})
        assert response.status_code in (200, 429)

    # When even the right password is tried next
    response = client.post("/accounts/login/", {"username": "owner", "password": "pw-owner"})

    # Then the page refuses it for a while, saying so, and nobody is signed in
    assert response.status_code == 429
    assert b"Too many failed sign-ins" in response.content
    assert int(response["Retry-After"]) == settings.AXES_COOLOFF_TIME.total_seconds()
    assert "_auth_user_id" not in client.session
    # and another grower may still sign in from the same address
    assert client.post("/accounts/login/", {"username": "viewer", "password": "pw-viewer"}).status_code == 302


@pytest.mark.parametrize("path", ["/", "/dashboard/kits/public-kit/", "/accounts/login/", "/kits", "/api/docs/"])
def test_every_answer_carries_the_security_headers(client, public_kit, path):
    response = client.get(path)

    assert response.status_code == 200
    policy = dict(part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";"))
    assert policy["default-src"] == policy["script-src"] == "'self'"
    # Swagger UI draws with inline styles; everywhere else, styles too come from our files only
    assert policy["style-src"] == ("'self' 'unsafe-inline'" if path == "/api/docs/" else "'self'")
    assert policy["object-src"] == "'none'" and policy["frame-ancestors"] == "'none'"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"


def test_the_api_docs_page_has_no_inline_script(client):
    page = client.get("/api/docs/").content.decode()

    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", page, re.S)
    assert scripts
    assert [attributes for attributes, body in scripts if body.strip() or "src=" not in attributes] == []


def test_the_server_error_page_keeps_its_inline_style_and_nothing_else_inline(rf):
    response = CSPMiddleware(server_error)(rf.get("/dashboard/"))

    assert response.status_code == 500
    policy = dict(part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";"))
    assert policy["style-src"] == "'self' 'unsafe-inline'"
    assert policy["script-src"] == "'self'"
