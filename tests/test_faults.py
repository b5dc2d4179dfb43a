"""Faults with real processes: the web app under gunicorn, Celery worker and beat processes, a
redis-server of the test's own as their broker, and moto_server as AWS. The test kills and stops
them as an operator's bad day would, then reads what AWS IoT and the database were left with.

(DynamoDB cut off during ingest is tested in test_end_to_end.py.)
"""

import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from django.contrib.auth import get_user_model
from knox.models import AuthToken

from kits import bundles
from kits.models import Kit, ProvisioningStatus
from localdev.ports import free_port
from localdev.redis import RedisServer
from tests.conftest import _database_url_of
from tests.support import ProcessGroup, admin_kit_add_form, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parent.parent
# Short enough for a test, in the same proportions as production's (900 s, 120 s, 300 s, 600 s):
# a message whose worker died comes back after VISIBILITY seconds, a dead worker's hold on a kit
# lapses after LEASE seconds, beat sweeps every SWEEP seconds for kits pending longer than STALE.
VISIBILITY_SECONDS, LEASE_SECONDS, SWEEP_SECONDS, STALE_SECONDS = 2, 2, 1, 8


class Stack:
    """The product's processes on the test database, moto_server and a broker of their own."""

    def __init__(self, tmp_path: Path, env: dict, redis: RedisServer):
        self.tmp_path = tmp_path
        self.env = env
        self.redis = redis
        self.web_url = ""
        self.processes = ProcessGroup(tmp_path, env)

    @property
    def running(self) -> list[subprocess.Popen]:
        return self.processes.running

    def start(self, name: str, command: list[str]) -> subprocess.Popen:
        return self.processes.start(name, command)

    def start_web(self) -> None:
        port = free_port()
        self.web_url = f"http://127.0.0.1:{port}"
        web = self.start(
            "web",
            [sys.executable, "-m", "gunicorn", "astroplant_site.wsgi:application", "-b", f"127.0.0.1:{port}"]
            + ["--workers", "1", "--access-logfile", "-"],
        )
        wait_until(lambda: _answers(f"{self.web_url}/healthz") or web.poll() is not None, timeout=60, what="gunicorn")
        assert web.poll() is None, web.log_path.read_text()

    def start_worker(self) -> subprocess.Popen:
        worker = self.start(
            "worker",
            [sys.executable, "-m", "celery", "-A", "astroplant_site", "worker", "--pool=solo", "--loglevel=INFO"]
            + ["--without-gossip", "--without-mingle", "--without-heartbeat", "-n", f"fault-{len(self.running)}@%h"],
        )
        wait_until(
            lambda: " ready." in worker.log_path.read_text() or worker.poll() is not None,
            timeout=60,
            what="the worker",
        )
        assert worker.poll() is None, worker.log_path.read_text()
        return worker

    def start_beat(self) -> subprocess.Popen:
        schedule = self.tmp_path / "celerybeat-schedule"
        return self.start(
            "beat",
            [sys.executable, "-m", "celery", "-A", "astroplant_site", "beat", "--loglevel=INFO", "-s", str(schedule)],
        )

    def logs(self, name: str) -> str:
        return self.processes.logs(name)

    def stop_all(self) -> None:
        self.processes.stop_all()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):  # noqa: S310 (our own local server)
            return True
    except OSError:
        return False


@pytest.fixture
def stack(moto_server, tmp_path):
    from django.db import connection

    redis = RedisServer(directory=tmp_path / "redis").start()
    env = {
        **os.environ,
        **moto_server.client_env(),
        "DJANGO_SETTINGS_MODULE": "astroplant_site.settings.test",
        "DATABASE_URL": _database_url_of(connection.settings_dict),
        "TEST_CELERY_BROKER_URL": redis.url,
        "CELERY_VISIBILITY_TIMEOUT_SECONDS": str(VISIBILITY_SECONDS),
        "PROVISIONING_LEASE_SECONDS": str(LEASE_SECONDS),
        "PROVISIONING_SWEEP_SECONDS": str(SWEEP_SECONDS),
        "PROVISIONING_STALE_SECONDS": str(STALE_SECONDS),
        "PYTHONUNBUFFERED": "1",
    }
    stack = Stack(tmp_path, env, redis)
    stack.start_web()
    yield stack
    stack.stop_all()
    redis.stop()


