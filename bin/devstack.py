"""`make run`: the whole product on this machine, stopped cleanly by Ctrl-C.

Prepares the database and demo data, then runs every process side by side (through honcho) with
its output prefixed by its name. Each later part of the product adds its process here.
"""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from honcho.manager import Manager

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for localdev, run as `python bin/devstack.py`

from localdev.moto import MotoServer  # noqa: E402

DEMO_KITS = ["demo-kit-1", "demo-kit-2", "demo-kit-3"]  # made by `manage.py demo_setup`
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


def main() -> None:
    if sys.argv[1:2] == ["--announce"]:
        announce(sys.argv[2])
        return
    if not port_is_free(WEB_PORT):
        sys.exit(f"Port {WEB_PORT} is taken: stop what runs there, or set WEB_PORT to another port.")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "astroplant_site.settings.local", "PYTHONUNBUFFERED": "1"}
    (ROOT / "var").mkdir(exist_ok=True)
    print("Preparing the database and demo data...", flush=True)
    manage("migrate", "--no-input", "-v", "0", env=env)
    manage("demo_setup", env=env)

    # --- Telemetry: the local DynamoDB (moto_server), its tables, and a few days of demo history.
    # moto keeps its data in memory, so the history is seeded afresh on every start.
    moto = MotoServer().start()
    try:
        env.update(moto.client_env())  # every process below talks to this moto_server
        print(f"Local AWS (moto_server) on {moto.url}; seeding demo telemetry...", flush=True)
        manage("dynamodb_setup", env=env)
        for kit_id in DEMO_KITS:
            manage("telemetry_seed", "--kit", kit_id, "--days", "3", "--interval", "300", env=env)
        run_processes(env)
    finally:
        moto.stop()


def run_processes(env: dict) -> None:
    url = f"http://{WEB_HOST}:{WEB_PORT}"
    manager = Manager()
    manager.add_process("web", f"{PYTHON} manage.py runserver {WEB_HOST}:{WEB_PORT}", cwd=str(ROOT), env=env)
    manager.add_process("ready", f"{PYTHON} {Path(__file__)} --announce {url}", cwd=str(ROOT), env=env)
    manager.loop()
    sys.exit(manager.returncode)


if __name__ == "__main__":
    main()
