"""A kit's certificate bundle: one zip with everything its Pi needs to connect, kept in private
storage (the `kit_bundles` storage of settings.STORAGES, through django-storages: files under var/
locally, a private, encrypted S3 bucket in production).

This module is the only one that touches that storage. The bundle is the only place a kit's
private key is ever kept: never in the database.
"""

import io
import zipfile
from dataclasses import dataclass, field

import tomli_w
from django.core.files.base import ContentFile
from django.core.files.storage import Storage, storages

STORAGE_ALIAS = "kit_bundles"
CERTIFICATE_FILE = "certificate.pem.crt"
PRIVATE_KEY_FILE = "private.pem.key"
ROOT_CA_FILE = "root-ca.pem"
CONFIG_FILE = "kit.toml"
README_FILE = "README.txt"


@dataclass(frozen=True)
class SensorConfig:
    key: str
    quantity: str
    unit: str
    min_value: float | None
    max_value: float | None


@dataclass(frozen=True)
class ActuatorConfig:
    key: str
    kind: str
    dimmable: bool


@dataclass(frozen=True)
class DeviceConfig:
    """What goes into kit.toml: how and where the kit connects, what it measures and what it
    switches, and the time zone its schedules run in."""

    kit_id: str
    thing_name: str
    endpoint: str
    port: int
    topics: dict[str, str]
    sensors: list[SensorConfig]
    actuators: list[ActuatorConfig] = field(default_factory=list)
    time_zone: str = "UTC"


def bundle_storage() -> Storage:
    return storages[STORAGE_ALIAS]


def bundle_build(*, config: DeviceConfig, certificate_pem: str, private_key_pem: str, root_ca_pem: str) -> bytes:
    """The zip's bytes: certificate, private key, root CA, kit.toml and a short README."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(CERTIFICATE_FILE, certificate_pem)
        archive.writestr(_private_entry(PRIVATE_KEY_FILE), private_key_pem)
        archive.writestr(ROOT_CA_FILE, root_ca_pem)
        archive.writestr(CONFIG_FILE, device_config_toml(config))
        archive.writestr(README_FILE, _readme(config))
    return buffer.getvalue()


def bundle_save(*, kit_id: str, fingerprint: str, content: bytes) -> str:
    """Store the bundle; returns its name in the storage. One name per certificate, so a retry
    never overwrites another certificate's key."""
    storage = bundle_storage()
    name = f"{kit_id}/astroplant-{kit_id}-{fingerprint[:16]}.zip"
    if storage.exists(name):
        storage.delete(name)  # left by an attempt that crashed before recording it
    return storage.save(name, ContentFile(content))


def bundle_names_of_kit(kit_id: str) -> list[str]:
    """Every bundle stored for the kit, recorded or not (a crash can leave one behind)."""
    try:
        _, files = bundle_storage().listdir(kit_id)
    except FileNotFoundError:  # the local storage has no folder until the kit's first bundle
        return []
    return [f"{kit_id}/{name}" for name in files]


def bundle_open(name: str):
    return bundle_storage().open(name, "rb")


def bundle_delete(name: str) -> None:
    """Delete a bundle; one already gone is fine."""
    if name:
        bundle_storage().delete(name)


def device_config_toml(config: DeviceConfig) -> str:
    """kit.toml, read by the kit agent (`python -m device run --config kit.toml`). Paths are
    relative to the file itself. Written by tomli-w, so every value is quoted as TOML wants."""
    document = {
        "schema_version": 1,
        "kit": {"id": config.kit_id, "thing_name": config.thing_name, "time_zone": config.time_zone},
        "mqtt": {
            "endpoint": config.endpoint,
            "port": int(config.port),
            "client_id": config.thing_name,
            "certificate": CERTIFICATE_FILE,
            "private_key": PRIVATE_KEY_FILE,
            "root_ca": ROOT_CA_FILE,
        },
        "topics": dict(config.topics),
        "sensors": [_sensor_entry(sensor) for sensor in config.sensors],
        "actuators": [_actuator_entry(actuator) for actuator in config.actuators],
    }
    header = (
        "# AstroPlant kit configuration, made by the backend with this kit's certificate.\n"
        "# Keep this folder private: private.pem.key lets anyone act as this kit.\n"
    )
    return header + tomli_w.dumps(document)


def _sensor_entry(sensor) -> dict:
    entry = {"key": sensor.key, "quantity": sensor.quantity, "unit": sensor.unit}
    if sensor.min_value is not None:
        entry["min_value"] = float(sensor.min_value)
    if sensor.max_value is not None:
        entry["max_value"] = float(sensor.max_value)
    return entry


def _actuator_entry(actuator: ActuatorConfig) -> dict:
    # Simulated until someone on the Pi names the real driver (GPIO relay, PWM) and its pins.
    return {
        "key": actuator.key,
        "kind": actuator.kind,
        "dimmable": bool(actuator.dimmable),
        "driver": "simulated",
        "options": {},
    }


def _private_entry(name: str) -> zipfile.ZipInfo:
    # Unpacked on a Pi, the key is readable by its owner only.
    entry = zipfile.ZipInfo(name)
    entry.external_attr = 0o600 << 16
    entry.compress_type = zipfile.ZIP_DEFLATED
    return entry


def _readme(config: DeviceConfig) -> str:
    return (
        f"AstroPlant kit {config.kit_id} (AWS IoT thing {config.thing_name})\n\n"
        f"Copy this folder to the kit's Raspberry Pi and start the agent:\n"
        f"    python -m device run --config {CONFIG_FILE}\n\n"
        f"{PRIVATE_KEY_FILE} is the kit's secret: whoever has it can publish as this kit.\n"
        "If it leaks, rotate the kit's certificate in the admin; the old one stops working.\n"
    )
