"""The agent's loop: measure every interval, run the actuator rules every few seconds, report
status at start and every hour, take configurations and commands from the cloud, and send what
waits in the outbox, oldest first, whenever the broker is reachable.

Messages from the cloud arrive on the SDK's thread; they are handed to this loop through a queue,
so that everything the kit does happens on one thread, in order.
"""

from __future__ import annotations

import json
import logging
import queue
import socket
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from . import __version__
from .actuators import ActuatorSet
from .commands import (
    Command,
    CommandRefused,
    CommandUnanswerable,
    command_read,
    no_arguments,
    set_actuator_arguments,
)
from .config import KitConfig
from .controller import Decision, KitController
from .link import BrokerLink
from .outbox import Outbox
from .payloads import command_result_payload, measurement_payload, status_payload, utc_timestamp
from .sensors import SensorSet
from .simulation import SimulatedWorld

log = logging.getLogger(__name__)

RECONNECT_BACKOFF_MAX_SECONDS = 64.0
LONGEST_WAIT_SECONDS = 0.5  # how long the loop may sleep: a stop request is seen this soon


class Agent:
    def __init__(
        self,
        config: KitConfig,
        *,
        link: BrokerLink | None = None,
        sensors: SensorSet | None = None,
        actuators: ActuatorSet | None = None,
    ):
        self.config = config
        self.outbox = Outbox(config.queue_path, max_messages=config.queue_max_messages)
        world = SimulatedWorld()  # what simulated sensors and actuators share
        self.sensors = sensors or SensorSet(config.sensors, world=world)
        self.actuators = actuators or ActuatorSet(config.actuators, world=world)
        self.controller = KitController(config, sensors=self.sensors, actuators=self.actuators)
        self.link = link or BrokerLink(config)
        self.inbox: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.waiting: tuple[str, bytes] | None = None  # taken from the inbox while sleeping
        self.subscribed = False
        self.stopping = threading.Event()
        self.started = time.monotonic()
        self.last_measurement: float | None = None

    def stop(self) -> None:
        """Ask the loop to end after the message in flight; whatever is unsent stays on disk."""
        self.stopping.set()

    def run(self) -> None:
        log.info(
            "Kit %s starting (agent %s); %d message(s) wait in the outbox; configuration version %d",
            self.config.kit_id,
            __version__,
            len(self.outbox),
            self.controller.running.version,
        )
        now = time.monotonic()
        next_measurement = next_status = next_rules = now
        next_connect, backoff = now, 1.0
        try:
            while not self.stopping.is_set():
                now = time.monotonic()
                if not self.link.online and now >= next_connect:
                    if self.link.connect():
                        backoff = 1.0
                    else:
                        next_connect, backoff = now + backoff, min(backoff * 2, RECONNECT_BACKOFF_MAX_SECONDS)
                if self.link.online and not self.subscribed:
                    self.subscribe()
                self.handle_inbox()
                if now >= next_rules:
                    self.controller.evaluate()
                    next_rules = _next_tick(next_rules, self.config.rules_interval_seconds, now)
                next_measurement = self._measurement_due(next_measurement)
                if now >= next_measurement:
                    self.measure()
                    next_measurement = _next_tick(next_measurement, self.controller.running.interval_seconds, now)
                if now >= next_status:
                    self.report_status()
                    next_status = _next_tick(next_status, self.config.status_interval_seconds, now)
                if self.link.online:
                    self.send_waiting()
                due = [next_measurement, next_status, next_rules] + ([] if self.link.online else [next_connect])
                self._wait_for_inbox(min(due) - time.monotonic())
        finally:
            self.link.disconnect()
            self.actuators.close()
            log.info(
                "Kit %s stopped; %d message(s) wait in the outbox for next time", self.config.kit_id, len(self.outbox)
            )
            self.outbox.close()

    def _measurement_due(self, planned: float) -> float:
        """After a new interval, the next measurement comes one new interval after the last."""
        if self.last_measurement is None:
            return planned
        return min(planned, self.last_measurement + self.controller.running.interval_seconds)

    def _wait_for_inbox(self, seconds: float) -> None:
        """Sleep until something is due or a message arrives (handled first, next round)."""
        if self.waiting is not None:
            return
        try:
            self.waiting = self.inbox.get(timeout=max(0.01, min(LONGEST_WAIT_SECONDS, seconds)))
        except queue.Empty:
            return

    # --- from the cloud ---------------------------------------------------------------------

    def subscribe(self) -> None:
        """Subscribe to the kit's config and commands (the broker then sends the retained
        configuration at once). The SDK renews the subscriptions after a reconnect by itself."""
        try:
            for channel in ("config", "commands"):
                self.link.subscribe(self.config.topics[channel], self._receive(channel))
        except Exception as error:  # timeout or link down: tried again on the next round
            log.warning("Subscribing failed (%s); trying again", error or type(error).__name__)
            return
        self.subscribed = True
        log.info("Listening for configurations and commands")

    def _receive(self, channel: str):
        def receive(topic: str, payload: bytes) -> None:
            self.inbox.put((channel, payload))  # on the SDK's thread: hand over, nothing more

        return receive

    def handle_inbox(self) -> None:
        while True:
            if self.waiting is not None:
                (channel, payload), self.waiting = self.waiting, None
            else:
                try:
                    channel, payload = self.inbox.get_nowait()
                except queue.Empty:
                    return
            try:
                if channel == "config":
                    self.handle_configuration(payload)
                else:
                    self.handle_command(payload)
            except Exception:  # one bad message must not stop the kit
                log.exception("A message on %s could not be handled", channel)

    def handle_configuration(self, payload: bytes) -> None:
        try:
            message = json.loads(payload)
        except (ValueError, UnicodeDecodeError) as error:
            log.warning("A configuration message that is not JSON (%s): ignored", error)
            return
        decision = self.controller.offer(message)
        if decision is not None:
            self.report_status(decision)

    def handle_command(self, payload: bytes) -> None:
        try:
            command = command_read(payload, kit_id=self.config.kit_id)
        except CommandUnanswerable as error:
            log.warning("A command that cannot be answered: %s; ignored", error)
            return
        if self.outbox.command_handled(command.id):
            log.info("Command %s (%s) delivered again: handled already, not run twice", command.id, command.name)
            return
        now = datetime.now(timezone.utc)
        if command.expires_at is not None and command.expires_at <= now:
            # No answer: the cloud marks it expired itself (see device.commands).
            log.warning(
                "Command %s (%s) expired at %s (now %s by this kit's clock): not run, not answered",
                command.id,
                command.name,
                utc_timestamp(command.expires_at),
                utc_timestamp(now),
            )
            self.outbox.command_remember(command.id)
            return
        status, result, reason = "succeeded", None, None
        try:
            result = self.run_command(command)
        except CommandRefused as refused:
            status, reason = "failed", str(refused)
        log.info("Command %s (%s): %s%s", command.id, command.name, status, f" ({reason})" if reason else "")
        payload = command_result_payload(
            kit_id=self.config.kit_id,
            id=command.id,
            status=status,
            result=result,
            reason=reason,
            timestamp=utc_timestamp(),
        )
        self.outbox.put(self.config.topics["command-results"], payload, handled_command=command.id)

    def run_command(self, command: Command) -> dict | None:
        """Run a command; its result, or CommandRefused with the reason it failed."""
        if command.problem:
            raise CommandRefused(command.problem)
        if command.name == "ping":
            no_arguments(command)
            return {"uptime_seconds": self.uptime_seconds(), "software_version": __version__}
        if command.name == "measure_now":
            no_arguments(command)
            sequence = self.measure()
            if sequence is None:
                raise CommandRefused("No sensor gave a reading.")
            return {"sequence": sequence}
        if command.name == "set_actuator":
            wanted = set_actuator_arguments(command.arguments, {a.key: a for a in self.config.actuators})
            if not self.actuators.working(wanted.actuator):
                raise CommandRefused(self.actuators.failures.get(wanted.actuator) or "Its driver does not work.")
            override = self.controller.override(wanted.actuator, wanted.level, wanted.minutes)
            if self.actuators.levels.get(wanted.actuator) != wanted.level:
                self.controller.overrides.pop(wanted.actuator, None)
                raise CommandRefused(self.actuators.failures.get(wanted.actuator) or "The actuator did not take it.")
            until = utc_timestamp(override.until_utc) if override.until_utc else None
            return {"actuator": wanted.actuator, "level": wanted.level, "until": until}
        if command.name == "capture_photo":
            raise CommandRefused("no camera")
        raise CommandRefused(f"Unknown command {command.name!r}.")  # command_read refuses these already

    # --- to the cloud -----------------------------------------------------------------------

    def measure(self) -> int | None:
        """Queue a measurement of every enabled sensor with the actuators' levels; its sequence
        number, or None if no sensor gave a reading."""
        self.last_measurement = time.monotonic()
        readings = self.controller.reported(self.sensors.read_all())
        if not readings:
            log.warning("No sensor gave a reading this time")
            return None
        sequence = self.outbox.next_sequence()
        payload = measurement_payload(
            kit_id=self.config.kit_id,
            sequence=sequence,
            readings=readings,
            timestamp=utc_timestamp(),
            actuators=dict(self.actuators.levels) or None,
        )
        self.outbox.put(self.config.topics["measurements"], payload)
        return sequence

    def report_status(self, decision: Decision | None = None) -> None:
        """Queue a status message; after a configuration was decided, with that decision."""
        payload = status_payload(
            kit_id=self.config.kit_id,
            ip=local_ip_towards(self.config.endpoint, self.config.port),
            software_version=__version__,
            uptime_seconds=self.uptime_seconds(),
            timestamp=utc_timestamp(),
            config_version=decision.version if decision else None,
            config_status=decision.status if decision else None,
            reason=decision.reason if decision else None,
        )
        self.outbox.put(self.config.topics["status"], payload)

    def uptime_seconds(self) -> int:
        return system_uptime_seconds() or int(time.monotonic() - self.started)

    def send_waiting(self) -> None:
        """Send queued messages oldest first; stop at the first failure and keep the rest."""
        while not self.stopping.is_set():
            batch = self.outbox.oldest(50)
            if not batch:
                return
            for message in batch:
                try:
                    self.link.publish(message.topic, message.payload)
                except Exception as error:  # timeout or link down: the message stays queued
                    log.warning(
                        "Publishing failed (%s); %d message(s) wait", error or type(error).__name__, len(self.outbox)
                    )
                    return
                self.outbox.remove(message.id)
                if self.stopping.is_set():
                    return


def _next_tick(previous: float, interval: float, now: float) -> float:
    """The next due time on the same grid; ticks missed while busy are skipped, not replayed."""
    ticks = max(1, int((now - previous) // interval) + 1)
    return previous + ticks * interval


def local_ip_towards(host: str, port: int) -> str | None:
    """The address this Pi uses to reach the broker (no packet is sent)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect((host, port))
            return probe.getsockname()[0]
    except OSError:
        return None


def system_uptime_seconds() -> int | None:
    try:
        return int(float(Path("/proc/uptime").read_text().split()[0]))
    except (OSError, ValueError, IndexError):
        return None