class Browser:
    """A person's browser on the web process: cookies, the CSRF token, no following of redirects."""

    class _NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.cookies = CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies), self._NoRedirect)

    def request(
        self, path: str, form: dict | None = None, *, json_body: dict | None = None, headers: dict | None = None
    ) -> tuple[int, dict, str]:
        """GET, or POST a form (with the CSRF token, as the page would) or a JSON body."""
        headers, data = dict(headers or {}), None
        if form is not None:
            data = urllib.parse.urlencode({**form, "csrfmiddlewaretoken": self.cookie("csrftoken")}).encode()
        elif json_body is not None:
            headers["Content-Type"], data = "application/json", json.dumps(json_body).encode()
        request = urllib.request.Request(self.base_url + path, data=data, headers=headers)  # noqa: S310 (ours, local)
        try:
            with self.opener.open(request, timeout=60) as response:
                return response.status, dict(response.headers), response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read().decode()

    def cookie(self, name: str) -> str:
        return next((c.value for c in self.cookies if c.name == name), "")


def certificates_named(iot, thing_names: set[str]) -> dict[str, list[dict]]:
    """Every certificate AWS IoT holds whose common name is one of `thing_names`, by name: found
    through AWS alone, so a certificate the database forgot still counts."""
    found: dict[str, list[dict]] = {name: [] for name in thing_names}
    for page in iot.get_paginator("list_certificates").paginate():
        for summary in page["certificates"]:
            pem = iot.describe_certificate(certificateId=summary["certificateId"])["certificateDescription"]
            subject = x509.load_pem_x509_certificate(pem["certificatePem"].encode()).subject
            names = subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            if names and names[0].value in found:
                found[names[0].value].append(summary)
    return found


def step_reached(kit: Kit) -> str:
    """How far the kit's provisioning had got, from what its attempts saved."""
    certificate = kit.certificates.order_by("-created_at").first()
    if certificate is None:
        return "thing" if kit.thing_arn else "start"
    for step in ("activated_at", "thing_attached_at", "policy_attached_at", "registered_at"):
        if getattr(certificate, step):
            return step.removesuffix("_at")
    return "certificate issued"


# The steps kit_provision saves, in order (kits/provisioning.py); a kill is aimed just after each.
KILL_AFTER = ["start", "thing", "certificate issued", "registered", "policy_attached", "thing_attached"]


