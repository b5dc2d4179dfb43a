"""`python -m localdev.simulated_kit --kit demo-kit-1`: one simulated kit for `make run`.

Waits until the kit is provisioned (the Celery worker does that), unpacks its certificate bundle
exactly as a Pi would, and then becomes the real kit agent (`python -m device run`) with the
simulated sensors, publishing every few seconds through the local mosquitto.

Each kit also gets a dimmable LED panel (`led`, on from 06:00 to 22:00) and an on/off fan (`fan`,
a thermostat on the temperature), both simulated: the light sensor sees the panel, the panel warms
the air and the fan cools it. Those are kit.toml's own rules; what a configurer sets from the
dashboard replaces them.
"""

import argparse
import io
import json
import os
import sys
import time
import tomllib
import zipfile
from pathlib import Path

import tomli_w

DEMO_LED = {"key": "led", "kind": "light", "dimmable": True, "driver": "simulated"}
DEMO_FAN = {"key": "fan", "kind": "fan", "dimmable": False, "driver": "simulated"}
DEMO_RULES = {
    "led": {"mode": "schedule", "periods": [{"from": "06:00", "to": "22:00", "level": 80}]},
    "fan": {"mode": "thermostat", "sensor": "temperature", "on_above": 26.0, "off_below": 25.0},
}


def demo_kit_toml(kit_toml: str, *, interval_seconds: float) -> str:
    """The bundle's kit.toml with the demo interval, a LED panel and a fan (unless the bundle
    lists actuators already: the registry's), and the demo rules for `led` and `fan`."""
    document = tomllib.loads(kit_toml)
    document.setdefault("agent", {})["interval_seconds"] = interval_seconds
    actuators = document.setdefault("actuators", [])
    if not actuators:
        actuators += [dict(DEMO_LED), dict(DEMO_FAN)]
    sensor_keys = {sensor.get("key") for sensor in document.get("sensors", [])}
    for actuator in actuators:
        rule = DEMO_RULES.get(actuator["key"])
        if rule is None or "rule" in actuator:
            continue
        if "sensor" in rule and rule["sensor"] not in sensor_keys:
            continue
        actuator["rule"] = json.loads(json.dumps(rule))
        if not actuator.get("dimmable"):  # an on/off panel is on or off
            for period in actuator["rule"].get("periods", []):
                period["level"] = 100
    return "# Written by localdev/simulated_kit.py from the kit's bundle.\n" + tomli_w.dumps(document)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kit", required=True)
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between readings")
    parser.add_argument("--directory", type=Path, default=Path("var/simulated-kits"))
    arguments = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "astroplant_site.settings.local")
    import django

    django.setup()
    from kits import bundles
    from kits.models import Kit, ProvisioningStatus

    print(f"Waiting for {arguments.kit} to be provisioned...", flush=True)
    while True:
        kit = Kit.objects.filter(pk=arguments.kit).first()
        if kit and kit.provisioning_status == ProvisioningStatus.ACTIVE:
            break
        time.sleep(1)
    certificate = kit.certificates.get(aws_certificate_id=kit.certificate_id)
    folder = (arguments.directory / kit.id).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    with bundles.bundle_open(certificate.bundle_path) as file:
        zipfile.ZipFile(io.BytesIO(file.read())).extractall(folder)
    config = folder / "kit.toml"
    config.write_text(demo_kit_toml(config.read_text(), interval_seconds=arguments.interval))
    # A fresh local AWS: start the kit afresh too (outbox, and the configuration of the last run).
    for leftover in ("unsent.sqlite3", "applied-configuration.json"):
        (folder / leftover).unlink(missing_ok=True)
    print(f"{kit.id} is active: starting its agent with {config}", flush=True)
    os.execv(sys.executable, [sys.executable, "-m", "device", "run", "--config", str(config)])  # noqa: S606


if __name__ == "__main__":
    main()
