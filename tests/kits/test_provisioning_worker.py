"""Provisioning through Celery on the real broker (Redis, db 5): a kit an admin registers becomes
active by a real worker process; throttling is retried with backoff; a permanent failure is shown
to admins with its reason, and they can retry it."""

import io
import time
import zipfile

import pytest
from celery.signals import task_retry
from django.contrib.auth import get_user_model
from django.test import Client

from kits import registry
from kits.models import BundleDownload, Kit, ProvisioningStatus
from tests.support import admin_kit_add_form

pytestmark = pytest.mark.integration


def wait_for_status(kit_id: str, *statuses: str, timeout: float = 60.0) -> Kit:
    deadline = time.monotonic() + timeout
    while True:
        kit = Kit.objects.get(pk=kit_id)
        if kit.provisioning_status in statuses:
            return kit
        if time.monotonic() > deadline:
            pytest.fail(f"Kit {kit_id} is still {kit.provisioning_status} after {timeout} s, not {statuses}")
        time.sleep(0.1)


@pytest.fixture
def admin_browser(transactional_db):
    """A browser signed in to the admin as a superuser."""
    user = get_user_model().objects.create_superuser("root", "root@example.org", "pw-root")
    browser = Client()
    browser.force_login(user)
    browser.user = user
    return browser


def admin_add_kit(browser, kit_id: str):
    """Post the admin's "add kit" form as a staff member would, with one sensor."""
    page = browser.get("/admin/kits/kit/add/")
    assert page.status_code == 200
    return browser.post(
        "/admin/kits/kit/add/",
        admin_kit_add_form(kit_id, "Classroom lettuce", min_value="-10", max_value="50"),
    )


def test_a_kit_registered_in_the_admin_becomes_active_through_a_worker_process(
    celery_worker_process, admin_browser, iot, unique_kit_id
):
    # Given a real worker process on the real broker
    kit_id = unique_kit_id()

    # When an admin registers a kit through the admin's form
    response = admin_add_kit(admin_browser, kit_id)
    assert response.status_code == 302, response.content.decode()[:2000]

    # Then the worker makes it active, an AWS IoT thing with its certificate
    kit = wait_for_status(kit_id, ProvisioningStatus.ACTIVE, ProvisioningStatus.FAILED)
    assert kit.provisioning_status == ProvisioningStatus.ACTIVE, (
        kit.provisioning_failure_reason + celery_worker_process.log_file.read_text()
    )
    assert iot.list_thing_principals(thingName=f"astroplant-{kit_id}")["principals"] == [kit.certificate_arn]
    assert "Task kits.provision" in celery_worker_process.log_file.read_text()
    # and the admin shows it active, with a link to download its bundle
    page = admin_browser.get(f"/admin/kits/kit/{kit_id}/change/").content.decode()
    assert "Active" in page and "Download the bundle" in page

    # When the admin downloads the bundle
    download = admin_browser.get(f"/admin/kits/kit/{kit_id}/bundle/")

    # Then it is the kit's zip, with the sensor registered in the form, and the download is logged
    assert download.status_code == 200
    assert download["Content-Disposition"] == f'attachment; filename="astroplant-{kit_id}-bundle.zip"'
    archive = zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content)))
    assert 'key = "temperature"' in archive.read("kit.toml").decode()
    (logged,) = BundleDownload.objects.filter(certificate__kit_id=kit_id)
    assert logged.username == "root" and logged.user == admin_browser.user
    assert "root at " in admin_browser.get(f"/admin/kits/kit/{kit_id}/change/").content.decode()


def test_a_throttled_aws_call_is_retried_with_backoff(celery_worker_in_process, iot_faults, unique_kit_id):
    # Given AWS IoT throttles the first two attempts to attach the certificate to the thing, and
    # the waits Celery chooses before each retry are recorded
    iot_faults.fail("AttachThingPrincipal", "ThrottlingException", times=2, message="Rate exceeded")
    waits = []

    def record_wait(reason, **kwargs):
        waits.append(reason.when)

    task_retry.connect(record_wait, weak=False)
    try:
        # When a kit is registered (its provisioning queued on commit, run by the worker)
        kit = registry.kit_register(id=unique_kit_id(), name="Throttled")

        # Then it becomes active after the third attempt
        kit = wait_for_status(kit.id, ProvisioningStatus.ACTIVE, ProvisioningStatus.FAILED, timeout=30)
    finally:
        task_retry.disconnect(record_wait)
    assert kit.provisioning_status == ProvisioningStatus.ACTIVE, kit.provisioning_failure_reason
    attempts = iot_faults.calls["AttachThingPrincipal"]
    assert len(attempts) == 3
    # each retry waited, as Celery's exponential backoff with full jitter drew it (settings.test:
    # base 1 s, so the first wait is 0 or 1 s, the second 0, 1 or 2 s)
    assert len(waits) == 2 and 0 <= waits[0] <= 1 and 0 <= waits[1] <= 2
    assert attempts[1] - attempts[0] >= waits[0] - 0.05 and attempts[2] - attempts[1] >= waits[1] - 0.05