def kill_when_a_kit_reaches(step: str, worker: subprocess.Popen) -> str:
    """SIGKILL the worker as soon as a kit it holds has saved `step`; returns where the kit was."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        held = [kit for kit in Kit.objects.exclude(provisioning_lease_token="") if step_reached(kit) == step]
        if held:
            if step == "thing":  # the key, the bundle and the certificate row come next, within ms
                time.sleep(random.uniform(0, 0.03))  # noqa: S311
            worker.send_signal(signal.SIGKILL)
            worker.wait()
            return f"{held[0].id} after {step}"
        time.sleep(0.002)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    return f"no kit seen after {step}"


def test_a_worker_killed_ten_times_during_provisioning_leaves_one_thing_and_one_certificate_per_kit(stack, iot):
    # Given twenty kits registered through the API by staff, their provisioning queued
    staff = get_user_model().objects.create_user("ops", "ops@example.org", "pw-ops", is_staff=True)
    token = AuthToken.objects.create(staff)[1]
    api = Browser(stack.web_url)
    kit_ids = [f"fault-{os.getpid()}-{n}" for n in range(20)]
    for kit_id in kit_ids:
        status, _, body = api.request(
            "/kits", json_body={"id": kit_id, "name": f"Kit {kit_id}"}, headers={"Authorization": f"Token {token}"}
        )
        assert status == 201, body

    # When a worker is killed (SIGKILL) in the middle of provisioning a kit, ten times over, at
    # each step of the provisioning in turn (each step's result is saved before the next begins,
    # so the kill lands inside the AWS call or the work after it)
    killed_at = []
    for target in [*KILL_AFTER, *KILL_AFTER][:10]:
        worker = stack.start_worker()
        killed_at.append(kill_when_a_kit_reaches(target, worker))
    # Then, once a worker runs again, every kit becomes active (the killed workers' messages are
    # handed out again once VISIBILITY_SECONDS have passed)
    stack.start_worker()
    wait_until(
        lambda: Kit.objects.filter(pk__in=kit_ids, provisioning_status=ProvisioningStatus.ACTIVE).count() == 20,
        timeout=120,
        what=f"every kit active (killed at: {', '.join(killed_at)})",
    )

    # and AWS IoT holds exactly one thing and one active certificate per kit: no duplicate thing,
    # no orphaned certificate, nothing attached that should not be
    thing_names = {f"astroplant-{kit_id}" for kit_id in kit_ids}
    things = [
        thing["thingName"]
        for page in iot.get_paginator("list_things").paginate()
        for thing in page["things"]
        if thing["thingName"] in thing_names or thing.get("attributes", {}).get("kit_id") in kit_ids
    ]
    assert sorted(things) == sorted(thing_names)
    certificates = certificates_named(iot, thing_names)
    for kit in Kit.objects.filter(pk__in=kit_ids):
        assert [(c["certificateId"], c["status"]) for c in certificates[kit.thing_name]] == [
            (kit.certificate_id, "ACTIVE")
        ], f"{kit.id} (killed at: {', '.join(killed_at)})"
        assert iot.list_thing_principals(thingName=kit.thing_name)["principals"] == [kit.certificate_arn]
        assert [p["policyName"] for p in iot.list_attached_policies(target=kit.certificate_arn)["policies"]] == [
            "astroplant-kit"
        ]
        # and the database and the bundle storage agree: one certificate, one bundle with its key
        (certificate,) = kit.certificates.all()
        assert certificate.aws_certificate_id == kit.certificate_id
        assert bundles.bundle_names_of_kit(kit.id) == [certificate.bundle_path]


def test_a_kit_saved_in_the_admin_while_redis_is_down_is_provisioned_once_when_it_returns(stack, iot):
    # Given a worker and beat running on the broker, and an admin signed in
    stack.start_worker()
    stack.start_beat()
    get_user_model().objects.create_superuser("root", "root@example.org", "pw-root")
    admin = Browser(stack.web_url)
    admin.request("/admin/login/")
    status, headers, _ = admin.request(
        "/admin/login/?next=/admin/", {"username": "root", "password": "pw-root", "next": "/admin/"}
    )
    assert status == 302 and headers["Location"] == "/admin/"
    admin.request("/admin/kits/kit/add/")

    # When Redis goes down and the admin registers a kit
    stack.redis.stop()
    kit_id = f"redis-down-{os.getpid()}"
    began = time.monotonic()
    status, headers, body = admin.request(
        "/admin/kits/kit/add/", admin_kit_add_form(kit_id, "Registered while the broker was down")
    )
    took = time.monotonic() - began

    # Then the save succeeds at once, and the kit waits, pending, with its sensor
    assert status == 302 and headers["Location"] == "/admin/kits/kit/", body[:2000]
    assert took < 10
    kit = Kit.objects.get(pk=kit_id)
    assert kit.provisioning_status == ProvisioningStatus.PENDING
    assert list(kit.sensors.values_list("key", flat=True)) == ["temperature"]
    assert f"Could not queue the provisioning of kit {kit_id}: the Celery broker is unreachable" in stack.logs("web")
    time.sleep(2)
    assert Kit.objects.get(pk=kit_id).provisioning_status == ProvisioningStatus.PENDING

    # When Redis comes back (empty: the message was never sent)
    stack.redis.start()

    # Then beat's sweep queues the kit again and the worker provisions it
    kit = _wait_for_status(kit_id, ProvisioningStatus.ACTIVE, timeout=90)
    assert "Sending due task kits-provisioning-sweep" in stack.logs("beat")
    # exactly once, even as the sweep keeps running: three more sweeps change nothing
    sweeps = stack.logs("beat").count("Sending due task kits-provisioning-sweep")
    wait_until(
        lambda: stack.logs("beat").count("Sending due task kits-provisioning-sweep") >= sweeps + 3,
        timeout=30,
        what="three more sweeps",
    )
    assert stack.logs("worker").count("Task kits.provision[") == 2, stack.logs("worker")  # received, succeeded
    certificates = certificates_named(iot, {kit.thing_name})[kit.thing_name]
    assert [c["certificateId"] for c in certificates] == [kit.certificate_id]


def _wait_for_status(kit_id: str, status: str, *, timeout: float) -> Kit:
    wait_until(
        lambda: Kit.objects.get(pk=kit_id).provisioning_status == status,
        timeout=timeout,
        what=f"kit {kit_id} to be {status}",
    )
    return Kit.objects.get(pk=kit_id)
