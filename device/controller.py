"""What the kit runs: the configuration it applied, actuator overrides, and the actuator rules.

A configuration from the cloud is decided as a whole: checked against this kit's sensors and
actuators (device.configuration, the same check the server makes) and against what the kit can
actually drive, kept on disk, and only then put into effect; a configuration refused for any
reason changes nothing. The last applied configuration is loaded at start, so a kit restarted
without network runs what it ran before. Until the cloud configures it, a kit runs kit.toml's
interval and actuator rules (version 0).

Rules run here, on the kit, so schedules and thermostats work offline: `evaluate()` is called
every few seconds and after every change; thermostats read their sensor each time.
"""

from __future__ import annotations

import json
import logging
import os
import time
import zoneinfo
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

from .actuators import ActuatorSet
from .config import KitConfig, time_zone_known
from .configuration import ConfigurationInvalid, actuator_level, desired_checked
from .payloads import SCHEMA_VERSION
from .sensors import SensorSet

log = logging.getLogger(__name__)

LOCAL_VERSION = 0  # the configuration of kit.toml, before the cloud sent one
OVERRIDE_MINUTES_MAX = 7 * 24 * 60


class ConfigurationRejected(Exception):
    """The kit cannot run this configuration; the message says why, for the grower."""


@dataclass(frozen=True)
class RunningConfiguration:
    version: int
    time_zone: str
    desired: dict  # checked and completed (device.configuration.desired_checked)

    @property
    def interval_seconds(self) -> float:
        return self.desired["interval_seconds"]


@dataclass(frozen=True)
class Decision:
    """What the kit says about a configuration it received: its status message's fields."""

    version: int
    status: str  # "applied" or "rejected"
    reason: str | None = None


@dataclass(frozen=True)
class Override:
    level: float
    until: float | None  # monotonic seconds; None: until the next configuration
    until_utc: datetime | None