def test_throttling_that_never_ends_fails_the_kit_after_the_last_retry(
    celery_worker_in_process, iot_faults, unique_kit_id, settings
):
    # Given AWS IoT throttles every attempt, and a task may retry twice
    settings.PROVISIONING_MAX_RETRIES = 2
    iot_faults.fail("CreateThing", "ThrottlingException", times=99, message="Rate exceeded")

    # When a kit is registered
    kit = registry.kit_register(id=unique_kit_id(), name="Never lucky")

    # Then after three attempts it is failed, saying so
    kit = wait_for_status(kit.id, ProvisioningStatus.FAILED, timeout=30)
    assert len(iot_faults.calls["CreateThing"]) == 3
    assert kit.provisioning_failure_reason == (
        "Provisioning gave up after 3 attempts. Last error: Could not create the thing "
        f"astroplant-{kit.id}: AWS IoT answered ThrottlingException (Rate exceeded)."
    )


def test_a_permanent_failure_is_shown_in_the_admin_and_can_be_retried(
    celery_worker_in_process, iot_faults, admin_browser, unique_kit_id
):
    # Given AWS IoT refuses the kit policy (a permanent error: no retry helps)
    iot_faults.fail("AttachPolicy", "InvalidRequestException", times=1, message="Policy document is malformed")
    kit = registry.kit_register(id=unique_kit_id(), name="Refused")
    kit = wait_for_status(kit.id, ProvisioningStatus.FAILED, timeout=30)
    reason = "Could not attach the policy astroplant-kit to the kit&#x27;s certificate"

    # When an admin looks at the kits, filtered to the failed ones, and at the kit
    listing = admin_browser.get("/admin/kits/kit/?provisioning_status__exact=failed").content.decode()
    page = admin_browser.get(f"/admin/kits/kit/{kit.id}/change/").content.decode()

    # Then both say it failed and why, in words
    for html in (listing, page):
        assert kit.id in html and "Failed" in html
        assert reason in html and "InvalidRequestException (Policy document is malformed)" in html
    assert len(iot_faults.calls["AttachPolicy"]) == 1  # not retried

    # When the admin retries it (AWS accepts now)
    response = admin_browser.post(
        "/admin/kits/kit/", {"action": "retry_provisioning", "_selected_action": [kit.id]}, follow=True
    )

    # Then it is queued again and becomes active
    assert f"1 kit(s) queued again: {kit.id}." in response.content.decode()
    kit = wait_for_status(kit.id, ProvisioningStatus.ACTIVE, timeout=30)
    assert kit.provisioning_failure_reason == ""


def test_admin_actions_rotate_and_decommission_through_the_worker(
    celery_worker_in_process, admin_browser, iot, unique_kit_id
):
    # Given an active kit
    kit = registry.kit_register(id=unique_kit_id(), name="Rotating")
    kit = wait_for_status(kit.id, ProvisioningStatus.ACTIVE, timeout=30)
    first_certificate = kit.certificate_id

    # When an admin rotates its certificate
    admin_browser.post("/admin/kits/kit/", {"action": "rotate_certificate", "_selected_action": [kit.id]})

    # Then a worker gives it a new one and deactivates the old
    deadline = time.monotonic() + 30
    while Kit.objects.get(pk=kit.id).certificate_id == first_certificate and time.monotonic() < deadline:
        time.sleep(0.1)
    kit = wait_for_status(kit.id, ProvisioningStatus.ACTIVE, timeout=30)
    assert kit.certificate_id != first_certificate
    old = iot.describe_certificate(certificateId=first_certificate)["certificateDescription"]
    assert old["status"] == "INACTIVE"

    # When the admin decommissions it
    admin_browser.post("/admin/kits/kit/", {"action": "decommission", "_selected_action": [kit.id]})

    # Then a worker retires it from AWS IoT
    kit = wait_for_status(kit.id, ProvisioningStatus.DECOMMISSIONED, ProvisioningStatus.FAILED, timeout=30)
    assert kit.provisioning_status == ProvisioningStatus.DECOMMISSIONED, kit.provisioning_failure_reason
    pages = iot.get_paginator("list_things").paginate()  # every page: moto is shared by the whole run
    assert [t for page in pages for t in page["things"] if t["thingName"] == kit.thing_name] == []
