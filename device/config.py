"""`kit.toml`: the configuration that comes in the kit's certificate bundle, plus local options.

Paths in the file are relative to the file itself, so the unpacked bundle works wherever it lies.
"""

from __future__ import annotations

import re
import sys
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .configuration import (
    ACTUATOR_KINDS,
    ConfigurationInvalid,
    desired_checked,
    desired_default,
)
from .payloads import KIT_PUBLISHES, KIT_SUBSCRIBES, SENSOR_KEY_PATTERN, TOPIC_ROOT

if sys.version_info >= (3, 11):
    import tomllib
else:  # Raspberry Pi OS ships Python 3.9 or 3.11
    import tomli as tomllib

SUPPORTED_SCHEMA_VERSIONS = (1,)
ACTUATOR_DRIVERS = ("simulated", "gpio_relay", "gpio_pwm")  # device.actuators.DRIVERS
APPLIED_CONFIGURATION_FILE = "applied-configuration.json"
_KEY = re.compile(SENSOR_KEY_PATTERN)


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
class ActuatorConfig:
    key: str
    kind: str  # one of device.configuration.ACTUATOR_KINDS
    dimmable: bool = False  # levels 0-100; otherwise 0 (off) or 100 (on)
    driver: str = "simulated"  # or gpio_relay, gpio_pwm (device.actuators.DRIVERS)
    options: dict[str, Any] = field(default_factory=dict)
    # What it does until the cloud says otherwise (a rule of device.configuration); off if None.
    rule: dict[str, Any] | None = None


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
    actuators: list[ActuatorConfig] = field(default_factory=list)
    time_zone: str = "UTC"  # IANA name: the clock actuator schedules run on
    # Local options, in an optional [agent] table.
    interval_seconds: float = 60.0
    status_interval_seconds: float = 3600.0
    queue_path: Path = Path("unsent.sqlite3")
    queue_max_messages: int = 100_000
    publish_timeout_seconds: float = 10.0
    rules_interval_seconds: float = 5.0  # how often actuator rules are evaluated

    @property
    def applied_configuration_path(self) -> Path:
        """The last configuration from the cloud that the kit applied, beside the outbox."""
        return self.queue_path.parent / APPLIED_CONFIGURATION_FILE

    def actuator_specs(self) -> dict[str, dict[str, Any]]:
        """The actuators as device.configuration.desired_checked takes them."""
        return {actuator.key: {"kind": actuator.kind, "dimmable": actuator.dimmable} for actuator in self.actuators}

    def desired_local(self) -> dict:
        """What the kit runs before the cloud configures it, checked like the cloud's: every
        sensor on, each actuator's kit.toml rule or off, and kit.toml's interval as it is (even
        below the cloud's 2 s minimum: a local choice). ConfigurationInvalid for a bad rule."""
        desired = desired_default(
            interval_seconds=self.interval_seconds,
            sensor_keys=[sensor.key for sensor in self.sensors],
            actuator_keys=[actuator.key for actuator in self.actuators],
        )
        for actuator in self.actuators:
            if actuator.rule is not None:
                desired["actuators"][actuator.key] = actuator.rule
        checked = desired_checked(
            desired, sensor_keys=[sensor.key for sensor in self.sensors], actuators=self.actuator_specs()
        )
        checked["interval_seconds"] = self.interval_seconds
        return checked


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
    thing_name = _required(kit, "thing_name", path, "kit")
    # Bundles made before the two-way channels lack their topics; they follow the same rule.
    topics = {**{name: f"{TOPIC_ROOT}/{thing_name}/{name}" for name in (*KIT_PUBLISHES, *KIT_SUBSCRIBES)}, **topics}
    sensors = [_sensor(entry, path) for entry in data.get("sensors", [])]
    if not sensors:
        raise ConfigError(f"{path} lists no [[sensors]]: there is nothing to measure.")
    actuators = _actuators(data.get("actuators", []), sensors, path)
    config = KitConfig(
        kit_id=_required(kit, "id", path, "kit"),
        thing_name=thing_name,
        endpoint=_required(mqtt, "endpoint", path, "mqtt"),
        port=int(mqtt.get("port", 8883)),
        client_id=mqtt.get("client_id") or kit["thing_name"],
        certificate=here / _required(mqtt, "certificate", path, "mqtt"),
        private_key=here / _required(mqtt, "private_key", path, "mqtt"),
        root_ca=here / _required(mqtt, "root_ca", path, "mqtt"),
        topics=dict(topics),
        sensors=sensors,
        actuators=actuators,
        time_zone=_time_zone(kit.get("time_zone", "UTC"), path),
        interval_seconds=float(agent.get("interval_seconds", 60)),
        status_interval_seconds=float(agent.get("status_interval_seconds", 3600)),
        queue_path=here / agent.get("queue_path", "unsent.sqlite3"),
        queue_max_messages=int(agent.get("queue_max_messages", 100_000)),
        publish_timeout_seconds=float(agent.get("publish_timeout_seconds", 10)),
        rules_interval_seconds=float(agent.get("rules_interval_seconds", 5)),
    )
    _check_rules(config, path)
    return config


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
    if not isinstance(entry, dict):
        raise ConfigError(f"{path}: each [[sensors]] entry must be a table.")
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


