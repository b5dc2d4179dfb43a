"""`make run`: the whole product on this machine, stopped cleanly by Ctrl-C.

Starts the local AWS (one moto_server for DynamoDB, IoT and S3), prepares the database, the demo
data, the telemetry tables and some demo history, then runs every long-lived process side by side
through honcho, each line prefixed with its process's name.
"""

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from honcho.manager import Manager

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for localdev, run as `python bin/devstack.py`

from localdev.moto import MotoServer  # noqa: E402
from localdev.ports import port_answers  # noqa: E402

DEMO_KITS = ["demo-kit-1", "demo-kit-2", "demo-kit-3"]  # made by `manage.py demo_setup`
PYTHON = sys.executable
WEB_HOST = "127.0.0.1"
WEB_PORT = int(os.environ.get("WEB_PORT", "8000"))


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
        f"  Sign in at {url}/accounts/login/ as grower / grower, or at {url}/admin/ as admin / admin.\n"
        f"  API docs: {url}/api/docs/   Health: {url}/healthz\n"
        "  Press Ctrl-C to stop everything.\n",
        flush=True,
    )
    while True:
        time.sleep(3600)


def celery_broker_choose(env: dict) -> None:
    """Redis when one answers, as in production; else the settings' default, a server-less
    broker in a SQLite file under var/ (so a fresh machine works without Redis)."""
    if "CELERY_BROKER_URL" not in env and port_answers(6379):
        env["CELERY_BROKER_URL"] = "redis://127.0.0.1:6379/0"
    print(f"Celery broker: {env.get('CELERY_BROKER_URL', 'SQLite file under var/ (no Redis found)')}", flush=True)


def long_running_processes(env: dict) -> dict[str, str]:
    """Every process `make run` keeps running, by name."""
    processes = {"web": f"{PYTHON} manage.py runserver {WEB_HOST}:{WEB_PORT}"}
    mqtt_port = int(env.setdefault("IOT_MQTT_PORT", "8883"))
    env.setdefault("IOT_MQTT_ENDPOINT", "localhost")
    if shutil.which("mosquitto") or Path("/usr/sbin/mosquitto").exists():
        if port_answers(mqtt_port):
            sys.exit(f"Port {mqtt_port} is taken: stop what runs there, or set IOT_MQTT_PORT to another port.")
        processes["mqtt"] = f"{PYTHON} -m localdev.mosquitto --port {mqtt_port}"
    else:
        print("mosquitto is not installed (apt-get install mosquitto): running without an MQTT broker.", flush=True)
    processes["worker"] = f"{PYTHON} -m celery -A astroplant_site worker --loglevel=INFO --concurrency=2"
    schedule = ROOT / "var" / "celerybeat-schedule"
    processes["beat"] = f"{PYTHON} -m celery -A astroplant_site beat --loglevel=INFO --schedule {schedule}"
    if "mqtt" in processes:
        processes["ingest"] = f"{PYTHON} manage.py ingest"
        for number, kit_id in enumerate(DEMO_KITS, start=1):
            processes[f"kit{number}"] = f"{PYTHON} -m localdev.simulated_kit --kit {kit_id} --interval 5"
    return processes


def main() -> None:
    if sys.argv[1:2] == ["--announce"]:
        announce(sys.argv[2])
        return
    if port_answers(WEB_PORT):
        sys.exit(f"Port {WEB_PORT} is taken: stop what runs there, or set WEB_PORT to another port.")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "astroplant_site.settings.local", "PYTHONUNBUFFERED": "1"}
    (ROOT / "var").mkdir(exist_ok=True)
    celery_broker_choose(env)
    # moto keeps everything in memory: every start provisions the kits and seeds history anew.
    moto = MotoServer().start()
    try:
        env.update(moto.client_env())  # every process below talks to this moto_server
        print(f"Local AWS (moto_server) on {moto.url}", flush=True)
        print("Preparing the database and demo data...", flush=True)
        manage("migrate", "--no-input", "-v", "0", env=env)
        manage("createcachetable", env=env)  # the API's throttle counts (CACHES)
        manage("reprovision_all", env=env)
        manage("demo_setup", env=env)
        manage("dynamodb_setup", env=env)
        for kit_id in DEMO_KITS:
            manage("telemetry_seed", "--kit", kit_id, "--days", "3", "--interval", "300", env=env)

        url = f"http://{WEB_HOST}:{WEB_PORT}"
        manager = Manager()
        for name, command in long_running_processes(env).items():
            manager.add_process(name, command, cwd=str(ROOT), env=env)
        manager.add_process("ready", f"{PYTHON} {Path(__file__)} --announce {url}", cwd=str(ROOT), env=env)
        manager.loop()
    finally:
        moto.stop()
    sys.exit(manager.returncode)


if __name__ == "__main__":
    main()
