"""`make run`: the whole product on this machine, stopped cleanly by Ctrl-C.

Prepares the database and demo data, then runs every process side by side (through honcho) with
its output prefixed by its name. Each later part of the product adds its process here.
"""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from honcho.manager import Manager

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
WEB_HOST = "127.0.0.1"
WEB_PORT = int(os.environ.get("WEB_PORT", "8000"))


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def manage(*args: str, env: dict) -> None:
    subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=env, check=True)


def announce(url: str) -> None:
    """Waits until the web app answers, says where to sign in, then idles (honcho stops all
    processes when any one ends)."""
    for _ in range(600):
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1):  # noqa: S310 (our own local URL)
                break
        except OSError:
            time.sleep(0.5)
    print(
        f"\n  AstroPlant is running on {url}/\n"
        f"  Sign in at {url}/admin/ as admin / admin (staff), or as grower / grower.\n"
        f"  API docs: {url}/api/docs/   Health: {url}/healthz\n"
        "  Press Ctrl-C to stop everything.\n",
        flush=True,
    )
    while True:
        time.sleep(3600)


# --- Issue 4: Celery worker and beat, the local AWS (moto_server), mosquitto with mutual TLS ------


def provisioning_prepare(env: dict) -> dict[str, str]:
    """Choose the Celery broker and the local AWS and MQTT ports (written into `env`), and return
    the processes that provisioning needs, by name."""
    processes = {}
    # Redis when one answers, as in production; else settings.base's default, a server-less
    # broker in var/celery-broker.sqlite3.
    if "CELERY_BROKER_URL" not in env and not port_is_free(6379):
        env["CELERY_BROKER_URL"] = "redis://127.0.0.1:6379/0"
    print(f"Celery broker: {env.get('CELERY_BROKER_URL', 'SQLite file under var/ (no Redis found)')}", flush=True)
    if "AWS_ENDPOINT_URL" not in env and "AWS_ENDPOINT_URL_IOT" not in env:
        sys.path.insert(0, str(ROOT))
        from localdev.moto import FAKE_AWS_ENV
        from localdev.ports import free_port

        moto_port = free_port()
        env.update(FAKE_AWS_ENV, AWS_ENDPOINT_URL=f"http://127.0.0.1:{moto_port}")
        moto = Path(PYTHON).parent / "moto_server"
        processes["aws"] = f"{moto} -H 127.0.0.1 -p {moto_port}"
        wait_then = f"{PYTHON} -c 'from localdev.ports import wait_for_port; wait_for_port({moto_port})' && "
    else:
        wait_then = ""
    mqtt_port = int(env.setdefault("IOT_MQTT_PORT", "8883"))
    env.setdefault("IOT_MQTT_ENDPOINT", "localhost")
    if shutil.which("mosquitto") or Path("/usr/sbin/mosquitto").exists():
        if not port_is_free(mqtt_port):
            sys.exit(f"Port {mqtt_port} is taken: stop what runs there, or set IOT_MQTT_PORT to another port.")
        processes["mqtt"] = f"{PYTHON} -m localdev.mosquitto --port {mqtt_port}"
    else:
        print("mosquitto is not installed (apt-get install mosquitto): running without an MQTT broker.", flush=True)
    processes["worker"] = f"{wait_then}{PYTHON} -m celery -A astroplant_site worker --loglevel=INFO --concurrency=2"
    schedule = ROOT / "var" / "celerybeat-schedule"
    processes["beat"] = f"{PYTHON} -m celery -A astroplant_site beat --loglevel=INFO --schedule {schedule}"
    return processes


def main() -> None:
    if sys.argv[1:2] == ["--announce"]:
        announce(sys.argv[2])
        return
    if not port_is_free(WEB_PORT):
        sys.exit(f"Port {WEB_PORT} is taken: stop what runs there, or set WEB_PORT to another port.")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "astroplant_site.settings.local", "PYTHONUNBUFFERED": "1"}
    (ROOT / "var").mkdir(exist_ok=True)
    provisioning_processes = provisioning_prepare(env)  # issue 4: sets the broker, AWS and MQTT in env
    print("Preparing the database and demo data...", flush=True)
    manage("migrate", "--no-input", "-v", "0", env=env)
    # The local AWS (moto_server) starts empty every time: provision every kit anew in it.
    manage("reprovision_all", env=env)
    manage("demo_setup", env=env)

    url = f"http://{WEB_HOST}:{WEB_PORT}"
    manager = Manager()
    manager.add_process("web", f"{PYTHON} manage.py runserver {WEB_HOST}:{WEB_PORT}", cwd=str(ROOT), env=env)
    for name, command in provisioning_processes.items():
        manager.add_process(name, command, cwd=str(ROOT), env=env)
    manager.add_process("ready", f"{PYTHON} {Path(__file__)} --announce {url}", cwd=str(ROOT), env=env)
    manager.loop()
    sys.exit(manager.returncode)


if __name__ == "__main__":
    main()