def _actuators(entries: Any, sensors: list[SensorConfig], path: Path) -> list[ActuatorConfig]:
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: actuators must be [[actuators]] tables.")
    sensor_keys = {sensor.key for sensor in sensors}
    actuators: list[ActuatorConfig] = []
    for index, entry in enumerate(entries):
        where = f"{path}: [[actuators]] entry {index + 1}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where} must be a table.")
        unknown = sorted(set(entry) - {"key", "kind", "dimmable", "driver", "options", "rule"})
        if unknown:
            raise ConfigError(
                f"{where} has unknown field(s) {', '.join(unknown)} (key, kind, dimmable, driver, options, rule)."
            )
        key = entry.get("key")
        if not isinstance(key, str) or not _KEY.match(key):
            raise ConfigError(f"{where} needs a 'key' of lower-case letters, digits and underscores, such as \"led\".")
        where = f"{path}: actuator '{key}'"
        if key in sensor_keys:
            raise ConfigError(f"{where}: a sensor has this key too; a key is either a sensor's or an actuator's.")
        if any(actuator.key == key for actuator in actuators):
            raise ConfigError(f"{where} is listed twice.")
        kind = entry.get("kind")
        if kind not in ACTUATOR_KINDS:
            raise ConfigError(f"{where}: kind must be one of {', '.join(ACTUATOR_KINDS)}, not {kind!r}.")
        dimmable = entry.get("dimmable", False)
        if not isinstance(dimmable, bool):
            raise ConfigError(f"{where}: dimmable must be true or false, not {dimmable!r}.")
        driver = entry.get("driver", "simulated")
        if driver not in ACTUATOR_DRIVERS:
            raise ConfigError(f"{where}: driver must be one of {', '.join(ACTUATOR_DRIVERS)}, not {driver!r}.")
        options = entry.get("options", {})
        if not isinstance(options, dict):
            raise ConfigError(f"{where}: options must be a table, such as {{pin = 17}}.")
        rule = entry.get("rule")
        if rule is not None and not isinstance(rule, dict):
            raise ConfigError(f'{where}: rule must be a table, such as {{mode = "on", level = 100}}.')
        actuators.append(ActuatorConfig(key, kind, dimmable, driver, dict(options), rule))
    return actuators


def _time_zone(name: Any, path: Path) -> str:
    if not time_zone_known(name):
        raise ConfigError(f"{path}: [kit] time_zone {name!r} is not a time zone name such as Europe/Amsterdam or UTC.")
    return name


def time_zone_known(name: Any) -> bool:
    """Whether `name` is an IANA time zone this Pi knows (its tz database)."""
    if not isinstance(name, str) or not name:
        return False
    try:
        zoneinfo.ZoneInfo(name)
    except (ValueError, zoneinfo.ZoneInfoNotFoundError):
        return False
    return True


def _check_rules(config: KitConfig, path: Path) -> None:
    """kit.toml's actuator rules are checked as the cloud's would be."""
    try:
        config.desired_local()
    except ConfigurationInvalid as error:
        raise ConfigError(f"{path}: an actuator's rule is not valid: {error}") from None
