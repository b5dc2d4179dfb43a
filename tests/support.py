"""Small helpers several test modules share."""

import io
import signal
import subprocess
import threading
import time
import tomllib
import zipfile
from contextlib import contextmanager
from html.parser import HTMLParser
from pathlib import Path

from kits import bundles
from kits.models import Kit
from telemetry.ingest import TOPICS, IngestBridge
from telemetry.mqtt_subscriber import BrokerSettings, Subscriber


def wait_until(condition, *, timeout: float = 20.0, what: str = "the condition", logs: tuple[Path, ...] = ()) -> None:
    """Poll `condition` until it holds; fail the test naming `what` after `timeout` seconds,
    with the tail of each of `logs` (the processes involved) to say why."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    tails = "".join(f"\n--- {log.name} ---\n" + "\n".join(log.read_text().splitlines()[-40:]) for log in logs)
    raise AssertionError(f"Timed out after {timeout} s waiting for {what}{tails}")


ROOT = Path(__file__).resolve().parent.parent


class ProcessGroup:
    """The child processes of one test: each started from the project's root with its output in
    a log file of its own (`process.log_path`), and all stopped (SIGTERM, then SIGKILL after 30 s)
    when the test ends. The one way the tests run a process."""

    def __init__(self, log_dir: Path, env: dict | None = None):
        self.log_dir = log_dir
        self.env = env
        self.running: list[subprocess.Popen] = []

    def start(self, name: str, command: list[str], env: dict | None = None) -> subprocess.Popen:
        log_path = self.log_dir / f"{len(self.running) + 1:02d}-{name}.log"
        with open(log_path, "w") as log:
            process = subprocess.Popen(command, cwd=ROOT, env=env or self.env, stdout=log, stderr=subprocess.STDOUT)
        process.log_path = log_path
        process.name = name
        self.running.append(process)
        return process

    @staticmethod
    def stop(process: subprocess.Popen, *, timeout: float = 30) -> int | None:
        """SIGTERM, then SIGKILL if it has not ended after `timeout` s. Returns its exit code, or
        None if it had to be killed."""
        if process.poll() is not None:
            return process.returncode
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            return None

    def logs(self, name: str) -> str:
        """Every log of the processes started as `name`, one after another."""
        return "".join(p.log_path.read_text() for p in self.running if p.name == name)

    def stop_all(self) -> None:
        for process in self.running:
            self.stop(process)


def admin_kit_add_form(kit_id: str, name: str, **sensor_fields: str) -> dict[str, str]:
    """The admin's "add kit" form as a staff member fills it in: one temperature sensor (with
    `sensor_fields` such as min_value), no members."""
    return {
        "id": kit_id,
        "name": name,
        "description": "",
        "admin_email": "teacher@example.org",
        "sensors-TOTAL_FORMS": "1",
        "sensors-INITIAL_FORMS": "0",
        "sensors-0-key": "temperature",
        "sensors-0-quantity": "temperature",
        "sensors-0-unit": "°C",
        **{f"sensors-0-{field}": value for field, value in sensor_fields.items()},
        "time_zone": "UTC",
        "actuators-TOTAL_FORMS": "0",
        "actuators-INITIAL_FORMS": "0",
        "memberships-TOTAL_FORMS": "0",
        "memberships-INITIAL_FORMS": "0",
        "_save": "Save",
    }


def unpack_bundle(kit: Kit, folder: Path) -> dict:
    """The kit's bundle unpacked into `folder`, as on the Pi; returns its kit.toml."""
    certificate = kit.certificates.get(aws_certificate_id=kit.certificate_id)
    with bundles.bundle_open(certificate.bundle_path) as file:
        zipfile.ZipFile(io.BytesIO(file.read())).extractall(folder)
    return tomllib.loads((folder / "kit.toml").read_text())


class _FormFields(HTMLParser):
    """The fields of one <form>, with the values a browser would submit (no submit buttons)."""

    def __init__(self, form_id: str):
        super().__init__()
        self.form_id = form_id
        self.inside = False
        self.fields: list[tuple[str, str]] = []
        self._select: str | None = None
        self._textarea: str | None = None
        self._text = ""

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.inside = attrs.get("id") == self.form_id
        if not self.inside or "__prefix__" in (attrs.get("name") or ""):
            return
        name = attrs.get("name")
        if tag == "input" and name and attrs.get("type", "text") not in ("submit", "button", "file", "image"):
            if attrs.get("type") not in ("checkbox", "radio") or "checked" in attrs:
                self.fields.append((name, attrs.get("value") or ("on" if attrs.get("type") == "checkbox" else "")))
        elif tag == "select" and name:
            self._select = name
        elif tag == "option" and self._select and "selected" in attrs:
            self.fields.append((self._select, attrs.get("value", "")))
        elif tag == "textarea" and name:
            self._textarea, self._text = name, ""

    def handle_endtag(self, tag):
        if tag == "form":
            self.inside = False
        elif tag == "select":
            self._select = None
        elif tag == "textarea" and self._textarea:
            self.fields.append((self._textarea, self._text.removeprefix("\n")))
            self._textarea = None

    def handle_data(self, data):
        if self._textarea:
            self._text += data


def admin_change_form(html: str, form_id: str = "kit_form") -> dict[str, str]:
    """The admin change form on the page `html` as a browser would submit it unchanged: edit
    the returned dict, then post it."""
    parser = _FormFields(form_id)
    parser.feed(html)
    return dict(parser.fields)


@contextmanager
def ingest_bridge_running(mosquitto_broker):
    """The ingest bridge in a thread of the test process (so it shares the test database),
    subscribed to the real broker as `astroplant.ingest`; stopped on leaving."""
    credentials = mosquitto_broker.client_credentials("astroplant.ingest")
    subscriber = Subscriber(
        BrokerSettings(
            host="localhost",
            port=mosquitto_broker.port,
            client_id="astroplant.ingest",
            certificate=credentials.certificate,
            private_key=credentials.private_key,
            root_ca=credentials.root_ca,
            topics=TOPICS,
        )
    )
    bridge = IngestBridge(subscriber, batch_wait_seconds=0.05)
    thread = threading.Thread(target=bridge.run, kwargs={"report_every_seconds": 3600}, daemon=True)
    thread.start()
    try:
        wait_until(lambda: subscriber.subscribed, what="the bridge to subscribe")
        yield bridge
    finally:
        bridge.stop()
        thread.join(timeout=10)
