"""`kit.toml`: the configuration that comes in the kit's certificate bundle, plus local options.

Paths in the file are relative to the file itself, so the unpacked bundle works wherever it lies.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # Raspberry Pi OS ships Python 3.9 or 3.11
    import tomli as tomllib

SUPPORTED_SCHEMA_VERSIONS = (1,)


class ConfigError(Exception):
    """The configuration file is missing, unreadable or incomplete; the message says how."""


@dataclass(frozen=True)
class SensorConfig:
    key: str
    quantity: str
    unit: str
    driver: str = "simulated"  # or one of device.sensors.DRIVERS: bme280, dht22, bh1750, mhz19
    options: dict[str, Any] = field(default_factory=dict)
    min_value: float | None = None
    max_value: float | None = None


@dataclass(frozen=True)
class KitConfig:
    kit_id: str
    thing_name: str
    endpoint: str
    port: int
    client_id: str
    certificate: Path
    private_key: Path
    root_ca: Path
    topics: dict[str, str]
    sensors: list[SensorConfig]
    # Local options, in an optional [agent] table.
    interval_seconds: float = 60.0
    status_interval_seconds: float = 3600.0
    queue_path: Path = Path("unsent.sqlite3")
    queue_max_messages: int = 100_000
    publish_timeout_seconds: float = 10.0


def load_config(path: str | Path) -> KitConfig:
    """Read and check `kit.toml`; raises ConfigError with a plain explanation."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"There is no configuration file at {path}.") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"Cannot read {path}: {error}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path} is not valid TOML: {error}") from None

    version = data.get("schema_version")
    if version not in SUPPORTED_SCHEMA_VERSIONS:
        raise ConfigError(f"{path} has schema_version {version!r}; this agent reads {SUPPORTED_SCHEMA_VERSIONS}.")
    here = path.parent
    kit, mqtt, topics, agent = (_table(data, name, path) for name in ("kit", "mqtt", "topics", "agent"))
    for name in ("measurements", "status"):
        if name not in topics:
            raise ConfigError(f"{path}: [topics] has no '{name}' topic.")
    sensors = [_sensor(entry, path) for entry in data.get("sensors", [])]
    if not sensors:
        raise ConfigError(f"{path} lists no [[sensors]]: there is nothing to measure.")
    return KitConfig(
        kit_id=_required(kit, "id", path, "kit"),
        thing_name=_required(kit, "thing_name", path, "kit"),
        endpoint=_required(mqtt, "endpoint", path, "mqtt"),
        port=int(mqtt.get("port", 8883)),
        client_id=mqtt.get("client_id") or kit["thing_name"],
        certificate=here / _required(mqtt, "certificate", path, "mqtt"),
        private_key=here / _required(mqtt, "private_key", path, "mqtt"),
        root_ca=here / _required(mqtt, "root_ca", path, "mqtt"),
        topics=dict(topics),
        sensors=sensors,
        interval_seconds=float(agent.get("interval_seconds", 60)),
        status_interval_seconds=float(agent.get("status_interval_seconds", 3600)),
        queue_path=here / agent.get("queue_path", "unsent.sqlite3"),
        queue_max_messages=int(agent.get("queue_max_messages", 100_000)),
        publish_timeout_seconds=float(agent.get("publish_timeout_seconds", 10)),
    )


def _table(data: dict, name: str, path: Path) -> dict:
    table = data.get(name, {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [{name}] must be a table.")
    return table


def _required(table: dict, key: str, path: Path, section: str) -> str:
    value = table.get(key)
    if not value:
        raise ConfigError(f"{path}: [{section}] needs '{key}'.")
    return str(value)


def _sensor(entry: dict, path: Path) -> SensorConfig:
    for key in ("key", "quantity", "unit"):
        if key not in entry:
            raise ConfigError(f"{path}: a [[sensors]] entry has no '{key}'.")
    return SensorConfig(
        key=entry["key"],
        quantity=entry["quantity"],
        unit=entry["unit"],
        driver=entry.get("driver", "simulated"),
        options=dict(entry.get("options", {})),
        min_value=entry.get("min_value"),
        max_value=entry.get("max_value"),
    )
