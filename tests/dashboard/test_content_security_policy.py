"""The Content-Security-Policy breaks nothing: in a real browser (headless Chromium), the dashboard,
the admin and the API docs load and work with no part of them refused by the policy."""

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import expect

from kits.models import Role

from .conftest import minutes_ago, sign_in, utc_now, wait_for_charts

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("telemetry_tables")]


def record_policy_violations(page) -> list[str]:
    """Every report of the browser that the policy refused something, for the page's whole life."""
    refused: list[str] = []
    page.on(
        "console",
        lambda message: (
            refused.append(f"{page.url}: {message.text}") if "Content Security Policy" in message.text else None
        ),
    )
    page.add_init_script(
        "document.addEventListener('securitypolicyviolation', e => console.error("
        "'Content Security Policy refused ' + e.violatedDirective + ' ' + e.blockedURI));"
    )
    return refused


def test_the_dashboard_admin_and_api_docs_run_under_the_policy(open_browser, make_kit, users, write_readings):
    # Given a kit with readings, its owner, and an administrator
    kit = make_kit(owner=users["owner"], name="Policy basil")
    write_readings(kit, minutes_ago(utc_now(), *[i + 0.5 for i in range(30)]))
    get_user_model().objects.create_superuser("root", "root@example.org", "pw-root")
    page = open_browser()
    refused = record_policy_violations(page)

    # When the owner uses the dashboard: kit list, charts (uPlot), hover, range change, members
    sign_in(page, "owner", "pw-owner")
    page.goto(f"/dashboard/kits/{kit.id}/")
    wait_for_charts(page)
    page.locator("#chart-temperature .u-over").hover()
    page.get_by_text("Last hour", exact=True).click()
    wait_for_charts(page, loads=2)
    page.goto(f"/dashboard/kits/{kit.id}/members/")
    page.get_by_label("Username or e-mail").fill("viewer")
    page.get_by_role("button", name="Add member").click()
    expect(page.locator('tr[data-member="viewer"]')).to_be_visible()
    page.get_by_role("button", name="Sign out").click()

    # and an administrator uses the admin: the kit list, a kit with its inlines, the add form
    page.goto("/admin/login/")
    page.get_by_label("Username").fill("root")
    page.get_by_label("Password").fill("pw-root")
    page.get_by_role("button", name="Log in").click()
    page.goto("/admin/kits/kit/")
    expect(page.locator("#result_list")).to_contain_text("Policy basil")
    page.goto(f"/admin/kits/kit/{kit.id}/change/")
    sensor_rows = page.locator("#sensors-group tr.form-row:not(.empty-form)")
    rows_before = sensor_rows.count()
    page.get_by_text("Add another Sensor").click()  # the admin's inline script adds a row
    expect(sensor_rows).to_have_count(rows_before + 1)
    page.goto("/admin/kits/kit/add/")
    expect(page.locator("#id_name")).to_be_visible()

    # and anyone reads the API docs (Swagger UI)
    page.goto("/api/docs/")
    expect(page.locator(".swagger-ui .info")).to_contain_text("AstroPlant API")
    expect(page.locator(".opblock-summary-path").first).to_be_visible()

    # Then everything worked, and the browser refused nothing
    assert refused == []
    assert page.evaluate("document.querySelectorAll('script:not([src])').length") == 0
    assert Role.VIEWER in kit.memberships.values_list("role", flat=True)