class KitController:
    def __init__(
        self,
        config: KitConfig,
        *,
        sensors: SensorSet,
        actuators: ActuatorSet,
        monotonic: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ):
        self.config = config
        self.sensors = sensors
        self.actuators = actuators
        self.monotonic = monotonic
        self.now = now
        self.path = config.applied_configuration_path
        self.overrides: dict[str, Override] = {}
        self.running = self._stored() or RunningConfiguration(LOCAL_VERSION, config.time_zone, config.desired_local())

    # --- configurations -------------------------------------------------------------------

    def offer(self, message: Any) -> Decision | None:
        """Decide on a configuration message from the cloud. None when there is nothing to say
        (no version to answer to, or an older version than the one applied: a stale copy)."""
        version = message.get("version") if isinstance(message, dict) else None
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            log.warning("A configuration message without a valid version (%r): ignored", version)
            return None
        if version < self.running.version:
            log.warning(
                "Configuration version %d is older than the applied version %d: ignored (if the cloud was reset,"
                " delete %s)",
                version,
                self.running.version,
                self.path,
            )
            return None
        if version == self.running.version:
            # A redelivery (the retained copy after a reconnect or restart): nothing changes, and
            # overrides stay; saying "applied" again makes good a report a crash may have lost.
            log.info("Configuration version %d is the one applied: reporting it again", version)
            return Decision(version, "applied")
        try:
            candidate = self.candidate(message)
            self._store(candidate)
        except ConfigurationRejected as rejected:
            log.warning("Configuration version %d rejected: %s", version, rejected)
            return Decision(version, "rejected", str(rejected))
        self.running = candidate
        self.overrides.clear()
        log.info(
            "Configuration version %d applied: a measurement every %s s, time zone %s",
            version,
            candidate.interval_seconds,
            candidate.time_zone,
        )
        self.evaluate()
        return Decision(version, "applied")

    def candidate(self, message: dict) -> RunningConfiguration:
        """The configuration `message` asks for, if this kit can run it; ConfigurationRejected
        naming every reason otherwise. Changes nothing."""
        if message.get("schema_version") != SCHEMA_VERSION:
            raise ConfigurationRejected(
                f"schema_version {message.get('schema_version')!r} is not one this kit reads ({SCHEMA_VERSION})."
            )
        if message.get("kit_id") != self.config.kit_id:
            raise ConfigurationRejected(f"It is for kit {message.get('kit_id')!r}; this is {self.config.kit_id!r}.")
        time_zone = message.get("time_zone") or self.config.time_zone
        problems = []
        if not time_zone_known(time_zone):
            problems.append(f"time_zone: {time_zone!r} is not a time zone this kit knows.")
        try:
            desired = desired_checked(
                message.get("desired"),
                sensor_keys=[sensor.key for sensor in self.config.sensors],
                actuators=self.config.actuator_specs(),
            )
        except ConfigurationInvalid as invalid:
            problems += [f"{field}: {' '.join(messages)}" for field, messages in invalid.problems.items()]
        else:
            problems += self._unrunnable(desired)
        if problems:
            raise ConfigurationRejected(" ".join(problems))
        return RunningConfiguration(message["version"], time_zone, desired)

    def _unrunnable(self, desired: dict) -> list[str]:
        """Why the kit could not run `desired`: an actuator it would turn on has no working
        driver, or a thermostat's sensor cannot be read."""
        problems = []
        for key, rule in desired["actuators"].items():
            if not _can_turn_on(rule):
                continue
            if not self.actuators.working(key):
                problems.append(f"actuators.{key}: the kit cannot drive it: {self.actuators.failures.get(key)}")
            sensor = rule.get("sensor")
            if rule["mode"] == "thermostat" and sensor not in self.sensors.drivers:
                why = self.sensors.failures.get(sensor, "it does not work")
                problems.append(f"actuators.{key}.sensor: the kit cannot read sensor '{sensor}': {why}")
        return problems

    def _store(self, running: RunningConfiguration) -> None:
        """Keep `running` on disk (temporary file, then rename: never half a file)."""
        document = {
            "kit_id": self.config.kit_id,
            "version": running.version,
            "time_zone": running.time_zone,
            "desired": running.desired,
            "applied_at": self.now().isoformat(),
        }
        temporary = self.path.with_name(self.path.name + ".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(temporary, "w", encoding="utf-8") as file:
                json.dump(document, file, indent=2, sort_keys=True)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
            _fsync_directory(self.path.parent)
        except OSError as error:
            raise ConfigurationRejected(f"The kit cannot keep it on disk ({error}).") from None

    def _stored(self) -> RunningConfiguration | None:
        """The configuration applied before this start, if it is still one this kit can run."""
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as error:
            log.warning("The applied configuration in %s cannot be read (%s): running kit.toml's", self.path, error)
            return None
        try:
            message = {**document, "schema_version": SCHEMA_VERSION}
            if not isinstance(message.get("version"), int) or isinstance(message.get("version"), bool):
                raise ConfigurationRejected("it has no version.")
            running = self.candidate(message)
        except ConfigurationRejected as rejected:
            # The retained message on the broker brings it again, to be decided afresh.
            log.warning(
                "The configuration kept in %s no longer fits this kit (%s): running kit.toml's", self.path, rejected
            )
            return None
        log.info("Running configuration version %d, kept from before", running.version)
        return running

    # --- what the kit does ----------------------------------------------------------------

    def override(self, key: str, level: float, minutes: float | None) -> Override:
        """Hold `key` at `level` instead of its rule, for `minutes` or until the next configuration."""
        until = until_utc = None
        if minutes is not None:
            until = self.monotonic() + minutes * 60
            until_utc = self.now() + timedelta(minutes=minutes)
        override = self.overrides[key] = Override(level, until, until_utc)
        self.evaluate()
        return override

    def evaluate(self) -> None:
        """Set every actuator to what its override or rule asks for now."""
        rules = self.running.desired["actuators"]
        thermostat_sensors = {rule["sensor"] for rule in rules.values() if rule["mode"] == "thermostat"}
        readings = self.calibrated(self.sensors.read_all(thermostat_sensors)) if thermostat_sensors else {}
        minute = self.minute_of_day()
        now = self.monotonic()
        for key, rule in rules.items():
            override = self.overrides.get(key)
            if override is not None and override.until is not None and override.until <= now:
                log.info("Actuator %s: its override ended; back to its rule", key)
                del self.overrides[key]
                override = None
            if override is not None:
                level = override.level
            else:
                current = self.actuators.levels.get(key, 0)
                level = actuator_level(rule, minute=minute, readings=readings, current=current)
            self.actuators.set(key, level)

    def minute_of_day(self) -> int:
        local = self.now().astimezone(zoneinfo.ZoneInfo(self.running.time_zone))
        return local.hour * 60 + local.minute

    def calibrated(self, raw: dict[str, float]) -> dict[str, float]:
        """Readings with each sensor's calibration (raw * scale + offset); disabled sensors are
        read (a thermostat may need one) but not reported, so the caller filters with `reported`."""
        calibrations = self.running.desired["sensors"]
        calibrated = {}
        for key, value in raw.items():
            calibration = calibrations.get(key, {"offset": 0.0, "scale": 1.0})
            calibrated[key] = round(value * calibration["scale"] + calibration["offset"], 6)
        return calibrated

    def reported(self, raw: dict[str, float]) -> dict[str, float]:
        """What a measurement carries: the enabled sensors' calibrated readings."""
        enabled = {key for key, sensor in self.running.desired["sensors"].items() if sensor["enabled"]}
        return {key: value for key, value in self.calibrated(raw).items() if key in enabled}


def _can_turn_on(rule: dict) -> bool:
    if rule["mode"] == "on":
        return rule["level"] > 0
    if rule["mode"] == "schedule":
        return any(period["level"] > 0 for period in rule["periods"])
    if rule["mode"] == "thermostat":
        return rule.get("level", 0) > 0
    return False


def _fsync_directory(directory: Path) -> None:
    # The rename itself must reach the disk, or a power cut could bring back the old file.
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
